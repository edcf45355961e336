"""Cadence (``flow.cadence`` / ``motion.cadence``): dream every k-th frame, tween the frames between.

The dream calls are counted with a spy that hands every call to the real engine; the looks are judged
on the decoded output with the issue's own metrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLES
from renderer import media, metrics, pipeline, scenes
from renderer.plan import RenderRequest, plan_render

FAST = ("dream.working_size=0", "dream.steps=2", "dream.octaves=1", "dream.first_steps=4", "dream.first_octaves=2",
        "dream.objective=mixed4a", "dream.step_size=0.015")


@pytest.fixture
def dream_calls(monkeypatch) -> list[int]:
    """The number of frames dreamed so far in this test (each call goes to the real dream)."""
    calls: list[int] = []
    real = pipeline.dream

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "dream", counting)
    return calls


def render(clip: Path | str, out: Path, preset: str, *overrides: str, **request) -> list[np.ndarray]:
    pipeline.render(plan_render(RenderRequest(str(clip), out, preset, FAST + overrides, device="cpu", **request)))
    return list(media.read_video(out)) if out.suffix else [media.load_image(p) for p in media.list_frame_folder(out)]


@pytest.fixture(scope="module")
def crossing(tmp_path_factory) -> Path:
    """Movers crossing over a panning background with parallax (independent motion, occlusion)."""
    scene = scenes.make_scene("crossing", (112, 64), 18)
    return scene.write(tmp_path_factory.mktemp("cadence") / "crossing.mp4")


def test_flow_cadence_dreams_every_kth_frame_and_flickers_no_more(tmp_path, crossing, dream_calls):
    source = list(media.read_video(crossing))
    figures = {}
    for k in (1, 4):
        dream_calls.clear()
        frames = render(crossing, tmp_path / f"k{k}.mp4", "flow-dream", f"flow.cadence={k}")
        assert len(frames) == len(source) == 18
        figures[k] = (len(dream_calls), metrics.warping_error_ratio(frames, source),
                      float(metrics.dream_strength(frames, source).mean()))
    print(figures)
    assert figures[1][0] == 18
    assert figures[4][0] == 1 + 4 + 1  # frame 0, keyframes 4, 8, 12, 16, and the last frame (17)
    assert figures[4][1] <= 1.05 * figures[1][1]  # tweened frames move with the content
    assert figures[4][2] >= 0.75 * figures[1][2]  # and keep the dream


def test_feedback_cadence_tweens_without_pops(tmp_path, dream_calls):
    """A zoom from a photo at cadence 4: no jump at the keyframes (the change from frame to frame there
    is like the change between tweened frames), and the zoom keeps its speed."""
    frames = render(SAMPLES / "chelsea.jpg", tmp_path / "zoom.mp4", "fractal-zoom", "motion.cadence=4",
                    "motion.zoom=2.5", size=(96, 64), frames=13, fps=12.0)
    assert len(dream_calls) == 4 and len(frames) == 13
    steps = np.array([np.abs(b.astype(float) - a).mean() for a, b in zip(frames, frames[1:])])
    into_keyframes, tweens = steps[[3, 7, 11]], np.delete(steps, [3, 7, 11])
    print(steps.round(2))
    assert into_keyframes.max() < 2.0 * np.median(tweens)


def test_cadence_follows_its_schedule(tmp_path, dream_calls):
    """Every frame for the first 6, then every 4th: keyframes 0..6, 10, and the last (12)."""
    render(SAMPLES / "chelsea.jpg", tmp_path / "zoom.mp4", "fractal-zoom", "motion.cadence=0:(1), 5:(1), 6:(4)",
           size=(64, 48), frames=13, fps=12.0)
    assert len(dream_calls) == 7 + 1 + 1


def test_cadence_out_of_range_is_refused(capsys, monkeypatch, tmp_path):
    from conftest import dreamvid

    code, _, err = dreamvid(capsys, monkeypatch, "render", SAMPLES / "chelsea.jpg", "-o", tmp_path / "x.mp4",
                            "--set", "motion.cadence=40")
    assert code != 0 and "motion.cadence" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.mp4").exists()


def test_interrupted_cadence_render_resumes_to_the_same_frames(tmp_path, crossing):
    """Ctrl-C lands between keyframe groups; --resume continues from the last keyframe to exactly the
    frames of an uninterrupted render (PNG output, compared bit for bit)."""
    whole = render(crossing, tmp_path / "whole", "flow-dream", "flow.cadence=3", frames=14)

    def interrupt_after_7(done: int, total: int) -> None:
        if done >= 7:
            raise KeyboardInterrupt

    cut = tmp_path / "cut"
    plan = plan_render(RenderRequest(str(crossing), cut, "flow-dream", FAST + ("flow.cadence=3",), frames=14, device="cpu"))
    with pytest.raises(pipeline.RenderInterrupted):
        pipeline.render(plan, interrupt_after_7)
    resumed = render(crossing, cut, "flow-dream", "flow.cadence=3", frames=14, resume=True)
    assert len(resumed) == len(whole) == 14
    assert all(np.array_equal(a, b) for a, b in zip(whole, resumed))


@pytest.mark.parametrize("cadence", [1, 3])
def test_what_enters_at_the_edge_is_dreamed_afresh_not_stretched(tmp_path, cadence) -> None:
    """A camera panning over a smooth, blurred picture: what enters at the right edge passes the
    consistency test (smooth content warps well), so only the frame's edge stops the carry there. It
    used to be read with border padding: the last column's dream stretched across the new strip in
    horizontal streaks (the residual there changed 2.5-3.5x less along x than along y; now about as much)."""
    import cv2

    picture = cv2.GaussianBlur(media.load_image(SAMPLES / "chelsea.jpg"), (0, 0), 6)
    picture = cv2.resize(picture, (192, 64), interpolation=cv2.INTER_AREA)
    folder = tmp_path / "pan"
    folder.mkdir()
    for n in range(13):  # 3 px a frame to the right: 36 px enter at the edge
        media.save_image(folder / f"frame_{n:03d}.png", np.ascontiguousarray(picture[:, 3 * n:3 * n + 96]))
    frames = render(folder, tmp_path / "out", "flow-dream", f"flow.cadence={cadence}")
    source = [media.load_image(p) for p in media.list_frame_folder(folder)]
    residual = frames[-1].astype(np.float32) - source[-1]
    strip = residual[:, -30:-2].mean(axis=2)  # entered in the last 10 frames
    along_x = np.abs(np.diff(strip, axis=1)).mean()
    along_y = np.abs(np.diff(strip, axis=0)).mean()
    print(f"cadence {cadence}: entered strip, mean |d residual| along x {along_x:.2f}, along y {along_y:.2f}")
    assert along_x > 0.5 * along_y
