"""What a render starts from: unusual but valid inputs decode right, resumes seek to bit-exact
frames, ``--frames`` limits a video, and bad inputs fail with one line naming the file.

Media is generated at test time with ffmpeg's lavfi sources and Pillow (tiny: 64x48, 1-4 s).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import dreamvid, ffmpeg, ffmpeg_children
from renderer import media
from renderer.errors import DreamvidError, InputError
from renderer.sources import MAX_SIDE, SourceKind, open_source

W, H = 64, 48


@pytest.fixture(autouse=True)
def no_leftover_ffmpeg():
    yield
    assert ffmpeg_children() == [], "an ffmpeg process outlived its call"


def make_clip(path: Path, *, rate: str = "25", seconds: float = 2, size: str = f"{W}x{H}", gop: int = 12,
              args: tuple[str, ...] = ("-c:v", "libx264", "-pix_fmt", "yuv420p")) -> Path:
    """testsrc2 with a frame counter in red (5 levels a frame: every frame differs), encoded with
    ``args``, a keyframe every ``gop`` frames. testsrc2 makes even sizes only: odd ones are scaled."""
    width, height = (int(v) for v in size.split("x"))
    graph = (f"testsrc2=size={width + width % 2}x{height + height % 2}:rate={rate}:duration={seconds},"
             f"scale={width}:{height},setsar=1,format=rgb24,geq=r='mod(N*5,256)':g='g(X,Y)':b='b(X,Y)'")
    ffmpeg("-f", "lavfi", "-i", graph, "-g", str(gop), *args, str(path))
    return path


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inputs")


# --------------------------------------------------------------------------------------------------
# unusual valid inputs


def halves(width: int, height: int) -> np.ndarray:
    """Left half red, right half blue, a green top-left corner: shows any turn or mirror."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (255, 0, 0)
    image[:, width // 2:] = (0, 0, 255)
    image[: height // 4, : width // 4] = (0, 255, 0)
    return image


def near(a: np.ndarray, b: np.ndarray, tolerance: float = 12) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(int) - b.astype(int)).mean()) < tolerance


def make_alpha_png(path: Path) -> np.ndarray:
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 0] = 255                      # red everywhere...
    rgba[:, : W // 2, 3] = 255              # ...opaque on the left
    rgba[:, W // 2:, 3] = 0                 # transparent on the right
    rgba[: H // 2, W // 2:, 3] = 128        # half transparent top right
    Image.fromarray(rgba, "RGBA").save(path)
    expected = np.full((H, W, 3), 255, np.uint8)  # onto white
    expected[:, : W // 2] = (255, 0, 0)
    expected[: H // 2, W // 2:] = (255, 127, 127)
    return expected


def make_gray_jpeg(path: Path) -> np.ndarray:
    ramp = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))
    Image.fromarray(ramp, "L").save(path, quality=95)
    return np.repeat(ramp[..., None], 3, axis=2)


def make_cmyk_jpeg(path: Path) -> np.ndarray:
    rgb = halves(W, H)
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    return rgb


def make_animated_gif(path: Path) -> list[np.ndarray]:
    """6 palette frames at 10 fps (10 cs each), grey 40*i, with a transparent band at the top."""
    palette = [0, 0, 0] + [40 * i for i in range(6) for _ in range(3)]
    images, expected = [], []
    for i in range(6):
        indices = np.full((H, W), i + 1, np.uint8)
        indices[: H // 4] = 0
        image = Image.fromarray(indices, "P")
        image.putpalette(palette)
        images.append(image)
        rgb = np.full((H, W, 3), 40 * i, np.uint8)
        rgb[: H // 4] = 255  # transparent: onto white
        expected.append(rgb)
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0, disposal=2,
                   transparency=0, optimize=False)
    return expected


def test_image_with_alpha_is_composited_onto_white(media_dir):
    expected = make_alpha_png(media_dir / "alpha.png")
    source = open_source(str(media_dir / "alpha.png"), frames=2)
    got = list(source.frames())
    assert len(got) == 2 and np.abs(got[0].astype(int) - expected).max() <= 1


@pytest.mark.parametrize(("name", "make"), [("gray.jpg", make_gray_jpeg), ("cmyk.jpg", make_cmyk_jpeg)])
def test_grayscale_and_cmyk_jpegs(media_dir, name, make):
    expected = make(media_dir / name)
    with Image.open(media_dir / name) as image:
        assert image.mode == ("L" if "gray" in name else "CMYK")
    (frame,) = open_source(str(media_dir / name), frames=1).frames()
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    assert near(frame, expected, 4)


def test_animated_gif_is_a_video_with_all_its_frames(media_dir):
    expected = make_animated_gif(media_dir / "anim.gif")
    source = open_source(str(media_dir / "anim.gif"))
    assert source.kind is SourceKind.VIDEO and source.fps == pytest.approx(10)
    got = list(source.frames())
    assert source.n_frames == len(got) == 6
    for frame, want in zip(got, expected, strict=True):
        assert np.array_equal(frame, want)  # transparency onto white, as for still images


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le", "yuv444p", "yuv422p"])
def test_high_bit_depth_and_full_chroma_video(media_dir, pix_fmt):
    path = make_clip(media_dir / f"{pix_fmt}.mp4", seconds=0.4, args=("-c:v", "libx264", "-crf", "10", "-pix_fmt", pix_fmt))
    assert media.probe(path).pixel_format == pix_fmt
    lossless = make_clip(media_dir / f"{pix_fmt}.rgb.mkv", seconds=0.4, args=("-c:v", "ffv1", "-pix_fmt", "bgr0"))
    reference = list(open_source(str(lossless)).frames())
    got = list(open_source(str(path)).frames())
    assert len(got) == len(reference) == 10
    errors = [float(np.abs(a.astype(int) - b).mean()) for a, b in zip(got, reference, strict=True)]
    # testsrc2's sharp colour edges cost 4:2:0 a little; 4:4:4 and 10 bits are at least as close.
    assert max(errors) < 6, errors


def test_rotated_phone_video_is_upright_with_swapped_size(media_dir):
    upright = halves(W, H)
    Image.fromarray(upright).save(media_dir / "halves.png")
    plain = media_dir / "plain.mp4"
    ffmpeg("-loop", "1", "-i", str(media_dir / "halves.png"), "-t", "0.4", "-r", "25", "-c:v", "libx264",
           "-pix_fmt", "yuv444p", "-qp", "0", str(plain))
    rotated = media_dir / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(plain), "-c", "copy", str(rotated))  # a phone held upright
    source = open_source(str(rotated))
    assert (source.width, source.height) == (H, W)
    frames = list(source.frames())
    assert len(frames) == 10 and frames[0].shape == (W, H, 3)
    # Display rotation 90 is a quarter turn counter-clockwise, as players show it.
    assert near(frames[0], np.rot90(upright, 1), 3)
    Image.fromarray(frames[0]).save(media_dir / "rotated-frame0.png")  # to look at by hand


def test_variable_frame_rate_stays_in_sync_with_its_sound(media_dir):
    """1 s at 10 fps, then 1 s at 30 fps with a white flash at 1.50-1.60 s; a click at 1.50 s."""
    vfr = media_dir / "vfr.mp4"
    ffmpeg("-f", "lavfi", "-i", f"color=black:size={W}x{H}:rate=10:duration=1",
           "-f", "lavfi", "-i", f"color=black:size={W}x{H}:rate=30:duration=1",
           "-f", "lavfi", "-i", "aevalsrc='if(between(t,1.5,1.51),sin(2*PI*1000*t),0)':s=48000:d=2",
           "-filter_complex", "[1:v]drawbox=c=white:t=fill:enable='between(t,0.5,0.59)'[b];"
           "[0:v][b]concat=n=2:v=1[v]", "-map", "[v]", "-map", "2:a", "-fps_mode", "vfr",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(vfr))
    assert not np.allclose(np.diff(media.video_packets(vfr).pts[:12]), np.diff(media.video_packets(vfr).pts[-12:]).mean())
    source = open_source(str(vfr), fps=25)
    frames = list(source.frames())
    assert source.n_frames == len(frames) == round(2.0 * 25)
    flash = [i for i, f in enumerate(frames) if f.mean() > 128]
    assert flash and abs(flash[0] / 25 - 1.5) <= 1 / 25, flash
    sound = media.read_audio(source.audio.path, 48000, source.audio.start, source.audio.start + source.audio.duration)
    click = np.flatnonzero(np.abs(sound) > 0.3)[0] / 48000
    assert abs(click - 1.5) < 0.01 and abs(click - flash[0] / 25) <= 1 / 25


def test_odd_size_video_and_image(media_dir):
    video = make_clip(media_dir / "odd.mp4", size="161x91", seconds=0.4,
                    args=("-c:v", "libx264", "-pix_fmt", "yuv444p"))
    exact = open_source(str(video), even=False)
    assert (exact.width, exact.height) == (161, 91) and next(iter(exact.frames())).shape == (91, 161, 3)
    rounded = open_source(str(video))
    assert (rounded.width, rounded.height) == (160, 90) and next(iter(rounded.frames())).shape == (90, 160, 3)
    Image.fromarray(np.zeros((91, 161, 3), np.uint8)).save(media_dir / "odd.png")
    assert next(iter(open_source(str(media_dir / "odd.png"), frames=1, even=False).frames())).shape == (91, 161, 3)


def test_two_frame_clip(media_dir):
    clip = make_clip(media_dir / "two.mp4", seconds=0.08)
    source = open_source(str(clip))
    frames = list(source.frames())
    assert source.n_frames == len(frames) == 2 and not np.array_equal(frames[0], frames[1])
    assert [len(list(source.frames(k))) for k in (1, 2)] == [1, 0]


# --------------------------------------------------------------------------------------------------
# resuming at frame k: seek, and the same frames bit for bit


@pytest.fixture(scope="module")
def counter_clips(media_dir) -> dict[str, Path]:
    """3 s clips, a keyframe every 12 frames: mp4 at 25 and 30000/1001 fps, MPEG-TS (starts at
    1.4 s, seeks without an index) and a raw .h264 stream (no timestamps: cannot seek)."""
    return {
        "25": make_clip(media_dir / "c25.mp4", rate="25", seconds=3),
        "ntsc": make_clip(media_dir / "cntsc.mp4", rate="30000/1001", seconds=3),
        "ts": make_clip(media_dir / "c25.ts", rate="25", seconds=3,
                      args=("-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mpegts")),
        "raw": make_clip(media_dir / "c25.h264", rate="25", seconds=3),
    }


SEEKS = [("25", None, 0.0), ("25", None, 1.3), ("25", 24.0, 0.5), ("ntsc", None, 0.0), ("ntsc", None, 0.7),
         ("ntsc", 25.0, 1.0), ("ts", None, 0.5), ("raw", None, 0.0), ("raw", None, 0.5)]


@pytest.mark.parametrize(("clip", "fps", "start"), SEEKS, ids=[f"{c}-{f or 'own'}fps-start{s:g}" for c, f, s in SEEKS])
def test_frames_from_k_equal_a_full_decode(counter_clips, clip, fps, start):
    source = open_source(str(counter_clips[clip]), fps=fps, start=start)
    full = list(source.frames())
    assert len(full) == source.n_frames and len({f.tobytes() for f in full}) == len(full)
    for k in (1, 7, len(full) - 1):
        part = list(source.frames(k))
        assert len(part) == len(full) - k, k
        assert all(np.array_equal(a, b) for a, b in zip(part, full[k:], strict=True)), k


def test_frames_from_k_with_frames_limit_and_rotation(counter_clips, media_dir):
    source = open_source(str(counter_clips["ntsc"]), start=0.5, frames=20, size=(32, 24))
    full = list(source.frames())
    assert len(full) == 20 and full[0].shape == (24, 32, 3)
    assert all(np.array_equal(a, b) for a, b in zip(source.frames(13), full[13:], strict=True))


@pytest.mark.parametrize("kind", ["image", "folder", "noise"])
def test_frames_from_k_of_images_folders_and_noise(media_dir, kind):
    folder = media_dir / "numbered"
    folder.mkdir(exist_ok=True)
    for i in range(5):
        media.save_image(folder / f"f{i + 1}.png", np.full((H, W, 3), 50 * i, np.uint8))
    spec = {"image": str(folder / "f3.png"), "folder": str(folder), "noise": "noise"}[kind]
    source = open_source(spec, frames=5)
    full = list(source.frames())
    part = list(source.frames(3))
    assert len(part) == 2 and all((a is None and b is None) or np.array_equal(a, b) for a, b in zip(part, full[3:]))
    assert list(source.frames(5)) == []
    with pytest.raises(ValueError):
        next(source.frames(-1))


def test_early_close_of_a_seeking_reader_reaps_ffmpeg(counter_clips):
    frames = open_source(str(counter_clips["25"])).frames(30)
    next(frames)
    assert len(ffmpeg_children()) == 1
    frames.close()
    assert ffmpeg_children() == []


# --------------------------------------------------------------------------------------------------
# --frames / --seconds on a video


def test_frames_limit_a_video_render(counter_clips):
    source = open_source(str(counter_clips["25"]), frames=24)
    assert source.n_frames == 24 and len(list(source.frames())) == 24
    assert source.seconds == pytest.approx(24 / 25)
    later = open_source(str(counter_clips["25"]), frames=24, start=0.5, fps=10)
    assert later.n_frames == 24 and len(list(later.frames())) == 24
    # More than the clip has: the clip's own length.
    assert open_source(str(counter_clips["25"]), frames=1000).n_frames == 75
    assert open_source(str(counter_clips["25"]), seconds=1.0).n_frames == 25


def test_frames_limit_cuts_the_soundtrack(media_dir):
    clip = media_dir / "sound.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=25:duration=3", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
           str(clip))
    source = open_source(str(clip), frames=24, start=0.5)
    assert source.audio is not None and source.audio.start == 0.5
    assert source.audio.duration == pytest.approx(24 / 25)


# --------------------------------------------------------------------------------------------------
# bad inputs: one line, naming the file (or the setting)


@pytest.fixture(scope="module")
def bad(media_dir) -> dict[str, Path]:
    good = make_clip(media_dir / "good.mp4", seconds=2)
    data = good.read_bytes()
    files = {name: media_dir / name for name in
             ("empty.mp4", "truncated.mp4", "corrupt.mp4", "sine.m4a", "empty.png", "half.png", "noimages")}
    files["empty.mp4"].write_bytes(b"")
    files["truncated.mp4"].write_bytes(data[: len(data) // 2])  # the index (moov) is at the end
    files["corrupt.mp4"].write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(files["sine.m4a"]))
    files["empty.png"].write_bytes(b"")
    media.save_image(media_dir / "whole.png", np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8))
    files["half.png"].write_bytes((media_dir / "whole.png").read_bytes()[:2000])
    files["noimages"].mkdir()
    (files["noimages"] / "notes.txt").write_text("no frames here")
    files["good.mp4"] = good
    return files


BAD = [
    # (input, open_source arguments, error, words in the message)
    ("missing.mp4", {}, InputError, "no such file"),
    ("empty.mp4", {}, InputError, "empty (0 bytes)"),
    ("truncated.mp4", {}, InputError, "cannot read"),
    ("corrupt.mp4", {}, InputError, "cannot read"),
    ("sine.m4a", {}, InputError, "has no video stream"),
    ("empty.png", {}, InputError, "cannot read image"),
    ("half.png", {}, InputError, "cannot read image"),
    ("noimages", {}, InputError, "no numbered images"),
    ("good.mp4", {"start": 5.0}, InputError, "--start 5s is outside"),
    ("good.mp4", {"start": -1.0}, InputError, "--start -1s is outside"),
    ("good.mp4", {"start": 1.0, "end": 0.5}, InputError, "--end"),
    ("good.mp4", {"fps": 0}, InputError, "--fps"),
    ("good.mp4", {"fps": -24}, InputError, "--fps"),
    ("good.mp4", {"fps": math.nan}, InputError, "--fps"),
    ("good.mp4", {"size": (100000, 100000)}, InputError, f"at most {MAX_SIDE} pixels per side"),
    ("good.mp4", {"size": (1, 10)}, InputError, "too small"),
    ("good.mp4", {"frames": 0}, InputError, "nothing to render"),
    ("noise", {"size": (16000, 16000)}, InputError, "GiB of memory"),
]


@pytest.mark.parametrize(("name", "kwargs", "error", "words"), BAD,
                         ids=[f"{n}-{'-'.join(map(str, k)) or 'plain'}" for n, k, _, _ in BAD])
def test_bad_inputs_give_one_line(bad, media_dir, monkeypatch, name, kwargs, error, words):
    if "GiB" in words:  # as if the machine had 4 GiB free, whatever it has
        monkeypatch.setattr("renderer.sources._available_memory", lambda: 4 * 2**30)
    spec = "noise" if name == "noise" else str(bad.get(name, media_dir / name))
    with pytest.raises(error) as caught:
        open_source(spec, **kwargs)
    message = str(caught.value)
    assert words in message and "\n" not in message, message
    assert isinstance(caught.value, DreamvidError)
    if not kwargs:
        assert spec in message  # the file, by the path the user gave


def test_damaged_video_renders_what_decodes_with_one_warning(bad, media_dir):
    """Zeros over a middle chunk: ffmpeg conceals the broken frames until the next keyframe, as
    players do. We render every frame and warn once, quoting ffmpeg (see media.decode)."""
    data = bytearray(bad["good.mp4"].read_bytes())
    start = data.index(b"mdat")
    middle = start + (len(data) - start) // 2
    data[middle:middle + 2000] = bytes(2000)
    damaged = media_dir / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    source = open_source(str(damaged))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(source.frames())
    assert source.n_frames == 50 and 48 <= len(frames) <= 50  # a packet may be lost whole
    assert len(caught) == 1 and str(damaged) in str(caught[0].message) and "\n" not in str(caught[0].message)


def test_a_size_of_another_aspect_is_named_as_a_stretch(media_dir, capsys, monkeypatch):
    """Frames are resized to ``--size``, not cropped; a size that changes the aspect ratio is said on
    the plan line (``stretched from 64x48``), one of the same aspect (or ``--scale``) is not."""
    clip = make_clip(media_dir / "four-three.mp4", seconds=0.2)
    assert open_source(str(clip), size=(64, 36)).stretched
    assert not open_source(str(clip), size=(32, 24)).stretched
    assert not open_source(str(clip), scale=0.5).stretched
    assert not open_source("noise", size=(64, 36), frames=1).stretched
    code, _, err = dreamvid(capsys, monkeypatch, "render", clip, "-o", media_dir / "wide/", "--size", "64x36",
                            "--frames", "1", "--set", "dream.steps=0")
    assert code == 0 and "64x36, stretched from 64x48 at 25 fps" in err
