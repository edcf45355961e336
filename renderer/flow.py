"""Optical flow between consecutive source frames, warping along it, and consistency masks.

Flow mode carries the previous *dreamed* frame onto the current *source* frame: the flow is estimated
on the source frames (the dream would confuse the estimator), the previous dream is warped along it,
and a forward-backward consistency mask says where that carry can be trusted.

Conventions:

- A flow is a float tensor ``(B, 2, H, W)`` in pixels, **backward**: ``flow[:, :, y, x] = (dx, dy)``
  means output pixel ``(x, y)`` samples the source image at ``(x + dx, y + dy)``. Channel 0 is x
  (right), channel 1 is y (down). Pixel ``(x, y)`` is the centre of the pixel in column ``x``, row
  ``y`` (``align_corners=False`` in torch terms), so a constant flow of ``(3, 0)`` shifts the image
  exactly 3 px to the left.
- The flow returned by :meth:`FlowEstimator.backward` for ``(prev, cur)`` is defined on the pixels of
  ``cur`` and points into ``prev``: ``warp(prev, flow)`` reproduces ``cur``. The forward flow is the
  same with the roles swapped (defined on ``prev``, pointing into ``cur``).
- Estimators work on numpy ``uint8`` RGB frames ``(H, W, 3)`` (what a decoder yields) and return
  numpy ``float32`` ``(H, W, 2)`` in that convention; :func:`flow_to_tensor` moves them to torch.
  Everything else is pure tensor code: device and dtype come from the tensors passed in.
- Masks are ``(B, 1, H, W)`` floats in ``[0, 1]``: 1 = reliable (carry the old dream), 0 =
  occluded, disoccluded or from outside the frame (use the new source frame).
"""

from __future__ import annotations

from enum import Enum
from typing import Literal, NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

PaddingMode = Literal["zeros", "border", "reflection"]

# a 5-level pyramid for motions of tens of pixels; poly_n=7 with sigma 1.5 as OpenCV recommends
_FARNEBACK_PARAMS = {
    "pyr_scale": 0.5,
    "levels": 5,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 7,
    "poly_sigma": 1.5,
    "flags": 0,
}


class Interpolation(Enum):
    """How :func:`sample` reads an image between pixel centres.

    Repeated resampling (a feedback zoom, a dream carried along the flow for hundreds of frames)
    multiplies each frequency's gain per pass, so what matters is that no frequency is amplified and
    as few as possible are damped. Measured over 100 passes of a 1 %/frame zoom on a textured 320x180
    image (Laplacian variance relative to one single resample by the total zoom): BILINEAR keeps 3 %,
    KEYS 39 %, while BICUBIC *grows* it to 7.8x through ringing.
    """

    BILINEAR = "bilinear"
    """Linear in x and y: never overshoots, blurs fastest when repeated."""
    BICUBIC = "bicubic"
    """torch's cubic convolution (a = -0.75): sharpest for one pass, but it amplifies some mid
    frequencies by up to 2.9 % per pass (5.9 % in 2-D), so repeated passes ring and saturate."""
    KEYS = "keys"
    """Keys' cubic convolution (a = -0.5): third-order accurate and, in 1-D, never above a gain of 1,
    the sharpest choice that stays stable under repetition. Overshoots slightly; clamp images."""


class FlowMethod(Enum):
    """Optical-flow algorithm used by :class:`FlowEstimator` (both from OpenCV, CPU)."""

    DIS = "dis"
    """Dense Inverse Search, ``DISOPTICAL_FLOW_PRESET_MEDIUM``: fast and robust on video."""
    FARNEBACK = "farneback"
    """Farnebäck polynomial expansion: smoother and 2-4x slower than DIS; its smoothing also hides
    narrow disocclusions from :func:`consistency_mask`."""


class FlowPair(NamedTuple):
    """Both directions between two frames, numpy ``float32`` ``(H, W, 2)`` in pixels.

    ``backward`` is defined on ``cur`` and points into ``prev``; ``forward`` is defined on ``prev``
    and points into ``cur``.
    """

    backward: np.ndarray
    forward: np.ndarray


class FlowEstimator:
    """Dense optical flow between RGB ``uint8`` frames, with a reusable OpenCV estimator.

    Create one per video and call it for every frame pair: DIS objects are costly to create.

    Frames wider than ``max_width`` are downscaled (area filter, aspect kept) before estimation and
    the flow is upsampled bilinearly with its vectors rescaled to full-resolution pixels. Flow mode
    needs the motion of regions, not of single pixels. Measured on a 1920x1080 frame shifted by
    (7.5, 3) px, 2 CPU cores: DIS takes 21 ms at 640 px (median error 0.21 px) against 96 ms at full
    size (0.05 px); Farnebäck takes 48 ms at 640 px (0.14 px), while at full size its 15-px window
    no longer covers texture and it fails (6.5 px error, 400 ms).

    Args:
        method: the algorithm.
        max_width: estimate at most this many pixels wide; ``None`` for full resolution.
    """

    def __init__(self, method: FlowMethod = FlowMethod.DIS, max_width: int | None = 640) -> None:
        if max_width is not None and max_width < 16:
            raise ValueError(f"max_width must be at least 16 pixels or None, got {max_width}")
        self.method = method
        self.max_width = max_width
        self._dis = (
            cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if method is FlowMethod.DIS else None
        )

    def backward(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        """Flow defined on ``cur`` that points into ``prev`` (``warp(prev, flow) ≈ cur``).

        Args:
            prev: previous frame, ``uint8`` RGB ``(H, W, 3)``.
            cur: current frame, same shape.

        Returns:
            ``float32`` ``(H, W, 2)`` in pixels, (dx, dy) per pixel of ``cur``.
        """
        size = _check_frames(prev, cur)
        return self._calc(self._gray(cur), self._gray(prev), size)

    def forward_backward(self, prev: np.ndarray, cur: np.ndarray) -> FlowPair:
        """Both directions, for :func:`consistency_mask`; each frame is converted once.

        Args:
            prev: previous frame, ``uint8`` RGB ``(H, W, 3)``.
            cur: current frame, same shape.

        Returns:
            ``FlowPair(backward, forward)``, each ``float32`` ``(H, W, 2)``.
        """
        size = _check_frames(prev, cur)
        gray_prev, gray_cur = self._gray(prev), self._gray(cur)
        return FlowPair(self._calc(gray_cur, gray_prev, size), self._calc(gray_prev, gray_cur, size))

    def _gray(self, frame: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        height, width = gray.shape
        if self.max_width is None or width <= self.max_width:
            return gray
        small = (self.max_width, max(1, round(height * self.max_width / width)))
        return cv2.resize(gray, small, interpolation=cv2.INTER_AREA)

    def _calc(self, target: np.ndarray, source: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Flow on ``target`` pointing into ``source``, at full resolution ``size = (H, W)``."""
        if self._dis is not None:
            flow = self._dis.calc(target, source, None)
        else:
            flow = cv2.calcOpticalFlowFarneback(target, source, None, **_FARNEBACK_PARAMS)
        height, width = size
        if flow.shape[:2] != size:
            scale = np.array([width / flow.shape[1], height / flow.shape[0]], dtype=np.float32)
            flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR) * scale
        return flow.astype(np.float32, copy=False)


def estimate_flow(prev: np.ndarray, cur: np.ndarray, method: FlowMethod = FlowMethod.DIS) -> np.ndarray:
    """Backward flow from ``cur`` into ``prev`` for one frame pair; see :meth:`FlowEstimator.backward`.

    Builds a new estimator on every call: for a video, create one :class:`FlowEstimator` instead.

    Args:
        prev: previous frame, ``uint8`` RGB ``(H, W, 3)``.
        cur: current frame, same shape.
        method: the algorithm.

    Returns:
        ``float32`` ``(H, W, 2)`` in pixels; sampling ``prev`` at ``(x, y) + flow[y, x]`` gives ``cur``.
    """
    return FlowEstimator(method).backward(prev, cur)


def flow_to_tensor(
    flow: np.ndarray, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Numpy flow ``(H, W, 2)`` to a tensor ``(1, 2, H, W)`` on ``device``."""
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"expected a flow of shape (H, W, 2), got {flow.shape}")
    return torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1)[None].to(device=device, dtype=dtype)


def grid_pixels(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``grid_sample`` positions (normalized, ``align_corners=False``) of an image of `size` ``(H, W)`` in
    pixel-index units (pixel centres at integers), same shape: ``(x, y)`` in the last dimension."""
    return ((grid + 1) * grid.new_tensor(size[::-1]) - 1) / 2


def sample(
    image: torch.Tensor,
    grid: torch.Tensor,
    *,
    interpolation: Interpolation = Interpolation.BILINEAR,
    padding_mode: PaddingMode = "border",
) -> torch.Tensor:
    """``F.grid_sample`` with ``align_corners=False`` and a choice of :class:`Interpolation`.

    Args:
        image: ``(B, C, H, W)`` float.
        grid: ``(B, H_out, W_out, 2)`` normalized sample positions as ``F.grid_sample`` takes them:
            (x, y) in ``[-1, 1]`` spanning the outer edges of the border pixels.
        interpolation: how to read between pixel centres.
        padding_mode: what lies outside the image.

    Returns:
        ``(B, C, H_out, W_out)``. Cubic modes may overshoot the input range slightly.
    """
    if interpolation is not Interpolation.KEYS:
        return F.grid_sample(
            image, grid, mode=interpolation.value, padding_mode=padding_mode, align_corners=False
        )
    # Keys' kernel is linear in its parameter: w(-0.5) = 2/3 w(-0.75) + 1/3 w(0), and the a = 0 cubic
    # is linear interpolation at smoothstep-warped fractions. In 2-D this blend of two separable
    # kernels is not exactly Keys⊗Keys; measured, its gain stays <= 1.0003 and averages <= 1 over phases.
    size = grid.new_tensor(image.shape[:-3:-1])  # (W, H)
    pixel = grid_pixels(grid, image.shape[-2:])
    whole = pixel.floor()
    frac = pixel - whole
    smooth_grid = (2 * (whole + frac * frac * (3 - 2 * frac)) + 1) / size - 1
    cubic = F.grid_sample(image, grid, mode="bicubic", padding_mode=padding_mode, align_corners=False)
    smooth = F.grid_sample(
        image, smooth_grid, mode="bilinear", padding_mode=padding_mode, align_corners=False
    )
    return (2 * cubic + smooth) / 3


def warp(
    image: torch.Tensor,
    flow: torch.Tensor,
    *,
    interpolation: Interpolation = Interpolation.BILINEAR,
    padding_mode: PaddingMode = "border",
) -> torch.Tensor:
    """Sample ``image`` at every pixel displaced by ``flow`` (backward warping).

    Args:
        image: ``(B, C, H, W)`` float, e.g. the previous dream, or another flow.
        flow: ``(B, 2, H, W)`` backward flow in pixels (see the module docstring).
        interpolation: BILINEAR (default) never overshoots, so it suits masks and flows; use KEYS to
            carry a dream over many frames without blurring it (then clamp).
        padding_mode: what is read where the flow points outside the image.

    Returns:
        ``(B, C, H, W)``: ``out[..., y, x] = image[..., y + dy, x + dx]``.
    """
    _check_flow(flow, "flow")
    if image.ndim != 4 or image.shape[-2:] != flow.shape[-2:] or image.shape[0] != flow.shape[0]:
        raise ValueError(
            f"expected an image (B, C, H, W) matching the flow {tuple(flow.shape)}, got {tuple(image.shape)}"
        )
    size = flow.new_tensor(flow.shape[:-3:-1]).view(1, 2, 1, 1)  # (W, H)
    grid = (2 * _source_positions(flow) + 1) / size - 1
    return sample(image, grid.permute(0, 2, 3, 1), interpolation=interpolation, padding_mode=padding_mode)


def consistency_mask(
    flow_bwd: torch.Tensor,
    flow_fwd: torch.Tensor,
    *,
    alpha1: float = 0.01,
    alpha2: float = 0.5,
    beta1: float | None = 0.01,
    beta2: float = 0.002,
    soften: int = 2,
) -> torch.Tensor:
    """Where the flow into the previous frame can be trusted (forward-backward check).

    Following Sundaram et al. (2010) as used by Ruder et al., "Artistic style transfer for videos"
    (2016): with ``w = flow_bwd(x)`` and ``ŵ = flow_fwd(x + w)`` (the forward flow read where ``w``
    points), a pixel is reliable when

    - ``|w + ŵ|² < alpha1 (|w|² + |ŵ|²) + alpha2`` (the two directions agree: not disoccluded),
    - ``|∇w_x|² + |∇w_y|² <= beta1 |w|² + beta2`` (not on a motion boundary; ``beta1=None`` skips it),
    - ``x + w`` lies inside the previous frame.

    The binary result is then softened so that blends have no hard seams: it is eroded by ``soften``
    pixels and box-blurred over the same radius, so every unreliable pixel stays exactly 0 and the
    ramp up to 1 (``2 * soften`` px wide) lies on the reliable side. ``soften=0`` returns the binary mask.

    Args:
        flow_bwd: ``(B, 2, H, W)`` flow on the current frame pointing into the previous one.
        flow_fwd: ``(B, 2, H, W)`` flow on the previous frame pointing into the current one.
        alpha1: relative tolerance of the forward-backward check.
        alpha2: absolute tolerance of the forward-backward check, in px².
        beta1: relative motion-boundary threshold, or ``None`` to skip the boundary test.
        beta2: absolute motion-boundary threshold, in (px/px)².
        soften: radius in pixels of the soft edge, 0 for none.

    Returns:
        ``(B, 1, H, W)`` in ``[0, 1]``, same dtype and device as the flows: 1 = carry the warped
        previous frame, 0 = use the current source frame.
    """
    _check_flow(flow_bwd, "flow_bwd")
    _check_flow(flow_fwd, "flow_fwd")
    if flow_fwd.shape != flow_bwd.shape:
        raise ValueError(f"flow_fwd {tuple(flow_fwd.shape)} does not match flow_bwd {tuple(flow_bwd.shape)}")
    if soften < 0:
        raise ValueError(f"soften must be >= 0 pixels, got {soften}")
    w = flow_bwd
    w_hat = warp(flow_fwd, w)
    reliable = (w + w_hat).square().sum(1, keepdim=True) < alpha1 * (
        w.square().sum(1, keepdim=True) + w_hat.square().sum(1, keepdim=True)
    ) + alpha2
    if beta1 is not None:
        padded = F.pad(w, (1, 1, 1, 1), mode="replicate")
        grad_x = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
        grad_y = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
        grad_sq = (grad_x.square() + grad_y.square()).sum(1, keepdim=True)
        reliable &= grad_sq <= beta1 * w.square().sum(1, keepdim=True) + beta2
    size = w.new_tensor(w.shape[:-3:-1]).view(1, 2, 1, 1)  # (W, H)
    source = _source_positions(w)
    reliable &= ((source >= -0.5) & (source <= size - 0.5)).all(1, keepdim=True)
    mask = reliable.to(w.dtype)
    if soften:
        kernel = 2 * soften + 1
        eroded = -F.max_pool2d(-mask, kernel, stride=1, padding=soften)
        mask = F.avg_pool2d(eroded, kernel, stride=1, padding=soften, count_include_pad=False)
    return mask


def photometric_mask(carried: torch.Tensor, cur: torch.Tensor, *, threshold: float = 0.05, soften: int = 1) -> torch.Tensor:
    """Where the previous source frame, carried along the flow, looks like the current one.

    The direct test of what flow mode needs: a pixel whose source content arrived intact (not
    revealed, not changed by lighting or blur) can carry its dream. Motion boundaries and
    disocclusions fail it; smooth but correct flow gradients (a zoom, a turning object) do not.

    Args:
        carried: ``(B, 3, H, W)`` the previous source frame warped onto the current one (``warp(prev, flow)``), [0, 1].
        cur: ``(B, 3, H, W)`` the current source frame in [0, 1].
        threshold: largest mean absolute difference over the channels, in [0, 1] units.
        soften: radius in pixels of the soft edge (eroded then blurred, as :func:`consistency_mask`).

    Returns:
        ``(B, 1, H, W)`` in ``[0, 1]``: 1 = reliable.
    """
    error = (carried - cur).abs().mean(1, keepdim=True)
    mask = (error < threshold).to(cur.dtype)
    if soften:
        kernel = 2 * soften + 1
        eroded = -F.max_pool2d(-mask, kernel, stride=1, padding=soften)
        mask = F.avg_pool2d(eroded, kernel, stride=1, padding=soften, count_include_pad=False)
    return mask


#: The drift test's blocks are at least this many pixels wide (frames under 180 px on the short side get
#: fewer than ``side`` blocks): single pixels would take the carry's resampling blur and the codec's
#: noise for a change of picture.
MIN_DRIFT_BLOCK = 3


def drift_mask(reference: torch.Tensor, cur: torch.Tensor, *, threshold: float, side: int) -> torch.Tensor:
    """Where `cur` still shows what `reference` showed: the test of a dream carried over many frames.

    :func:`photometric_mask` compares consecutive frames, so a change spread over many of them (a
    dissolve to another shot, a light coming up) passes it step by step and the dream made on the old
    picture stays on the new one. This compares the current frame with the source the dream was made on
    (carried along the flow with it), coarsely (area means over blocks, `side` of them on the short
    side: resampling and compression noise average out) and after removing the frame-wide change (each
    channel's median difference: exposure, a fade), which moves no dream from what it grew on.

    Args:
        reference: ``(B, 3, H, W)`` the source each pixel's dream was made on, carried onto `cur`, [0, 1].
        cur: ``(B, 3, H, W)`` the current source frame in [0, 1].
        threshold: largest mean absolute block difference over the channels, in [0, 1] units.
        side: blocks on the short side (fewer on a frame under ``MIN_DRIFT_BLOCK * side`` pixels).

    Returns:
        ``(B, 1, H, W)`` in ``[0, 1]``: 1 = the same content (bilinear between blocks).
    """
    height, width = cur.shape[-2:]
    scale = min(1.0 / MIN_DRIFT_BLOCK, side / min(height, width))
    small = (max(1, round(height * scale)), max(1, round(width * scale)))
    difference = F.interpolate(reference - cur, size=small, mode="area")
    difference = difference - difference.flatten(2).median(-1).values[..., None, None]
    keep = (difference.abs().mean(1, keepdim=True) < threshold).to(cur.dtype)
    return F.interpolate(keep, size=(height, width), mode="bilinear", align_corners=False)


def _source_positions(flow: torch.Tensor) -> torch.Tensor:
    """``(B, 2, H, W)`` pixel coordinates (x, y) that each pixel of a backward flow samples."""
    height, width = flow.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(height, device=flow.device, dtype=flow.dtype),
        torch.arange(width, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    return flow + torch.stack((xs, ys))


def _check_frames(prev: np.ndarray, cur: np.ndarray) -> tuple[int, int]:
    for name, frame in (("prev", prev), ("cur", cur)):
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected {name} as uint8 RGB (H, W, 3), got {frame.dtype} {frame.shape}")
    if prev.shape != cur.shape:
        raise ValueError(f"frames differ in size: prev {prev.shape}, cur {cur.shape}")
    return prev.shape[0], prev.shape[1]


def _check_flow(flow: torch.Tensor, name: str) -> None:
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"expected {name} of shape (B, 2, H, W), got {tuple(flow.shape)}")
