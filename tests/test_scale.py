"""Feature scale, not pixel size (issue 10, item 2): with ``dream.working_size`` a preset's look is
dreamed at one scale whatever the frame size; larger frames add octaves of detail, smaller ones are
dreamed enlarged and brought back down."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from conftest import sample_image
from renderer.config import load_preset, preset_names
from renderer.dream import DreamSettings, dream, parse_objective
from renderer.dream.engine import octave_sizes, resize
from renderer.timeline import build_timeline


def test_octaves_count_down_from_the_working_size_and_detail_octaves_reach_the_frame() -> None:
    # A frame under the working size: the ladder ends at the working size (dreamed enlarged).
    small = octave_sizes(90, 160, 4, 1.4, working_size=360)
    assert small[-1] == (360, 640) and small[0] == (round(360 / 1.4**3), round(640 / 1.4**3))
    # 1080p: the same look octaves, then detail octaves about 1.4 apart up to the frame.
    large = octave_sizes(1080, 1920, 4, 1.4, working_size=360)
    assert large[:4] == small and large[-1] == (1080, 1920)
    ratios = [b[0] / a[0] for a, b in zip(large[3:], large[4:])]
    assert len(ratios) == round(math.log(3) / math.log(1.4)) and all(1.3 < r < 1.5 for r in ratios)
    # At the working size, and without one, the ladder is the frame's own (as before issue 10).
    assert octave_sizes(360, 640, 4, 1.4, working_size=360) == octave_sizes(360, 640, 4, 1.4)
    # A frame within sqrt(1.4) of the working size gets no extra octave: the finest becomes the frame.
    assert octave_sizes(380, 676, 2, 1.4, working_size=360)[-1] == (380, 676)


def test_every_shipped_preset_states_its_working_size() -> None:
    for name in preset_names():
        preset = load_preset(name)
        assert preset.dream.working_size > 0, name
        assert build_timeline(preset, 2, 24.0).frame(1).dream.working_size == preset.dream.working_size


def _residual(frame: torch.Tensor, size: tuple[int, int], model, objective, settings: DreamSettings) -> torch.Tensor:
    """The dream residual of `frame` brought to `size` (h, w), seen at (45, 80): (1,3,45,80)."""
    image = resize(frame, size)
    result = dream(image, model, objective, settings, torch.Generator().manual_seed(3))
    return resize(result - image, (45, 80))


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def test_the_look_holds_across_frame_sizes(inception) -> None:
    """The same picture at 80x45 and at 160x90, seen at 80x45: with a working size the two dreams show
    the same features in the same places; without one the 80x45 dream is a different picture.
    Measured: correlation 0.56 with the working size, 0.18 without (the smaller frame starts from a
    blurrier picture, and gradient ascent amplifies the difference, so 1.0 is not expected)."""
    frame = sample_image("chelsea.jpg", (180, 320))
    objective = parse_objective("mixed4a", inception)
    base = DreamSettings(steps=3, step_size=0.02, octaves=2, jitter=0, tile=-1)
    fixed = dataclasses.replace(base, working_size=90)
    held = _correlation(_residual(frame, (45, 80), inception, objective, fixed),
                        _residual(frame, (90, 160), inception, objective, fixed))
    legacy = _correlation(_residual(frame, (45, 80), inception, objective, base),
                          _residual(frame, (90, 160), inception, objective, base))
    print(f"residual correlation at equal size: working size {held:.3f}, frame size {legacy:.3f}")
    assert held > 0.45 and held > legacy + 0.25


@pytest.mark.slow
def test_presets_hold_their_look_from_160x90_to_640x360(inception) -> None:
    """Each shipped preset's first frame at 160x90 and at 640x360 (brought to 160x90): the same features
    (residual correlation at equal size); the feature size (benchmarks/scales.py's measure) is printed."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from scales import dream_first_frame, feature_size, footage, at_size

    people = footage("people")
    for name in preset_names():
        small, large = at_size(people, (160, 90)), at_size(people, (640, 360))
        dreamed_small = dream_first_frame(inception, name, small)
        dreamed_large = dream_first_frame(inception, name, large)
        sizes = feature_size(dreamed_small, small), feature_size(dreamed_large, large)
        seen = [torch.from_numpy(at_size(d, (160, 90))).float() - torch.from_numpy(s).float()
                for d, s in ((dreamed_small, small), (dreamed_large, at_size(large, (160, 90))))]
        correlation = _correlation(*seen)
        print(name, sizes, correlation)
        # The same features in the same places is the test (measured 0.42 for noise-genesis, whose class
        # term is the least repeatable, to 0.61; dreamed at the frame's own size a picture at half the
        # size correlates 0.18, test_the_look_holds_across_frame_sizes). The feature-size measure (the
        # residual's spectral peak) is broad and only printed: 1.15 to 1.29 between the two sizes.
        assert correlation > 0.38, name
