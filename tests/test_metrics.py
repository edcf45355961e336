"""The quality metrics of issue 9 on real data: a real clip (samples/bunny.mp4) and generated scenes."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from conftest import SAMPLES
from renderer import media, metrics, scenes


@pytest.fixture(scope="module")
def bunny() -> list[np.ndarray]:
    """16 frames of a real (animated) clip at 160x90: a character moving against grass and trees."""
    return list(media.read_video(SAMPLES / "bunny.mp4", size=(160, 90)))[:16]


@pytest.fixture(scope="module")
def bunny_motion(bunny) -> metrics.SourceMotion:
    return metrics.SourceMotion.of(bunny)


def test_source_against_itself_is_one(bunny, bunny_motion):
    assert metrics.warping_error_ratio(bunny, bunny_motion) == 1.0
    assert metrics.warping_error_ratio(bunny, bunny) == 1.0  # frames instead of a SourceMotion
    assert 0 < bunny_motion.source_error < 0.05
    assert bunny_motion.reliable.mean() > 0.5  # most of a real shot warps well


def test_per_frame_noise_is_far_above_the_source(bunny, bunny_motion):
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 8, f.shape), 0, 255).astype(np.uint8) for f in bunny]
    ratio = metrics.warping_error_ratio(noisy, bunny_motion)
    assert ratio > 2.5, ratio
    assert metrics.dream_strength(noisy, bunny).mean() == pytest.approx(6.4 / 255, rel=0.1)  # E|N(0, 8)|


def _with_pattern(layers: list[scenes.Layer], seed: int) -> list[scenes.Layer]:
    """The same layers with a fixed texture added to every sprite: a "dream" glued to the content."""
    rng = np.random.default_rng(seed)
    changed = []
    for layer in layers:
        rgb = layer.sprite.rgb
        # coloured detail a few pixels across, like a dream's strokes at this size
        pattern = cv2.GaussianBlur(rng.normal(0, 1, rgb.shape[:2]).astype(np.float32), (0, 0), 2.0)
        pattern = (0.06 / pattern.std()) * pattern[..., None] * np.array([1.0, -0.5, 0.8], np.float32)
        sprite = dataclasses.replace(layer.sprite, rgb=np.clip(rgb + pattern, 0, 1))
        changed.append(dataclasses.replace(layer, sprite=sprite))
    return changed


def test_a_residual_that_moves_with_the_content_is_near_one():
    size, n = (160, 90), 12
    layers = scenes.PRESETS["crossing"].build(size, np.random.default_rng(3), n / 24)
    source = scenes.render_layers(layers, size, n)
    glued = scenes.render_layers(_with_pattern(layers, 1), size, n)
    src, out = list(source.frames), list(glued.frames)
    strength = metrics.dream_strength(out, src).mean()
    assert strength > 0.03  # a visible change, as strong as a dream
    ratio = metrics.warping_error_ratio(out, src)
    # not exactly 1: the source's estimated flow is a little off, and resampling blurs the detail
    # (issue 9 measured ~1.27 for a dream carried without change on real footage)
    assert 0.9 < ratio < 1.35, ratio
    # as strong, but the texture changes every frame (two patterns alternating): boiling
    other = scenes.render_layers(_with_pattern(layers, 2), size, n).frames
    boiling = [f if t % 2 else other[t] for t, f in enumerate(out)]
    assert metrics.warping_error_ratio(boiling, src) > 2 * ratio


def test_strength_quarters_and_steady_state():
    source = [np.full((8, 8, 3), 100, np.uint8)] * 8
    growing = [np.full((8, 8, 3), 100 + 2 * t, np.uint8) for t in range(8)]
    quarters = metrics.strength_quarters(growing, source)
    assert quarters == pytest.approx(np.array([1, 5, 9, 13]) / 255)


def test_visible_age_follows_the_motion_and_restarts_at_reveals():
    n, h, w = 4, 6, 10
    flows = np.zeros((n, h, w, 2), np.float32)
    flows[1:, ..., 0] = -1.0  # content moves 1 px right per frame: a new column enters at the left
    occluded = np.zeros((n, h, w), bool)
    occluded[1:, :, 0] = True
    ages = metrics.visible_age(flows, occluded)
    assert (ages[0] == metrics.FIRST_FRAME_AGE).all()
    assert (ages[3, :, 0] == 0).all() and (ages[3, :, 1] == 1).all() and (ages[3, :, 2] == 2).all()
    assert (ages[3, :, 3:] >= metrics.STEADY_AGE).all()


def test_holes_measure_sees_undreamed_revealed_regions():
    """A "dream" that leaves every revealed pixel undreamed for 3 frames scores 0 there, then ~1."""
    scene = scenes.make_scene("crossing", (160, 90), 24, crf=None, blur=0)
    source = list(scene.frames)
    ages = metrics.visible_age(scene.flows, scene.occluded)
    rng = np.random.default_rng(0)
    dreamed = []
    for t, frame in enumerate(source):
        change = rng.choice([-12, 12], size=frame.shape[:2])[..., None] * (ages[t] >= 3)[..., None]
        dreamed.append(np.clip(frame.astype(np.int16) + change, 0, 255).astype(np.uint8))
    profile = metrics.hole_profile(dreamed, source, scene.occluded, scene.flows, max_age=5)
    assert profile.pixels[0] > 100  # the scene reveals background behind its movers
    assert np.nanmax(profile.relative[:3]) < 0.05
    assert profile.relative[3:] == pytest.approx(1.0, abs=0.1)
    assert profile.catch_up() == 3


def test_estimated_occlusions_find_the_ground_truth_ones():
    scene = scenes.make_scene("crossing", (160, 90), 8, crf=None, blur=0)
    estimated = metrics.occlusions_from_flow(list(scene.frames))
    truth = scene.occluded[1:]
    # most revealed pixels are found; DIS at 160x90 also flags some pixels around them and in weak texture
    found, false_alarms = estimated[1:][truth].mean(), estimated[1:][~truth].mean()
    assert found > 0.5 and false_alarms < 0.2 and found > 4 * false_alarms, (found, false_alarms)
