"""`motion.mix`: the video shows through a feedback zoom at that share, without ghosts of earlier frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from renderer import media, pipeline
from renderer.frames import to_tensor
from renderer.motion import Motion, compose, resample
from renderer.plan import RenderRequest, plan_render

FPS, ZOOM, MIX = 12, 1.5, 0.2


def stale_shares(tmp_path, *overrides: str) -> np.ndarray:
    """Least-squares weights of the current source frame and the 1, 2, 3 frames before it (each moved
    along the zoom as far as the feedback moved it) in the rendered frames 8..13 of a folder of
    independent frames (dream steps 0: the mixing alone)."""
    # Independent frames (smooth random patterns): each earlier frame's copy is told apart exactly.
    clip = tmp_path / "frames"
    clip.mkdir()
    rng = np.random.default_rng(0)
    for n in range(14):
        pattern = cv2.GaussianBlur(rng.random((64, 96, 3)).astype(np.float32), (0, 0), 2.0)
        pattern = (pattern - pattern.mean()) / pattern.std() * 0.15 + 0.5
        media.save_image(clip / f"{n:03d}.png", (pattern.clip(0, 1) * 255).round().astype(np.uint8))
    out = tmp_path / "out"
    settings = ("dream.working_size=0", "dream.steps=0", "dream.first_steps=0", "dream.octaves=1", "dream.first_octaves=1", f"motion.zoom={ZOOM}", f"motion.mix={MIX}", "color.match=0",
                *overrides)
    pipeline.render(plan_render(RenderRequest(str(clip), out, "fractal-zoom", settings, fps=FPS, device="cpu")))
    frames = [to_tensor(media.load_image(p)) for p in media.list_frame_folder(out)]
    source = [to_tensor(media.load_image(p)) for p in media.list_frame_folder(clip)]
    step = Motion(zoom=ZOOM).per_frame(FPS)
    h, w = frames[0].shape[-2:]
    shares = []
    for t in range(8, 14):
        columns = [resample(source[t - n], compose([step] * n, h, w))[0] if n else source[t - n] for n in range(4)]
        a = np.stack([c[..., 8:-8, 8:-8].flatten().numpy() for c in columns] + [np.ones(columns[0][..., 8:-8, 8:-8].numel())], 1)
        b = frames[t][..., 8:-8, 8:-8].flatten().numpy()
        shares.append(np.linalg.lstsq(a, b, rcond=None)[0][:4])
    return np.mean(shares, 0)


def test_the_source_shows_at_its_share_without_stale_copies(tmp_path):
    current, *stale = stale_shares(tmp_path, "motion.follow=0")
    print(current, stale)
    assert current == pytest.approx(MIX, abs=0.03)
    assert max(abs(s) for s in stale) < 0.05  # blending on top (dreamvid 0.1) left 0.166, 0.130, 0.106 here


def test_following_the_layout_leaves_no_stale_copies_either(tmp_path):
    """With ``motion.follow`` the layout is the current source frame's: the layout of earlier frames is
    swapped out, not left to fade (a plain pull toward the source lagged: stale 0.11, 0.09, 0.08 here)."""
    current, *stale = stale_shares(tmp_path, "motion.follow=0.4")
    print(current, stale)
    assert current > 0.8  # these patterns are mostly layout, which is all the current frame's now
    assert max(abs(s) for s in stale) < 0.05


# ------------------------------------------------------------------------------------- motion.follow

def test_follow_share_is_a_lag_in_seconds_whatever_the_fps():
    assert pipeline.follow_share(0.0, 24) == 0.0
    assert pipeline.follow_share(0.4, 24) == pytest.approx(0.0989, abs=1e-4)
    # after one second the same share of the gap is left at 24 and 60 fps: e^(-1 / 0.4)
    for fps in (24, 60):
        assert (1 - pipeline.follow_share(0.4, fps)) ** fps == pytest.approx(np.exp(-2.5), rel=1e-9)


def test_follow_layout_fades_the_dreams_layout_and_leaves_the_texture():
    source = to_tensor(cv2.resize(media.load_image("samples/chelsea.jpg"), (240, 160), interpolation=cv2.INTER_AREA))
    y, x = torch.meshgrid(torch.arange(160), torch.arange(240), indexing="ij")
    texture = 0.08 * (1 - 2 * ((x + y) % 2)).float()  # a checkerboard: the finest texture there is
    grey = torch.full_like(source, 0.5)
    pulled = pipeline.follow_layout((grey + texture).clamp(0, 1), source, None, 0.0, 1.0)
    # the layout is the source's now ...
    assert (pipeline.layout(pulled) - pipeline.layout(source)).abs().mean() < 0.02  # of a gap of 0.13
    # ... the fine texture is still there, untouched
    fine = pulled - pipeline.follow_layout(grey, source, None, 0.0, 1.0)
    assert (fine - texture).abs().mean() < 0.01
    # a frame whose layout is already the source's does not move; a share of 0.25 closes a quarter of the gap
    assert (pipeline.follow_layout(source, source, None, 0.0, 1.0) - source).abs().max() < 1e-6
    quarter = pipeline.follow_layout(grey, source, None, 0.0, 0.25)
    gap = pipeline.layout(source) - pipeline.layout(grey)
    assert (pipeline.layout(quarter) - pipeline.layout(grey) - 0.25 * gap).abs().mean() < 0.01


def test_follow_layout_swaps_the_layout_of_the_source_that_moved():
    """The frame holds the previous source frame's layout (the dream added nothing): with share 0 it is
    given the current one's exactly, whatever `mix` already swapped of it."""
    rng = torch.Generator().manual_seed(0)
    before, after = (torch.nn.functional.interpolate(torch.rand(1, 3, 9, 16, generator=rng), size=(90, 160),
                                                     mode="bicubic", align_corners=False).clamp(0, 1)
                     for _ in range(2))  # two unrelated scenes: broad shapes and light
    for mix in (0.0, 0.3):
        frame = before + mix * (after - before)  # what the mix swap leaves: before's layout at 1 - mix
        moved = pipeline.follow_layout(frame, after, before, mix, 0.0)
        gap = (pipeline.layout(before) - pipeline.layout(after)).abs().mean()
        assert (pipeline.layout(moved) - pipeline.layout(after)).abs().mean() < 0.1 * gap


def source_correlation(frame: torch.Tensor, source: torch.Tensor) -> float:
    a, b = (pipeline.layout(x).flatten() for x in (frame, source))
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


@pytest.mark.parametrize("follow", [0.0, 0.4])
def test_a_zoom_keeps_the_video_readable_with_follow(tmp_path, follow):
    """Four seconds of a 1.5x/s zoom over a still scene (a folder of identical frames, dream steps 0: the
    feedback alone): without follow the picture is the scene magnified 5x, with 0.4 s it stays the scene."""
    clip = tmp_path / "frames"
    clip.mkdir()
    scene = cv2.resize(media.load_image("samples/chelsea.jpg"), (96, 64), interpolation=cv2.INTER_AREA)
    for n in range(49):
        media.save_image(clip / f"{n:03d}.png", scene)
    out = tmp_path / "out"
    settings = ("dream.working_size=0", "dream.steps=0", "dream.first_steps=0", "dream.octaves=1",
                "dream.first_octaves=1", f"motion.zoom={ZOOM}", "motion.mix=0", f"motion.follow={follow}",
                "color.match=0", "color.detail=0")
    pipeline.render(plan_render(RenderRequest(str(clip), out, "fractal-zoom", settings, fps=FPS, device="cpu")))
    last = to_tensor(media.load_image(media.list_frame_folder(out)[-1]))
    r = source_correlation(last, to_tensor(scene))
    print(follow, r)
    if follow:
        assert r > 0.9  # measured 0.99
    else:
        assert r < 0.6  # measured 0.50: the scene magnified 5x
