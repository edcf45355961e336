"""`motion.mix`: the video shows through a feedback zoom at that share, without ghosts of earlier frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

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
    current, *stale = stale_shares(tmp_path)
    print(current, stale)
    assert current == pytest.approx(MIX, abs=0.03)
    assert max(abs(s) for s in stale) < 0.05  # blending on top (dreamvid 0.1) left 0.166, 0.130, 0.106 here
