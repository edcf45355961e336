"""Tests for renderer.media against the real ffmpeg bundled with imageio-ffmpeg.

Test clips are generated once per module with lavfi sources (tiny: 96x64, 2 s).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import audio_seconds, ffmpeg, ffmpeg_children, x264_options
from renderer import media
from renderer.workdir import WorkDir
from renderer.errors import DreamvidError, EncodeError, InputError
from renderer.media import AudioSource, OutputFormat, SegmentWriter

FPS = 24
W, H = 96, 64


# --------------------------------------------------------------------------------------------------
# helpers and fixtures


def assert_one_line(error: DreamvidError) -> None:
    assert "\n" not in str(error) and error.message


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    c = {name: d / name for name in
         ("clip.mp4", "odd.mp4", "vfr.mp4", "raw.h264", "rotated.mp4", "sine.m4a", "zero.mp4", "text.mp4",
          "truncated.mp4", "nodata.mp4", "take:2.mp4")}
    src = f"testsrc2=size={W}x{H}:rate={FPS}:duration=2"
    ffmpeg("-f", "lavfi", "-i", src, "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(c["clip.mp4"]))
    ffmpeg("-f", "lavfi", "-i", src, "-vf", "scale=97:65,setsar=1", "-c:v", "libx264", "-pix_fmt", "yuv444p",
           str(c["odd.mp4"]))
    # 1 s at 10 fps then 1 s at 30 fps, kept variable: 40 frames, unevenly spaced.
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=10:duration=1",
           "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=30:duration=1",
           "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]", "-fps_mode", "vfr",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(c["vfr.mp4"]))
    ffmpeg("-i", str(c["clip.mp4"]), "-map", "0:v", "-c", "copy", str(c["raw.h264"]))  # Duration: N/A
    ffmpeg("-display_rotation", "90", "-i", str(c["clip.mp4"]), "-c", "copy", str(c["rotated.mp4"]))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(c["sine.m4a"]))
    c["zero.mp4"].write_bytes(b"")
    c["text.mp4"].write_text("this is not a video\n")
    c["truncated.mp4"].write_bytes(c["clip.mp4"].read_bytes()[:3000])  # the index (moov) is at the end
    # Index first, then cut just after the start of the data: a valid header over no frames.
    ffmpeg("-i", str(c["clip.mp4"]), "-c", "copy", "-movflags", "+faststart", str(c["take:2.mp4"]))
    data = c["take:2.mp4"].read_bytes()
    c["nodata.mp4"].write_bytes(data[:data.index(b"mdat") + 50])
    return c


@pytest.fixture
def frames(clips: dict[str, Path]) -> list[np.ndarray]:
    return list(media.read_video(clips["clip.mp4"]))


@pytest.fixture(autouse=True)
def no_leftover_ffmpeg():
    yield
    assert ffmpeg_children() == [], "an ffmpeg process outlived its call"


# --------------------------------------------------------------------------------------------------
# probe


def test_probe_values(clips):
    info = media.probe(clips["clip.mp4"])
    assert (info.width, info.height, info.fps, info.duration, info.n_frames) == (W, H, 24.0, 2.0, 48)
    assert info.has_audio and info.audio_codec == "aac" and info.video_codec == "h264"
    assert info.path == clips["clip.mp4"]


def test_probe_odd_size_rotation_and_missing_duration(clips):
    assert (media.probe(clips["odd.mp4"]).width, media.probe(clips["odd.mp4"]).height) == (97, 65)
    rotated = media.probe(clips["rotated.mp4"])
    assert (rotated.width, rotated.height) == (H, W)  # ffmpeg autorotates when decoding
    raw = media.probe(clips["raw.h264"])  # no duration in the header: frames are counted instead
    assert raw.duration > 1.5 and raw.n_frames > 40 and not raw.has_audio


@pytest.mark.parametrize(("name", "words"), [
    ("missing.mp4", "no such file"),
    ("zero.mp4", "empty"),
    ("text.mp4", "cannot read"),
    ("truncated.mp4", "cannot read"),
    ("sine.m4a", "has no video stream"),
    ("nodata.mp4", "no decodable video frames"),
])
def test_probe_errors(clips, name, words):
    path = clips.get(name, clips["clip.mp4"].with_name(name))
    with pytest.raises(InputError) as caught:
        media.probe(path)
    assert words in caught.value.message and str(path) in caught.value.message
    assert_one_line(caught.value)


def test_probe_audio_only_hint_mentions_audio_option(clips):
    with pytest.raises(InputError, match="--audio"):
        media.probe(clips["sine.m4a"])


# --------------------------------------------------------------------------------------------------
# read_video


def test_read_video_frames_and_colours(frames):
    assert len(frames) == 48
    first = frames[0]
    assert first.shape == (H, W, 3) and first.dtype == np.uint8 and first.flags.writeable
    # testsrc2's bottom bars, left to right: red, green, yellow, blue, magenta, cyan (RGB, not BGR).
    expected = [(1, 0, 0), (0, 1, 0), (1, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 1)]
    for bar, colour in enumerate(expected):
        pixel = first[61, bar * 16 + 8].astype(int)
        assert all((value > 150) == bool(on) for value, on in zip(pixel, colour, strict=True)), (bar, pixel)


def test_read_video_trim_starts_on_the_right_frame(clips, frames):
    part = list(media.read_video(clips["clip.mp4"], start=0.5, end=1.5))
    assert len(part) == 24
    assert np.abs(part[0].astype(int) - frames[12]).mean() < 1.0


def test_read_video_resize_and_resample(clips):
    reader = media.read_video(clips["clip.mp4"], size=(50, 30), fps=10)
    with reader:
        got = list(reader)
    assert (reader.width, reader.height, reader.fps, reader.n_frames) == (50, 30, 10, 20)
    assert len(got) == 20 and got[0].shape == (30, 50, 3)


def test_read_video_variable_frame_rate_gives_even_frames(clips):
    info = media.probe(clips["vfr.mp4"])
    assert info.duration == 2.0
    assert len(list(media.read_video(clips["vfr.mp4"], fps=24))) == 48
    assert abs(len(list(media.read_video(clips["vfr.mp4"]))) - 2 * info.fps) <= 1
    # The first second is 10 fps, so at 30 fps each source frame repeats three times.
    first_second = list(media.read_video(clips["vfr.mp4"], fps=30, end=1.0))
    assert len(first_second) == 30
    assert np.array_equal(first_second[0], first_second[2])
    assert not np.array_equal(first_second[2], first_second[3])


def test_paths_that_look_like_urls(clips, tmp_path):
    # "take:2.mp4" would be protocol "take" to ffmpeg if we passed it as it is.
    assert media.probe(clips["take:2.mp4"]).n_frames == 48
    assert len(list(media.read_video(clips["take:2.mp4"], end=0.5))) == 12
    segment = tmp_path / "seg:0.mp4"
    with SegmentWriter(segment, W, H, FPS, OutputFormat.MP4) as writer:
        writer.write(np.zeros((H, W, 3), np.uint8))
    output = media.finalize([segment], tmp_path / "out:1.mp4", OutputFormat.MP4, FPS,
                            audio=AudioSource(clips["take:2.mp4"]))
    assert media.probe(output).has_audio


def test_read_video_odd_and_raw_inputs(clips):
    assert next(iter(media.read_video(clips["odd.mp4"]))).shape == (65, 97, 3)
    assert next(iter(media.read_video(clips["rotated.mp4"]))).shape == (W, H, 3)
    assert len(list(media.read_video(clips["raw.h264"]))) > 40


@pytest.mark.parametrize("kwargs", [{"start": 5.0}, {"start": 1.0, "end": 0.5}, {"fps": 0},
                                    {"size": (0, 10)}])
def test_read_video_rejects_bad_arguments(clips, kwargs):
    with pytest.raises(InputError) as caught:
        media.read_video(clips["clip.mp4"], **kwargs)
    assert_one_line(caught.value)


def test_read_video_early_close_reaps_ffmpeg(clips):
    reader = media.read_video(clips["clip.mp4"])
    next(reader)
    assert len(ffmpeg_children()) == 1
    reader.close()
    assert ffmpeg_children() == []
    with media.read_video(clips["clip.mp4"]) as reader:
        next(reader)
    assert ffmpeg_children() == []
    media.read_video(clips["clip.mp4"])  # never iterated: ffmpeg never started
    assert ffmpeg_children() == []


def test_read_video_ffmpeg_dying_mid_stream_is_an_encode_error(clips):
    reader = media.read_video(clips["clip.mp4"])
    next(reader)
    (pid,) = ffmpeg_children()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(EncodeError) as caught:
        list(reader)
    assert_one_line(caught.value)


# --------------------------------------------------------------------------------------------------
# read_audio


def test_read_audio_sine(clips):
    sr = 22050
    audio = media.read_audio(clips["clip.mp4"], sample_rate=sr)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 2 * sr) < 0.01 * sr
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.fft.rfftfreq(len(audio), 1 / sr)[spectrum.argmax()] - 440) < 2
    part = media.read_audio(clips["clip.mp4"], sample_rate=sr, start=0.5, end=1.0)
    assert abs(len(part) - sr // 2) < 0.01 * sr


def test_read_audio_without_audio(clips):
    with pytest.raises(InputError, match="no audio stream"):
        media.read_audio(clips["odd.mp4"])


# --------------------------------------------------------------------------------------------------
# images and frame folders


def test_image_roundtrip_and_errors(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    media.save_image(tmp_path / "a.png", image)
    assert np.array_equal(media.load_image(tmp_path / "a.png"), image)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary left behind
    assert media.is_image("x.JPG") and media.is_image(Path("y.tiff")) and not media.is_image("z.mp4")
    (tmp_path / "bad.png").write_text("not an image")
    for path in (tmp_path / "bad.png", tmp_path / "missing.png"):
        with pytest.raises(InputError) as caught:
            media.load_image(path)
        assert_one_line(caught.value)


def test_load_image_applies_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "turned.jpg", exif=exif)
    assert media.load_image(tmp_path / "turned.jpg").shape == (40, 20, 3)


def test_list_frame_folder_natural_order(tmp_path):
    for name in ("f10.png", "f2.png", "f1.png", "cover.png", "notes.txt", ".f3.tmp.png"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in media.list_frame_folder(tmp_path)] == ["f1.png", "f2.png", "f10.png"]
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(InputError):
            media.list_frame_folder(path)


def test_atomic_path_files_and_folders(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), media.atomic_path(target) as tmp:
        assert tmp.suffix == ".txt" and tmp.parent == tmp_path and tmp.name.startswith(".")
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with media.atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"

    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"old")
    with pytest.raises(RuntimeError), media.atomic_path(folder) as tmp:
        tmp.mkdir()
        raise RuntimeError("interrupted")
    assert [p.name for p in folder.iterdir()] == ["a.png"]
    with media.atomic_path(folder) as tmp:  # a non-empty folder is replaced as a whole
        tmp.mkdir()
        (tmp / "b.png").write_bytes(b"new")
    assert [p.name for p in folder.iterdir()] == ["b.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "out.txt"]


# --------------------------------------------------------------------------------------------------
# output formats


def test_output_format():
    assert media.output_format("a.mp4") is OutputFormat.MP4
    assert media.output_format(Path("a.MOV")) is OutputFormat.MOV
    assert media.output_format("a.webm") is OutputFormat.WEBM
    assert media.output_format("a.gif") is OutputFormat.GIF
    assert media.output_format("frames") is OutputFormat.PNG_FOLDER
    assert media.output_format("frames.v2/") is OutputFormat.PNG_FOLDER
    with pytest.raises(InputError) as caught:
        media.output_format("a.avi")
    assert ".mp4" in str(caught.value) and ".gif" in str(caught.value)
    assert OutputFormat.MP4.needs_even_size and not OutputFormat.GIF.needs_even_size
    assert OutputFormat.WEBM.supports_audio and not OutputFormat.GIF.supports_audio
    assert "pcm_s16le" in OutputFormat.MOV.audio_copy_codecs
    assert "pcm_s16le" not in OutputFormat.MP4.audio_copy_codecs
    assert media.even_size(97, 65) == (96, 64) and media.even_size(96, 64) == (96, 64)


def test_paths_of_a_render(tmp_path):
    out = tmp_path / "dream.mp4"
    assert WorkDir(out, OutputFormat.MP4).path == tmp_path / "dream.mp4.dreamvid-partial"
    assert WorkDir(out, OutputFormat.GIF).segment(3).name == "segment_00003.mkv"
    assert media.preview_path(out) == tmp_path / "dream.partial.mp4"


# --------------------------------------------------------------------------------------------------
# segments and finalize


def write_segments(work: Path, fmt: OutputFormat, frames: list[np.ndarray], splits: list[int]) -> list[Path]:
    work.mkdir(exist_ok=True)
    paths, start = [], 0
    for index, stop in enumerate(splits):
        path = work / f"segment_{index:05d}{fmt.segment_suffix}"
        with SegmentWriter(path, W, H, FPS, fmt) as writer:
            for frame in frames[start:stop]:
                writer.write(frame)
        assert writer.frames_written == stop - start
        paths.append(path)
        start = stop
    return paths


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_segments_finalize_with_audio(tmp_path, clips, frames, fmt):
    output = tmp_path / f"out{fmt.value}"
    segments = write_segments(tmp_path / "work", fmt, frames, [20, 48])
    assert media.finalize(segments, output, fmt, FPS, audio=AudioSource(clips["clip.mp4"])) == output
    assert media.count_frames(output) == 48
    if fmt is OutputFormat.PNG_FOLDER:
        names = [p.name for p in media.list_frame_folder(output)]
        assert names[0] == "frame_000001.png" and names[-1] == "frame_000048.png"
        assert np.array_equal(media.load_image(output / names[20]), frames[20])
        return
    info = media.probe(output)
    assert (info.width, info.height) == (W, H)
    back = list(media.read_video(output, fps=FPS))
    assert len(back) == 48
    for i in (1, 19, 20, 46):  # each frame in its place, across the segment boundary too
        errors = [np.abs(back[i].astype(int) - frames[j]).mean() for j in (i - 1, i, i + 1)]
        assert errors[1] < 6 and errors[1] == min(errors), (i, errors)
    if fmt is OutputFormat.GIF:  # GIF delays are centiseconds: 24 fps is stored as 4-5 cs frames
        assert info.duration == pytest.approx(2.0, abs=0.05) and not info.has_audio
        return
    assert info.fps == FPS and info.has_audio
    assert abs(audio_seconds(output) - 2.0) <= 1 / FPS


@pytest.mark.parametrize("fmt", [OutputFormat.MP4, OutputFormat.WEBM])
def test_finalize_cuts_audio_to_the_rendered_span(tmp_path, clips, frames, fmt):
    output = tmp_path / f"out{fmt.value}"
    segments = write_segments(tmp_path / "work", fmt, frames, [24])  # 1 s of video
    media.finalize(segments, output, fmt, FPS, audio=AudioSource(clips["clip.mp4"], start=0.5))
    assert abs(audio_seconds(output) - 1.0) <= 1 / FPS
    half = AudioSource(clips["clip.mp4"], duration=0.5)
    media.finalize(segments, output, fmt, FPS, audio=half, overwrite=True)
    assert abs(audio_seconds(output) - 0.5) <= 1 / FPS
    with pytest.raises(InputError, match="no audio stream"):
        media.finalize(segments, output, fmt, FPS, audio=AudioSource(clips["odd.mp4"]), overwrite=True)


def test_finalize_never_overwrites_without_permission(tmp_path, frames):
    output = tmp_path / "out.mp4"
    output.write_bytes(b"precious")
    segments = write_segments(tmp_path / "work", OutputFormat.MP4, frames, [5])
    with pytest.raises(InputError) as caught:
        media.finalize(segments, output, OutputFormat.MP4, FPS)
    assert "exists" in caught.value.message and "--overwrite" in str(caught.value)
    assert output.read_bytes() == b"precious"
    media.finalize(segments, output, OutputFormat.MP4, FPS, overwrite=True)
    assert media.count_frames(output) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "work"]  # no temporaries left

    folder = tmp_path / "frames"
    folder.mkdir()
    png_segments = write_segments(tmp_path / "pngwork", OutputFormat.PNG_FOLDER, frames, [3])
    with pytest.raises(InputError):
        media.finalize(png_segments, folder, OutputFormat.PNG_FOLDER, FPS)
    media.finalize(png_segments, folder, OutputFormat.PNG_FOLDER, FPS, overwrite=True)
    assert media.count_frames(folder) == 3


def test_finalize_output_folder_problems(tmp_path, frames):
    segments = write_segments(tmp_path / "work", OutputFormat.MP4, frames, [3])
    with pytest.raises(InputError, match="does not exist") as caught:
        media.finalize(segments, tmp_path / "nope" / "out.mp4", OutputFormat.MP4, FPS)
    assert_one_line(caught.value)
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InputError, match="cannot write"):
            media.finalize(segments, locked / "out.mp4", OutputFormat.MP4, FPS)


def test_partial_preview(tmp_path, frames):
    output = tmp_path / "out.webm"
    segments = write_segments(tmp_path / "work", OutputFormat.WEBM, frames, [4, 10])
    preview = media.partial_preview(segments, output, OutputFormat.WEBM, FPS)
    assert preview == tmp_path / "out.partial.webm" and media.count_frames(preview) == 10
    assert not output.exists()
    assert media.partial_preview(segments, tmp_path / "frames", OutputFormat.PNG_FOLDER, FPS) is None


@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_exception_inside_writer_leaves_a_playable_segment(tmp_path, frames, interrupt):
    path = tmp_path / "seg.mp4"
    with pytest.raises(interrupt), SegmentWriter(path, W, H, FPS, OutputFormat.MP4) as writer:
        for frame in frames[:10]:
            writer.write(frame)
        raise interrupt("stop")
    assert media.count_frames(path) == 10
    assert len(list(media.read_video(path))) == 10


def test_writer_turns_x264_psy_off_on_request(tmp_path, frames):
    """Flow mode's segments are coded without x264's psychovisual optimisations (a carried dream's grain
    would change every frame); everything else keeps x264's defaults."""
    for psy in (True, False):
        path = tmp_path / f"psy{int(psy)}.mp4"
        with SegmentWriter(path, W, H, FPS, OutputFormat.MP4, psy=psy) as writer:
            for frame in frames[:3]:
                writer.write(frame)
        assert f" psy={int(psy)} " in x264_options(path)
        assert len(list(media.read_video(path))) == 3


def test_writer_with_no_frames_leaves_no_file(tmp_path):
    with SegmentWriter(tmp_path / "seg.mp4", W, H, FPS, OutputFormat.MP4):
        pass
    with SegmentWriter(tmp_path / "seg", W, H, FPS, OutputFormat.PNG_FOLDER):
        pass
    assert list(tmp_path.iterdir()) == []


def test_png_segment_is_rewritten_from_its_first_frame(tmp_path, frames):
    for count in (5, 3):  # a resumed render redoes a segment with fewer frames than before
        with SegmentWriter(tmp_path / "seg", W, H, FPS, OutputFormat.PNG_FOLDER) as writer:
            for frame in frames[:count]:
                writer.write(frame)
    assert media.count_frames(tmp_path / "seg") == 3


def test_writer_reports_a_dead_ffmpeg(tmp_path, frames):
    (tmp_path / "seg.mp4").mkdir()  # ffmpeg cannot open its output: it exits at once
    with pytest.raises(EncodeError) as caught, \
            SegmentWriter(tmp_path / "seg.mp4", W, H, FPS, OutputFormat.MP4) as writer:
        for _ in range(100):
            writer.write(frames[0])
    assert "Is a directory" in caught.value.message
    assert_one_line(caught.value)

    other = tmp_path / "other.mp4"
    with pytest.raises(EncodeError), SegmentWriter(other, W, H, FPS, OutputFormat.MP4) as writer:
        writer.write(frames[0])
        (pid,) = ffmpeg_children()
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            writer.write(frames[0])


def test_writer_rejects_odd_mp4_size_and_bad_frames(tmp_path, frames):
    with pytest.raises(InputError, match="even"):
        SegmentWriter(tmp_path / "seg.mp4", 97, 65, FPS, OutputFormat.MP4)
    with SegmentWriter(tmp_path / "odd.mov", 97, 65, FPS, OutputFormat.MOV) as writer:
        writer.write(np.zeros((65, 97, 3), np.uint8))
        with pytest.raises(ValueError):
            writer.write(frames[0])
    assert media.probe(tmp_path / "odd.mov").width == 97
