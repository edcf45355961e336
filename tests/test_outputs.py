"""Outputs that editors trust: every format states the render's exact frame rate, frame count and
duration, with and without sound, however the render was cut into segments.

Segments are written and joined through the real media functions (:class:`SegmentWriter`,
:func:`finalize`), then read back three ways: the ``ffmpeg -i`` header (what ffprobe reports: the
average and nominal rate, the duration), every frame decoded and counted, and for mp4/mov the
``mvhd``/``mdhd``/``stts``/``elst`` boxes themselves (the bundled ffmpeg has no ffprobe, and the
boxes are what an editor reads).
"""

from __future__ import annotations

import re
import struct
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import audio_seconds, ffmpeg, ffmpeg_children
from renderer import media
from renderer.media import AudioSource, OutputFormat, SegmentWriter

W, H = 64, 48
N = 50
# A 2-frame first segment (a render stopped right after it started), two full ones, and a 2-frame
# last one (50 frames in segments of 48 leave 2): short segments are where x264 has no B-frame delay.
SPLITS = [2, 20, N - 2, N]
RATES = {"25": Fraction(25), "24": Fraction(24), "ntsc": Fraction(30000, 1001)}


@pytest.fixture(autouse=True)
def no_leftover_ffmpeg():
    yield
    assert ffmpeg_children() == [], "an ffmpeg process outlived its call"


@pytest.fixture(scope="module")
def soundtrack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of a 440 Hz sine (longer than any render here, so it is cut and re-encoded)."""
    path = tmp_path_factory.mktemp("sound") / "sine.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:a", "aac", str(path))
    return path


def render(folder: Path, fmt: OutputFormat, fps: Fraction, audio: Path | None,
           splits: list[int] = SPLITS) -> tuple[Path, list[np.ndarray]]:
    """Write noise frames (x264 uses B-frames on them) in segments and finalize them."""
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(splits[-1])]
    work = folder / "work"
    work.mkdir()
    segments, start = [], 0
    for index, stop in enumerate(splits):
        path = work / f"segment_{index:05d}{fmt.segment_suffix}"
        with SegmentWriter(path, W, H, float(fps), fmt) as writer:
            for frame in frames[start:stop]:
                writer.write(frame)
        segments.append(path)
        start = stop
    output = folder / ("frames" if fmt.is_folder else f"out{fmt.value}")
    media.finalize(segments, output, fmt, float(fps), audio=AudioSource(audio) if audio else None)
    return output, frames


# --------------------------------------------------------------------------------------------------
# reading the outputs back


def header(path: Path) -> str:
    done = subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return done.stderr


def stated_rates(text: str) -> tuple[float, float]:
    """The average ("fps": frames / duration, what ffprobe's avg_frame_rate says) and nominal
    ("tbr": r_frame_rate) rate on the video stream line of ``ffmpeg -i``."""
    line = next(line for line in text.splitlines() if "Video:" in line)
    rates = {kind: float(value) * (1000 if k else 1) for value, k, kind in
             re.findall(r"([\d.]+)(k?) (fps|tbr)\b", line)}
    return rates["fps"], rates["tbr"]


def decoded_frames(path: Path) -> int:
    """Every frame the decoder outputs, none dropped or duplicated (passthrough timing)."""
    done = subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0",
                           "-fps_mode", "passthrough", "-vf", "scale=4:4", "-pix_fmt", "gray",
                           "-f", "rawvideo", "pipe:1"], capture_output=True, check=True)
    return len(done.stdout) // 16


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[str, int, int]]:
    """ISO-BMFF boxes between ``start`` and ``end``: (type, payload start, box end)."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[start + 8:start + 16])[0], 16
        elif size == 0:
            size = end - start
        yield kind.decode("latin-1"), start + head, start + size
        start += size


def child(data: bytes, parent: tuple[int, int], *path: str) -> tuple[int, int]:
    """The payload span of the first box along ``path`` inside ``parent``'s payload."""
    for name in path:
        parent = next((s, e) for kind, s, e in boxes(data, *parent) if kind == name)
    return parent


def mov_tracks(path: Path) -> dict:
    """The timing boxes of an mp4/mov: movie timescale and duration, and per track kind ("vide",
    "soun") its media timescale and duration, ``stts`` entries (count, delta) and ``elst``
    entries (segment duration in movie units, media time in track units)."""
    data = path.read_bytes()
    moov = child(data, (0, len(data)), "moov")
    s, _ = child(data, moov, "mvhd")
    version = data[s]
    movie_scale, movie_duration = (struct.unpack(">IQ", data[s + 20:s + 32]) if version
                                   else struct.unpack(">II", data[s + 12:s + 20]))
    found = {"timescale": movie_scale, "duration": movie_duration}
    for kind, ts, te in boxes(data, *moov):
        if kind != "trak":
            continue
        mdia = child(data, (ts, te), "mdia")
        hs, _ = child(data, mdia, "hdlr")
        handler = data[hs + 8:hs + 12].decode("latin-1")
        ms, _ = child(data, mdia, "mdhd")
        scale, duration = (struct.unpack(">IQ", data[ms + 20:ms + 32]) if data[ms]
                           else struct.unpack(">II", data[ms + 12:ms + 20]))
        ss, _ = child(data, mdia, "minf", "stbl", "stts")
        (count,) = struct.unpack(">I", data[ss + 4:ss + 8])
        stts = [struct.unpack(">II", data[ss + 8 + 8 * i:ss + 16 + 8 * i]) for i in range(count)]
        elst = []
        if any(k == "edts" for k, _, _ in boxes(data, ts, te)):
            es, _ = child(data, (ts, te), "edts", "elst")
            (count,) = struct.unpack(">I", data[es + 4:es + 8])
            step, fmt = (20, ">Qq") if data[es] else (12, ">Ii")
            elst = [struct.unpack(fmt, data[es + 8 + step * i:es + 8 + step * i + struct.calcsize(fmt)])
                    for i in range(count)]
        found[handler] = {"timescale": scale, "duration": duration, "stts": stts, "elst": elst}
    return found


# --------------------------------------------------------------------------------------------------
# the table


CASES = [(fmt, rate, sound) for fmt in (OutputFormat.MP4, OutputFormat.MOV, OutputFormat.WEBM)
         for rate in RATES for sound in (False, True)]
CASES += [(fmt, rate, False) for fmt in (OutputFormat.GIF, OutputFormat.PNG_FOLDER) for rate in RATES]


@pytest.mark.parametrize(("fmt", "rate", "sound"), CASES,
                         ids=[f"{f.name.lower()}-{r}-{'audio' if a else 'silent'}" for f, r, a in CASES])
def test_output_states_exact_rate_count_and_duration(tmp_path, soundtrack, fmt, rate, sound):
    fps = RATES[rate]
    seconds = N / fps
    output, frames = render(tmp_path, fmt, fps, soundtrack if sound else None)
    if fmt is OutputFormat.PNG_FOLDER:  # no timing to state: the rate is in the saved settings
        names = media.list_frame_folder(output)
        assert len(names) == N and np.array_equal(media.load_image(names[-1]), frames[-1])
        return
    assert decoded_frames(output) == N
    text = header(output)
    assert "start: 0.000000" in text
    packets = media.video_packets(output)
    assert len(packets) == N
    shown = sorted(packets.pts)
    end = (shown[-1] + packets.duration[packets.pts.index(shown[-1])] - shown[0]) * packets.time_base
    if fmt is OutputFormat.GIF:
        # GIF delays are whole centiseconds: ffmpeg rounds each frame's start time to one, so the
        # total stays within 1 cs of the exact length (the rate itself cannot be stated exactly).
        assert abs(end - seconds) <= Fraction(1, 100)
        return
    average, nominal = stated_rates(text)
    assert average == pytest.approx(float(fps), abs=0.005) and nominal == pytest.approx(float(fps), abs=0.005)
    # Every frame starts on the grid: k / fps, to the container's clock (1 ms in WebM).
    for k, pts in enumerate(shown):
        assert abs((pts - shown[0]) * packets.time_base - k / fps) <= packets.time_base / 2 + Fraction(1, 10**6)
    assert abs(end - seconds) <= packets.time_base
    if sound:
        assert abs(audio_seconds(output) - float(seconds)) <= 1 / float(fps)
    if fmt in (OutputFormat.MP4, OutputFormat.MOV):
        boxes_ = mov_tracks(output)
        video = boxes_["vide"]
        tick = video["timescale"] / fps
        assert tick.denominator == 1, "the track's clock cannot count whole frames"
        assert video["stts"] == [(N, int(tick))], "frame durations must all be one frame time"
        assert video["duration"] == N * tick
        assert Fraction(boxes_["duration"], boxes_["timescale"]) == pytest.approx(seconds, abs=1e-3)
        for duration, media_time in video["elst"]:  # no empty edit delaying the picture
            assert media_time >= 0 and Fraction(duration, boxes_["timescale"]) == pytest.approx(seconds, abs=1e-3)
        if sound:
            # One edit from the end of the encoder's priming samples, as long as the picture.
            ((duration, media_time),) = boxes_["soun"]["elst"]
            assert media_time >= 0
            assert Fraction(duration, boxes_["timescale"]) == pytest.approx(seconds, abs=1 / float(fps))


def test_mp4_is_not_variable_rate_after_a_short_last_segment(tmp_path):
    """The reported case: a 2 s render of a 25 fps clip (48 + 2 frames) stated 24.04 fps."""
    output, _ = render(tmp_path, OutputFormat.MP4, Fraction(25), None, [48, 50])
    assert stated_rates(header(output)) == (25.0, 25.0)
    assert mov_tracks(output)["vide"]["stts"] == [(50, 512)]


@pytest.mark.parametrize("fmt", [OutputFormat.MP4, OutputFormat.MOV, OutputFormat.WEBM])
def test_yuv_outputs_are_tagged_bt709(tmp_path, fmt):
    """Matrix, primaries and transfer all stated: an untagged file is guessed at (BT.601 for SD)."""
    output, _ = render(tmp_path, fmt, Fraction(25), None, [3])
    line = next(line for line in header(output).splitlines() if "Video:" in line)
    assert "(tv, bt709, progressive)" in line or "(tv, bt709)" in line, line
