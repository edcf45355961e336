"""Optical flow on real textures with known motion, warping conventions, consistency masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from renderer.flow import (
    FlowEstimator,
    FlowMethod,
    FlowPair,
    Interpolation,
    consistency_mask,
    drift_mask,
    estimate_flow,
    flow_to_tensor,
    photometric_mask,
    warp,
)

H, W = 120, 160
MARGIN = (slice(10, -10), slice(10, -10))  # interior: away from pixels that came from outside


def photo(name: str = "chelsea", size: tuple[int, int] = (W, H)) -> np.ndarray:
    return cv2.resize(getattr(skimage.data, name)(), size, interpolation=cv2.INTER_AREA)


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` with its content moved by (dx, dy) px (bicubic, reflected borders)."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(
        image, matrix, image.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def constant_flow(dx: float, dy: float, height: int = H, width: int = W) -> torch.Tensor:
    return torch.tensor([dx, dy]).view(1, 2, 1, 1).expand(1, 2, height, width).contiguous()


def median_error(flow: np.ndarray, dx: float, dy: float) -> float:
    interior = flow[MARGIN]
    return float(np.median(np.hypot(interior[..., 0] - dx, interior[..., 1] - dy)))


@pytest.mark.parametrize("interpolation", list(Interpolation))
@pytest.mark.parametrize(("dx", "dy"), [(3.0, 0.0), (-2.0, 5.0)])
def test_warp_by_whole_pixels_is_an_exact_shift(interpolation: Interpolation, dx: float, dy: float) -> None:
    image = torch.rand(1, 3, H, W, dtype=torch.float64)
    out = warp(image, constant_flow(dx, dy).double(), interpolation=interpolation)
    x0, y0 = int(dx), int(dy)
    expected = image[..., max(y0, 0) : H + min(y0, 0), max(x0, 0) : W + min(x0, 0)]
    assert torch.allclose(
        out[..., max(-y0, 0) : H - max(y0, 0), max(-x0, 0) : W - max(x0, 0)], expected, atol=1e-9
    )


@pytest.mark.parametrize("interpolation", [Interpolation.BILINEAR, Interpolation.KEYS])
def test_warp_by_a_subpixel_flow_samples_between_pixels(interpolation: Interpolation) -> None:
    # both kernels reproduce linear ramps exactly, so the result is known
    ys, xs = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    ramp = (0.3 * xs - 0.2 * ys)[None, None]
    out = warp(ramp, constant_flow(0.25, -1.5).double(), interpolation=interpolation)
    assert torch.allclose(out[..., 5:-5, 5:-5], (ramp + 0.3 * 0.25 + 0.2 * 1.5)[..., 5:-5, 5:-5], atol=1e-9)


def test_warp_with_a_flow_field_moves_each_pixel() -> None:
    image = torch.arange(H * W, dtype=torch.float64).view(1, 1, H, W)
    flow = torch.zeros(1, 2, H, W, dtype=torch.float64)
    flow[0, 0, 7, 9], flow[0, 1, 7, 9] = 4.0, 2.0  # pixel (9, 7) reads (13, 9)
    assert warp(image, flow)[0, 0, 7, 9].item() == image[0, 0, 9, 13].item()


@pytest.mark.parametrize("method", list(FlowMethod))
@pytest.mark.parametrize(("dx", "dy"), [(3.0, -2.0), (2.5, 1.25), (0.4, -0.3)])
def test_estimated_flow_matches_a_known_shift(method: FlowMethod, dx: float, dy: float) -> None:
    """Measured median errors, `chelsea` 160x120: DIS 0.03-0.08 px, Farneback 0.005-0.05 px."""
    prev = photo()
    cur = shifted(prev, dx, dy)
    true_flow = np.broadcast_to(np.float32([-dx, -dy]), (H, W, 2))
    no_flow = np.zeros((H, W, 2), np.float32)
    pair = FlowEstimator(method).forward_backward(prev, cur)
    assert isinstance(pair, FlowPair)
    for flow in pair:
        assert flow.shape == (H, W, 2) and flow.dtype == np.float32
    # backward: cur pixel x shows prev at x - shift; forward: prev pixel x is found in cur at x + shift
    assert median_error(pair.backward, -dx, -dy) < 0.3
    assert median_error(pair.forward, dx, dy) < 0.3

    # warping the previous frame reproduces the current one, nearly as well as the true flow does
    # (measured mean abs error <= 0.0033 against >= 0.018 unwarped; bilinear would blur to 0.007)
    def error(flow: torch.Tensor) -> float:
        warped = warp(to_tensor(prev), flow, interpolation=Interpolation.KEYS)
        return (warped - to_tensor(cur))[(..., *MARGIN)].abs().mean().item()

    estimated, true, unwarped = (error(flow_to_tensor(f)) for f in (pair.backward, true_flow, no_flow))
    assert estimated < unwarped / 4 and estimated < true + 0.002, (estimated, true, unwarped)


def test_estimate_flow_is_the_backward_flow() -> None:
    prev = photo("astronaut")
    cur = shifted(prev, -1.5, 2.0)
    flow = estimate_flow(prev, cur, FlowMethod.DIS)
    assert np.array_equal(flow, FlowEstimator(FlowMethod.DIS).backward(prev, cur))
    assert median_error(flow, 1.5, -2.0) < 0.3


def test_large_frames_are_estimated_downscaled_in_full_resolution_pixels() -> None:
    prev = photo("astronaut", size=(320, 240))
    cur = shifted(prev, 6.0, -4.0)
    flow = FlowEstimator(max_width=160).backward(prev, cur)  # estimated at 160x120
    assert flow.shape == (240, 320, 2)
    assert median_error(flow, -6.0, 4.0) < 0.3


def test_bad_frames_are_rejected() -> None:
    estimator = FlowEstimator()
    frame = photo()
    with pytest.raises(ValueError, match="differ in size"):
        estimator.backward(frame, frame[:-1])
    with pytest.raises(ValueError, match="uint8 RGB"):
        estimator.backward(frame.astype(np.float32), frame)
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        flow_to_tensor(np.zeros((H, W, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        warp(to_tensor(frame), torch.zeros(1, 3, H, W))


def test_flow_to_tensor_layout() -> None:
    flow = np.random.default_rng(0).normal(size=(H, W, 2)).astype(np.float32)
    tensor = flow_to_tensor(flow, "cpu", torch.float64)
    assert tensor.shape == (1, 2, H, W) and tensor.dtype == torch.float64
    assert tensor[0, :, 5, 7].tolist() == pytest.approx(flow[5, 7].tolist())


def test_mask_of_exact_translation_marks_only_what_left_the_frame() -> None:
    bwd, fwd = constant_flow(3.0, 0.0), constant_flow(-3.0, 0.0)
    mask = consistency_mask(bwd, fwd, soften=0)
    assert mask.shape == (1, 1, H, W) and mask.dtype == torch.float32
    assert mask[..., : W - 3].min().item() == 1.0  # read from inside the previous frame
    assert mask[..., W - 3 :].max().item() == 0.0  # read from beyond its right edge
    inconsistent = consistency_mask(bwd, torch.zeros_like(fwd), soften=0)
    assert inconsistent.max().item() == 0.0


def test_mask_marks_motion_boundaries() -> None:
    bwd = torch.zeros(1, 2, H, W, dtype=torch.float64)
    bwd[:, 0, :, W // 2 :] = 2.0  # a 2-px jump between columns W/2 - 1 and W/2
    lenient = {"alpha2": 1e9, "soften": 0}  # pass the forward-backward test everywhere
    mask = consistency_mask(bwd, torch.zeros_like(bwd), **lenient)
    assert mask.dtype == torch.float64
    assert mask[0, 0, :, W // 2 - 1 : W // 2 + 1].max().item() == 0.0
    assert mask[0, 0, :, : W // 2 - 1].min().item() == 1.0
    assert mask[0, 0, :, W // 2 + 1 : W - 2].min().item() == 1.0  # the last 2 columns read outside
    no_boundaries = consistency_mask(bwd, torch.zeros_like(bwd), beta1=None, **lenient)
    assert no_boundaries[..., : W - 2].min().item() == 1.0


def test_softening_keeps_unreliable_pixels_at_zero() -> None:
    bwd = torch.zeros(1, 2, H, W)
    fwd = torch.zeros(1, 2, H, W)
    fwd[..., 50:60, 70:80] = 5.0  # an inconsistent 10x10 patch
    hard, soft = consistency_mask(bwd, fwd, soften=0), consistency_mask(bwd, fwd, soften=2)
    assert set(hard.unique().tolist()) == {0.0, 1.0}
    assert soft[hard == 0].max().item() == 0.0
    assert soft.min().item() >= 0.0 and soft.max().item() == 1.0
    assert soft[0, 0, 55, 80:86].tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])  # linear ramp


def square_scene(x: int) -> np.ndarray:
    """A photo with a 40-px textured square whose left edge is at column `x` (rows 40..79)."""
    frame = photo()
    frame[40:80, x : x + 40] = cv2.resize(skimage.data.astronaut()[100:300, 150:350], (40, 40),
                                          interpolation=cv2.INTER_AREA)
    return frame


def test_mask_finds_the_strip_uncovered_by_a_moving_square() -> None:
    """A 40-px textured square moves 8 px right over a static photo (DIS).

    Measured (default soften=2): uncovered strip 0.04, square 0.96, static background 0.99.
    Farneback smooths the flow across the square's edge in both directions alike, so its check
    passes on this 8-px strip (0.98): use DIS, the default, for flow mode.
    """
    pair = FlowEstimator(FlowMethod.DIS).forward_backward(square_scene(50), square_scene(58))
    mask = consistency_mask(flow_to_tensor(pair.backward), flow_to_tensor(pair.forward))[0, 0]
    strip = mask[44:76, 51:57]  # background at x 50..57 was under the square in the previous frame
    moving = mask[44:76, 62:94]
    static = torch.cat([mask[5:30, 5:-5].flatten(), mask[90:-5, 5:-5].flatten()])
    assert strip.mean().item() < 0.15, strip.mean()
    assert moving.mean().item() > 0.9, moving.mean()
    assert static.mean().item() > 0.95, static.mean()


def test_drift_mask_sees_a_picture_turning_into_another_but_not_light_or_noise() -> None:
    """The reference a dream was made on against the frame now: half way through a dissolve to another
    photo, most of the frame has changed; a frame-wide change of light (+0.15, a fade) and compression-like
    noise (sigma 0.03 per pixel) have not, nor has a photo resampled half a pixel (the carry's blur)."""
    reference = to_tensor(photo("chelsea"))
    other = to_tensor(photo("astronaut"))
    def kept(cur: torch.Tensor) -> float:
        return drift_mask(reference, cur, threshold=0.12, side=60).mean().item()
    assert kept(torch.lerp(reference, other, 0.6)) < 0.5
    assert kept((reference + 0.15).clamp(0, 1)) > 0.97
    noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(0)) * 0.03
    assert kept((reference + noise).clamp(0, 1)) > 0.99
    shifted = warp(reference, torch.full((1, 2, H, W), 0.5), interpolation=Interpolation.KEYS, padding_mode="border")
    assert kept(shifted) > 0.99
    # a patch of the frame replaced by the other photo: dropped there, kept elsewhere
    patched = reference.clone()
    patched[..., 30:90, 40:120] = other[..., 30:90, 40:120]
    mask = drift_mask(reference, patched, threshold=0.12, side=60)[0, 0]
    assert mask[40:80, 50:110].mean().item() < 0.5 and mask[100:, :].mean().item() > 0.97


def test_photometric_mask_drops_revealed_pixels_and_keeps_smooth_motion() -> None:
    """The same moving square: the strip it uncovers fails (its content is new), while a zoom, whose flow
    has gradients everywhere (a motion-boundary test would flag them), passes almost everywhere."""
    prev, cur = square_scene(50), square_scene(58)
    backward = flow_to_tensor(FlowEstimator().backward(prev, cur))
    mask = photometric_mask(warp(to_tensor(prev), backward), to_tensor(cur))[0, 0]
    assert mask[44:76, 51:57].mean().item() < 0.2
    assert mask[44:76, 62:94].mean().item() > 0.9 and mask[5:30, 5:-5].mean().item() > 0.95

    background = photo()
    zoomed = cv2.resize(background, None, fx=1.03, fy=1.03, interpolation=cv2.INTER_CUBIC)
    y0, x0 = (zoomed.shape[0] - H) // 2, (zoomed.shape[1] - W) // 2
    after = np.ascontiguousarray(zoomed[y0 : y0 + H, x0 : x0 + W])
    backward = flow_to_tensor(FlowEstimator().backward(background, after))
    mask = photometric_mask(warp(to_tensor(background), backward), to_tensor(after))[0, 0]
    assert mask[MARGIN].mean().item() > 0.9
