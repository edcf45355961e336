"""Flow mode keeps its dream: the strength holds over a clip, and revealed regions catch up.

Judged on decoded output with the issue's own measure (mean |dream - source| by quarter), and, for the
catch-up, on the per-pixel step weights the real engine is called with (a spy hands every call on).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLES, ffmpeg
from renderer import media, metrics, pipeline, scenes
from renderer.plan import RenderRequest, plan_render

FAST = ("dream.working_size=0", "dream.steps=2", "dream.octaves=1", "dream.first_steps=4", "dream.first_octaves=2",
        "dream.objective=mixed4a", "dream.step_size=0.015")


def render(clip: Path, out: Path, *overrides: str) -> list[np.ndarray]:
    pipeline.render(plan_render(RenderRequest(str(clip), out, "flow-dream", FAST + overrides, device="cpu")))
    return list(media.read_video(out))


@pytest.fixture(scope="module")
def grass(tmp_path_factory) -> Path:
    """48 frames of the bunny sample at 128x72: a character against grass and trees, textured footage
    whose fine detail warps imperfectly (the carried dream used to be dropped on a quarter of it a frame)."""
    path = tmp_path_factory.mktemp("strength") / "bunny.mp4"
    ffmpeg("-i", str(SAMPLES / "bunny.mp4"), "-frames:v", "48", "-vf", "scale=128:72", "-an", "-c:v", "libx264",
           "-crf", "12", "-pix_fmt", "yuv420p", str(path))
    return path


@pytest.fixture(scope="module")
def crossing(tmp_path_factory) -> Path:
    """Movers crossing over a panning background with parallax (independent motion, occlusion)."""
    return scenes.make_scene("crossing", (128, 72), 36).write(tmp_path_factory.mktemp("strength") / "crossing.mp4")


@pytest.mark.parametrize("clip", ["grass", "crossing"])
def test_the_dream_does_not_fade_over_the_clip(tmp_path, request, clip):
    """Every quarter of the clip keeps at least 90 % of the first quarter's dream strength (it faded to
    86 % on the grass and 75 % on the crossing scene before the strength hold and catch-up)."""
    source_path = request.getfixturevalue(clip)
    dreamed = render(source_path, tmp_path / "dream.mp4")
    sources = list(media.read_video(source_path))
    quarters = metrics.strength_quarters(dreamed, sources)
    assert (quarters[1:] >= 0.9 * quarters[0]).all(), quarters
    # Held, not piling up either: the hold's target is the first frame's strength (the first quarter
    # can sit below it while the carry settles).
    target = metrics.dream_strength(dreamed[:1], sources[:1])[0]
    assert (quarters <= 1.2 * target).all(), (quarters, target)


def test_the_dream_is_held_at_the_first_frames_strength_where_the_carry_wears_it_down(tmp_path, crossing):
    """On the crossing scene the carry loses more than 3 % of the dream a keyframe (resampling, renewal
    behind the movers); the hold amplifies it back by up to ``flow.hold`` (0.08) a keyframe, so the dip of
    the first keyframes stays above 83 % of the first frame's strength and from frame 12 on every frame
    keeps at least 90 % of it. At a 3 % cap the hold settled at 77-81 % of it (from frame 4: 0.78 at
    worst, from frame 12: 0.81); at 8 % the dip is 0.86-0.89 at frames 3-9, by CPU (AMD EPYC, Xeon), and
    0.95 or more from frame 12."""
    dreamed = render(crossing, tmp_path / "dream.mp4")
    strength = metrics.dream_strength(dreamed, list(media.read_video(crossing)))
    assert strength[4:].min() >= 0.83 * strength[0], strength / strength[0]
    assert strength[12:].min() >= 0.9 * strength[0], strength / strength[0]
    # flow.hold = 0: never amplified, the carry wears the dream down, and nothing else changes it.
    faded = metrics.dream_strength(render(crossing, tmp_path / "faded.mp4", "flow.hold=0"),
                                   list(media.read_video(crossing)))
    assert faded[12:].mean() < 0.95 * strength[12:].mean(), (faded / strength[0], strength / strength[0])


@pytest.mark.parametrize("catch_up", [3, 1])
def test_a_revealed_region_is_dreamed_back_over_a_few_keyframes(tmp_path, monkeypatch, catch_up):
    """A pan brings new picture in at the left edge, 4 px a frame: the entering strip is dreamed at
    ``flow.refresh``, and as it moves in, its step weights ease to ``flow.refine`` over ``flow.catch_up``
    keyframes (three by default; they used to drop to ``refine`` at once, leaving the new picture dreamed
    weaker than the rest). With ``catch_up = 1`` the strip is dreamed hard once, in the keyframe it enters."""
    photo = media.load_image(SAMPLES / "chelsea.jpg")
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(8):
        media.save_image(folder / f"{t:03d}.png", photo[100:172, 60 - 4 * t:188 - 4 * t])  # content moves right
    weights: list[np.ndarray] = []
    real = pipeline.dream

    def spy(init, model, objective, settings, generator, weight=None):
        weights.append(None if weight is None else weight[0, 0].numpy().copy())
        return real(init, model, objective, settings, generator, weight)

    monkeypatch.setattr(pipeline, "dream", spy)
    render(folder, tmp_path / "dream.mp4", "flow.cadence=1", "flow.refine=0.1", "flow.refresh=2.0",
           f"flow.catch_up={catch_up}")
    assert len(weights) == 8 and weights[0] is None  # frame 0: the full first dream
    for weight in weights[4:]:
        by_column = np.median(weight, axis=0)
        assert by_column[0:4] == pytest.approx(2.0, abs=0.05)  # entering now: dreamed hard
        if catch_up == 3:
            assert 1.1 < by_column[6:8].mean() < 1.7           # entered a keyframe ago: still catching up
            assert 0.5 < by_column[9:11].mean() < 1.2          # two keyframes ago
        else:
            assert by_column[6:8].mean() < 0.3                 # entered a keyframe ago: caught up already
        assert by_column[16:] == pytest.approx(0.1, abs=0.01)  # caught up: refined lightly


def test_nothing_moves_so_the_dream_stays_put(tmp_path):
    """flow-dream dreams again only where the carry fails (``flow.refine = 0``): on a still shot the
    carry never fails, so every frame shows the first frame's dream exactly. Refining every keyframe
    (refine 0.1, the setting before) changed 2-3 % of the dream's strength a frame: a slow boil."""
    clip = tmp_path / "still.mp4"
    ffmpeg("-loop", "1", "-i", str(SAMPLES / "chelsea.jpg"), "-frames:v", "12", "-r", "24", "-vf", "scale=128:72",
           "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", str(clip))
    out = tmp_path / "frames"
    pipeline.render(plan_render(RenderRequest(str(clip), f"{out}/", "flow-dream", FAST, device="cpu")))
    frames = [media.load_image(p) for p in media.list_frame_folder(out)]
    strength = metrics.dream_strength(frames, list(media.read_video(clip)))
    change = [float(np.abs(b.astype(np.float32) - a).mean()) / 255 for a, b in zip(frames, frames[1:])]
    assert len(frames) == 12 and strength.min() > 0.02, strength  # dreamed, and held
    assert max(change) < 0.01 * strength[0], (change, strength[0])
