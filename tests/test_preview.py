"""A preview that looks like the render (issue 10, item 4): the same objective, working size and
octaves at lower resolution, fewer steps made as strong; the studio's one-frame preview follows the
same rule."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SAMPLES
from renderer.config import load_preset, preset_names, preview_preset, preview_steps
from renderer.schedule import ScheduleContext
from renderer.studio.preview import preview_dream_settings
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


def test_the_studio_preview_dreams_the_preview_pass_first_frame() -> None:
    preset = load_preset("fractal-zoom")
    preview = preview_preset(preset)
    frame = build_timeline(preview, 48, 24.0).frame(12).dream
    settings = preview_dream_settings(preview, frame)
    assert (settings.steps, settings.octaves) == (preview.dream.first_steps, preset.dream.first_octaves)
    assert settings.working_size == preset.dream.working_size
    assert settings.step_size == pytest.approx(preset.dream.step_size.constant * preview_steps(4)[1])
