"""A preview that looks like the render (issue 10, item 4): the same objective, working size and
octaves at lower resolution, fewer steps made as strong; the studio's one-frame preview follows the
same rule."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SAMPLES
from renderer.config import load_preset, preset_names, preview_preset, preview_steps
from renderer.schedule import ScheduleContext
from renderer.studio.preview import LIVE_STEPS, preview_dream_settings
from renderer.timeline import build_timeline


def test_a_preview_keeps_the_look_and_makes_fewer_steps_as_strong() -> None:
    for name in preset_names():
        preset = load_preset(name)
        preview = preview_preset(preset)
        full, fast = preset.dream, preview.dream
        assert (fast.working_size, fast.octaves.source, fast.first_octaves, fast.objective.source) == \
            (full.working_size, full.octaves.source, full.first_octaves, full.objective.source), name
        steps = round(full.steps.constant)
        fewer, factor = preview_steps(steps)
        assert fast.steps.constant == fewer < steps or steps == 1, name
        assert fast.first_steps < full.first_steps, name
        # Each step larger by sqrt(steps / fewer), at every frame (schedules too, e.g. beat-zoom's).
        ctx = ScheduleContext(n_frames=48, fps=24.0, bpm=120.0)
        ratio = fast.step_size.evaluate(ctx) / full.step_size.evaluate(ctx)
        assert np.allclose(ratio, factor, rtol=1e-4) and factor == pytest.approx((steps / fewer) ** 0.5), name
        # Fewer frames come from the frame rate (preview_source), not from a longer cadence.
        section = preset.mode.cadence_section
        assert getattr(preview, section).cadence.source == getattr(preset, section).cadence.source, name


def test_a_preview_pass_runs_at_half_the_frame_rate_over_the_same_seconds(tmp_path) -> None:
    from conftest import ffmpeg
    from renderer.plan import PREVIEW_SIDE, preview_size, preview_source
    from renderer.sources import open_source

    clip = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=2", "-c:v", "libx264", clip)
    source = open_source(str(clip))
    preview = preview_source(source, even=True)
    assert (preview.width, preview.height, preview.fps, preview.n_frames) == (PREVIEW_SIDE, 180, 12.5, 25)
    assert preview.seconds == source.seconds == 2.0
    frames = list(preview.frames())
    assert len(frames) == 25 and frames[0].shape == (180, 320, 3)
    # Not below 12 fps; the studio's one-frame previews keep the render's frame numbers.
    slow = open_source(str(clip), fps=20.0)
    assert preview_source(slow, even=True).fps == 20.0
    assert preview_size(source, even=True).n_frames == 50


def test_the_studio_preview_dreams_the_preview_pass_first_frame_in_fewer_larger_steps() -> None:
    preset = load_preset("fractal-zoom")
    preview = preview_preset(preset)
    frame = build_timeline(preview, 48, 24.0).frame(12).dream
    settings = preview_dream_settings(preview, frame)
    assert settings.octaves == preset.dream.first_octaves
    assert settings.working_size == preset.dream.working_size
    first = preview.dream.first_steps
    assert settings.steps == min(first, LIVE_STEPS) < first
    factor = preview_steps(4)[1] * (first / settings.steps) ** 0.5
    assert settings.step_size == pytest.approx(preset.dream.step_size.constant * factor)


def _statistics(frames: list[np.ndarray], source: list[np.ndarray]) -> dict[str, float]:
    """Strength (mean |output - source|, [0,1]), mean colour per channel ([0,1]) and sharpness
    (variance of the Laplacian of luma, 0..255 units) over a render's frames."""
    import cv2

    strength = np.mean([np.abs(f.astype(np.float32) - s).mean() / 255 for f, s in zip(frames, source)])
    colour = np.mean([f.reshape(-1, 3).mean(0) / 255 for f in frames], axis=0)
    sharpness = np.mean([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var() for f in frames])
    return {"strength": float(strength), "sharpness": float(sharpness), **{c: float(v) for c, v in zip("rgb", colour)}}


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["fractal-zoom", "flow-dream", "deep-objects"])
def test_a_preview_pass_shows_the_render_look(preset, tmp_path, capsys, monkeypatch) -> None:
    """`--preview` of a 480x270 clip (320x180, half the frame rate, 0.6 of the steps) against the full
    render brought to 320x180, frame for frame at the same times: the same strength, colour and sharpness. Before issue 10 a preview was dreamed at its own
    pixel size (other features, larger and blurrier) and was 'foggy'."""
    import cv2

    from conftest import dreamvid, ffmpeg
    from renderer import media

    clip = tmp_path / "clip.mp4"
    ffmpeg("-i", SAMPLES / "bunny.mp4", "-frames:v", "8", "-vf", "scale=480:270", "-an", "-c:v", "libx264",
           "-crf", "12", "-pix_fmt", "yuv444p", clip)
    full, fast = tmp_path / "full.mp4", tmp_path / "fast.mp4"
    for out, extra in ((full, []), (fast, ["--preview"])):
        code, _, err = dreamvid(capsys, monkeypatch, "render", clip, "--preset", preset, "-o", out, *extra)
        assert code == 0, err
    fast_frames = list(media.read_video(fast))
    height, width = fast_frames[0].shape[:2]
    assert (width, height) == (320, 180)
    small = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in media.read_video(full)]
    source = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
              for f in media.read_video(clip)]
    # The preview runs at half the frame rate: frame i shows the render's frame 2i.
    step = round(len(small) / len(fast_frames))
    assert step == 2 and len(fast_frames) == 4
    got, want = _statistics(fast_frames, source[::step]), _statistics(small[::step], source[::step])
    print(preset, "preview", {k: round(v, 4) for k, v in got.items()}, "render", {k: round(v, 4) for k, v in want.items()})
    assert got["strength"] == pytest.approx(want["strength"], rel=0.2)
    assert got["sharpness"] == pytest.approx(want["sharpness"], rel=0.2)  # no working size: +26 %
    for channel in "rgb":
        assert got[channel] == pytest.approx(want[channel], abs=0.02)


def test_a_live_preview_runs_bf16_only_for_auto_on_an_amx_cpu() -> None:
    import torch

    from renderer.dream.engine import Precision, cpu_has_amx
    from renderer.studio.preview import live_precision

    cpu = torch.device("cpu")
    assert live_precision(Precision.FP32, cpu) is Precision.FP32  # asked for: kept
    assert live_precision(Precision.AUTO, torch.device("cuda")) is Precision.AUTO  # the GPU's own choice
    assert live_precision(Precision.AUTO, cpu) is (Precision.BF16 if cpu_has_amx() else Precision.AUTO)
