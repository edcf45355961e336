"""Evening out a resampling's phase-dependent blur (renderer.phase): no cross through a zoom's centre."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F

from renderer import media, pipeline
from renderer.flow import Interpolation
from renderer.metrics import centre_seam
from renderer.motion import Motion, MotionStep, transform_frame
from renderer.phase import blurs_to_even, even_out, kernel_taps, settled_table
from renderer.plan import RenderRequest, plan_render

H, W = 180, 320


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Hundreds of small resamplings: one thread is faster than a pool."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def photo() -> torch.Tensor:
    image = cv2.resize(skimage.data.astronaut(), (W, H), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def to_uint8(frame: torch.Tensor) -> np.ndarray:
    return (frame[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


@pytest.mark.parametrize("interpolation", list(Interpolation))
def test_kernels_interpolate(interpolation: Interpolation) -> None:
    """Every tabulated kernel sums to 1 at any phase and returns the pixel itself at phase 0."""
    for phase in np.linspace(0.0, 0.95, 20):
        assert kernel_taps(interpolation, phase).sum() == pytest.approx(1.0)
    assert np.allclose(kernel_taps(interpolation, 0.0), [0, 1, 0, 0])


def test_settled_sharpness_falls_with_the_blur() -> None:
    table = settled_table(Interpolation.KEYS)
    assert np.all(np.diff(table, axis=1) < 0)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.3, 0.0), (0.25, 0.7), (-3.5, 2.0)])
def test_one_phase_everywhere_is_left_alone(shift: tuple[float, float]) -> None:
    """No motion, or a shift (every pixel read at the same phase): nothing to even out."""
    image = photo()
    step = MotionStep(translate_x=shift[0] / W, translate_y=shift[1] / H)
    plain = transform_frame(image, step) if not step.is_identity else image
    assert torch.equal(transform_frame(image, step, even=True), plain)


def test_a_zoom_blurs_its_centre_lines_and_not_the_half_phases() -> None:
    """Along a 1.2x/s zoom's centre column every pixel is read at phase ~0 (sharpest): blurred; where the
    phase is 0.5 (most damped already) nothing is added."""
    zoom = 1.2 ** (1 / 24)
    x = torch.arange(W, dtype=torch.float64) + 0.5  # pixel centres, edges at integers
    source = W / 2 + (x - W / 2) / zoom - 0.5  # in pixel-index units, as sample() reads
    phase = source - source.floor()
    amount = blurs_to_even(Interpolation.KEYS, phase)
    centre = amount[W // 2 - 1:W // 2 + 1]
    assert centre.min() > 0.05, centre
    half = (phase - 0.5).abs() < 0.05
    assert half.any() and amount[half].max() == 0.0


def zoom_with_fresh_detail(even: bool, frames: int = 160) -> np.ndarray:
    """A 1.2x/s zoom at 24 fps that adds the same fresh detail everywhere each frame, as a dream does."""
    generator = torch.Generator().manual_seed(0)
    frame = photo()
    step = Motion(zoom=1.2).per_frame(24)
    for _ in range(frames):
        frame = transform_frame(frame, step, even=even)
        frame = (frame + 0.03 * (torch.rand(frame.shape, generator=generator) - 0.5)).clamp(0, 1)
    return to_uint8(frame)


def test_a_fed_back_zoom_draws_no_cross_through_its_centre() -> None:
    """Left alone, the centre lines keep all the detail added on them and show as a cross (seam 4.2 at
    320x180 after 160 frames); evened out, they hold what the rest of the frame holds (1.2). The corners,
    whose content has crossed every phase, lose a little more (0.75 of their Laplacian variance: the
    sharpness controller makes that up in a render)."""
    plain, evened = zoom_with_fresh_detail(False), zoom_with_fresh_detail(True)
    assert centre_seam(plain) > 2.5
    assert centre_seam(evened) < 1.5

    def corner_sharpness(image: np.ndarray) -> float:
        laplacian = cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F)
        return float(np.concatenate([laplacian[:H // 4, :W // 4], laplacian[-H // 4:, -W // 4:]]).var())
    assert 0.6 * corner_sharpness(plain) < corner_sharpness(evened) <= corner_sharpness(plain)


def test_even_out_keeps_the_range_and_the_batch() -> None:
    image = torch.rand(2, 3, 40, 64, dtype=torch.float64)
    theta = torch.tensor([[[0.9, 0.05, 0.01], [-0.05, 0.9, 0.02]]], dtype=torch.float64).expand(2, 2, 3)
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    out = even_out(image, grid, Interpolation.KEYS)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert out.min() >= image.min() and out.max() <= image.max()
    assert not torch.equal(out, image)


@pytest.mark.slow  # 150 frames dreamed at 320x180, about 20 s
def test_a_zoom_dreamed_from_noise_draws_no_cross(tmp_path) -> None:
    """noise-genesis's dream, cheapened (one step of mixed3a a frame), zooming 1.2x/s from the start: the
    frames the render feeds back are evened out, so no cross grows through the zoom's centre (measured at
    320x180: seam 1.4 over the last quarter; 3.0 when the fed-back frames are not evened out)."""
    out = tmp_path / "dive.mp4"
    settings = ("dream.working_size=0", "motion.zoom=1.2", "dream.objective=mixed3a", "dream.steps=1",
                "dream.octaves=1", "dream.first_steps=4", "dream.first_octaves=2")
    pipeline.render(plan_render(RenderRequest("noise", out, "noise-genesis", settings, frames=150, size=(320, 180),
                                              device="cpu")))
    frames = list(media.read_video(out))
    seams = [centre_seam(frame) for frame in frames[-len(frames) // 4:]]
    assert float(np.mean(seams)) < 2.0, seams
