"""The scene generator's ground truth, and a generated scene through the real flow-mode pipeline."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from renderer import media, metrics, pipeline, scenes
from renderer.plan import RenderRequest, plan_render


def _warp_residual(scene: scenes.Scene, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(residual of frame t-1 carried along the ground-truth flow, mask of pixels it should hold on)."""
    carried = metrics.warp_back(scene.frames[t - 1].astype(np.float32) / 255, scene.flows[t])
    residual = np.abs(carried - scene.frames[t].astype(np.float32) / 255).mean(axis=2)
    # skip occlusions and soft edges, and the pixel beside them (bilinear reads one pixel around)
    bad = cv2.dilate((scene.occluded[t] | scene.mixed[t]).astype(np.uint8), np.ones((3, 3), np.uint8))
    return residual, bad == 0


@pytest.mark.parametrize("name", list(scenes.PRESETS))
def test_ground_truth_flow_carries_each_frame_onto_the_next(name):
    scene = scenes.make_scene(name, (160, 90), 12, blur=0, brightness=0, flicker=0, noise=0, crf=None)
    assert scene.frames.shape == (12, 90, 160, 3) and scene.frames.dtype == np.uint8
    assert scene.flows.shape == (12, 90, 160, 2) and not scene.flows[0].any()
    carried, still = [], []
    for t in range(1, len(scene)):
        residual, valid = _warp_residual(scene, t)
        assert valid.mean() > 0.6
        # only bilinear resampling of the (sharp) textures is left
        assert residual[valid].mean() < 0.012, t
        moving = valid & (np.linalg.norm(scene.flows[t], axis=-1) > 0.5)
        carried.append(residual[moving])
        still.append(np.abs(scene.frames[t - 1].astype(np.float32) - scene.frames[t]).mean(axis=2)[moving] / 255)
    # where things move, that is a small part of the change: frame t-1 taken as it is leaves far more
    assert np.concatenate(carried).mean() < 0.25 * np.concatenate(still).mean()
    # there is motion, and it is not one pan: different layers move differently
    speeds = np.linalg.norm(scene.flows[1:], axis=-1)
    assert speeds.mean() > 0.3 and speeds.std() > 0.2


@pytest.mark.parametrize("name", list(scenes.PRESETS))
def test_movers_occlude_and_reveal(name):
    scene = scenes.make_scene(name, (160, 90), 12, crf=None)
    revealed = scene.occluded[1:].mean(axis=(1, 2))
    assert not scene.occluded[0].any()
    assert (revealed > 0.002).all() and revealed.mean() < 0.2
    # revealed pixels really are new: the ground truth flow does not carry them (large residual)
    residual = np.concatenate([_warp_residual(scene, t)[0][scene.occluded[t]] for t in range(1, 12)])
    assert np.median(residual) > 0.02


def test_scenes_are_deterministic_and_the_seed_matters():
    a = scenes.make_scene("street", (64, 36), 6, seed=3)
    b = scenes.make_scene("street", (64, 36), 6, seed=3)
    c = scenes.make_scene("street", (64, 36), 6, seed=4)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.flows, b.flows)
    assert np.array_equal(a.occluded, b.occluded)
    assert not np.array_equal(a.frames, c.frames)


def test_write_a_scene_with_a_soundtrack(tmp_path):
    scene = scenes.make_scene("orbit", (64, 36), 12, crf=None)
    path = scene.write(tmp_path / "orbit.mp4")
    info = media.probe(path)
    assert (info.width, info.height, info.has_audio) == (64, 36, True) and info.fps == pytest.approx(24)
    decoded = list(media.read_video(path))
    assert len(decoded) == 12
    assert metrics.dream_strength(decoded, list(scene.frames)).mean() < 0.03  # x264 at crf 18


def test_a_scene_through_the_flow_pipeline(tmp_path):
    """A generated scene renders in flow mode and the issue's metrics run on it (quality: benchmarks/)."""
    scene = scenes.make_scene("crossing", (64, 36), 12)
    clip = scene.write(tmp_path / "crossing.mp4")
    out = tmp_path / "dream.mp4"
    fast = ("dream.working_size=0", "dream.steps=1", "dream.octaves=1", "dream.first_steps=1", "dream.first_octaves=1",
            "dream.objective=mixed3b")
    plan = plan_render(RenderRequest(str(clip), out, "flow-dream", fast, device="cpu"))
    pipeline.render(plan)
    dreamed, source = list(media.read_video(out)), list(media.read_video(clip))
    assert len(dreamed) == len(source) == 12
    ratio = metrics.warping_error_ratio(dreamed, source)
    quarters = metrics.strength_quarters(dreamed, source)
    holes = metrics.hole_profile(dreamed, source, scene.occluded, scene.flows, max_age=3)
    assert np.isfinite(ratio) and ratio > 0.5
    assert (quarters > 0).all()
    assert holes.pixels[0] > 0 and np.isfinite(holes.relative[0])
