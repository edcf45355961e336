"""Holding fine detail over long feedback renders.

Every frame of a feedback zoom is resampled (zoomed, turned, shifted) and so a little softer; the dream
puts back only the detail its layer sees, and over thousands of frames a zoom can settle into a softer
picture than it began with (spiral-zoom from noise: 0.6 of its early sharpness after 3000 frames).
Deforum users fight the same loss with a fixed unsharp mask ("anti-blur": amount, kernel, sigma), which
either under- or over-sharpens depending on the footage. :class:`DetailController` instead holds the
sharpness of every output frame at or above its target with a PI loop, acting through an unsharp mask
whose amount is solved per frame. The target is a floor: a preset whose dream grows crisper as it
matures (fractal-zoom from noise: 1.3x its early sharpness) keeps that; only losses are made up.

Sharpness is the variance of the Laplacian of the grey frame (:func:`sharpness`, the figure
:func:`renderer.metrics.sharpness` and the long-run benchmark judge). Its target is the mean over the
render's early frames (the second half of the ``WARMUP`` keyframes after the fully dreamed first frame),
for every kind of input:
the look the render settles into is what it should keep. Pure tensor code on ``(1, 3, H, W)`` RGB in
[0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .color import integral_gain, luma

#: Keyframes after the first that are watched before the controller acts; the mean log-sharpness of the
#: second half of them is the target (from noise or a photo, the first keyframes are still settling).
WARMUP = 24
#: Gaussian sigma in pixels of the unsharp mask's blur: the finest detail the frame carries.
SIGMA = 1.0
#: The unsharp amount's range per frame: -0.5 blurs halfway toward the Gaussian, 1.5 adds 1.5x the detail.
AMOUNT_RANGE = (-0.5, 1.5)
#: Anti-windup: the integral stays in [0, INTEGRAL_LIMIT] log sharpness (at most a factor e^1.5 = 4.5;
#: never below 0, since the controller only sharpens).
INTEGRAL_LIMIT = 1.5
#: The 3x3 Laplacian OpenCV's ``cv2.Laplacian(ksize=1)`` uses.
_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def _laplacian(grey: torch.Tensor) -> torch.Tensor:
    """The Laplacian of ``(1, 1, H, W)`` with reflected borders (OpenCV's default), same shape."""
    kernel = grey.new_tensor(_LAPLACIAN).view(1, 1, 3, 3)
    return F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="reflect"), kernel)


def sharpness(frame: torch.Tensor) -> float:
    """Variance of the Laplacian of the grey ``(1, 3, H, W)`` frame in 8-bit units, as
    :func:`renderer.metrics.sharpness` measures it on the encoded frame."""
    return float(_laplacian(luma(frame) * 255.0).var())


def gaussian_blur(frame: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """Separable Gaussian blur of ``(1, C, H, W)`` (radius 3 sigma, reflected borders)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=frame.dtype, device=frame.device)
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    taps = taps / taps.sum()
    channels = frame.shape[1]
    out = F.conv2d(F.pad(frame, (radius, radius, 0, 0), mode="reflect"),
                   taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"),
                    taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def unsharp_amount(frame: torch.Tensor, detail: torch.Tensor, log_gain: float) -> float:
    """The amount ``a`` for which ``frame + a * detail`` has ``exp(log_gain)`` times the sharpness of
    `frame` (solved exactly: the Laplacian is linear, so the variance is a quadratic in ``a``), clamped to
    :data:`AMOUNT_RANGE`. `detail` is ``frame - gaussian_blur(frame)``."""
    base, extra = _laplacian(luma(frame)), _laplacian(luma(detail))
    base, extra = base - base.mean(), extra - extra.mean()
    vb, cov, ve = float((base * base).mean()), float((base * extra).mean()), float((extra * extra).mean())
    low, high = AMOUNT_RANGE
    if vb <= 0.0 or ve <= 0.0:
        return 0.0
    # sharpness(a) = ve a^2 + 2 cov a + vb, a parabola with its least value at a = -cov / ve < 0 (the
    # detail is what the Laplacian sees, so cov > 0). Its larger root is the amount nearest 0 either way:
    # above 0 to sharpen, between the least value and 0 to soften.
    wanted = vb * math.exp(log_gain)
    disc = cov * cov - ve * (vb - wanted)
    if disc < 0.0:  # softer than any amount makes it: go as far as the parabola allows
        return max(low, min(high, -cov / ve))
    amount = (-cov + math.sqrt(disc)) / ve
    return max(low, min(high, amount))


@dataclass
class DetailState:
    """The controller's memory, saved in a render's checkpoint so a resumed render continues exactly.

    Attributes:
        early: log sharpness of the early keyframes recorded so far (up to :data:`WARMUP`).
        integral: the loop's integral term, in log sharpness.
    """

    early: list[float] | None = None
    integral: float = 0.0

    @property
    def target(self) -> float | None:
        """The log sharpness held, once the early keyframes are in."""
        if self.early is None or len(self.early) < WARMUP:
            return None
        settled = self.early[WARMUP // 2:]
        return sum(settled) / len(settled)

    def to_dict(self) -> dict:
        return {"early": None if self.early is None else list(self.early), "integral": self.integral}

    @classmethod
    def from_dict(cls, saved: dict | None) -> DetailState:
        if not saved:
            return cls()
        early = saved.get("early")
        return cls(None if early is None else [float(v) for v in early], float(saved.get("integral", 0.0)))


class DetailController:
    """Keeps each frame's sharpness at or above the early keyframes' mean: a PI loop on log sharpness.

    For each dreamed keyframe ``x`` with log sharpness ``s(x)`` and target ``T``: ``u = Kp (T - s(x)) + I``;
    the frame becomes ``x + a (x - blur(x))`` with ``a >= 0`` chosen so the sharpness changes by ``e^u``
    (:func:`unsharp_amount`; ``u <= 0``: unchanged); then ``I += Ki (T - s(output))``, kept in
    ``[0, INTEGRAL_LIMIT]``: the integral learns the sharpening the
    loop's own softening needs, so the output converges to the target (``Kp`` is ``color.detail``, ``Ki``
    critically damped as for colour). The first keyframe (the full first dream) is left out of the target.
    """

    def __call__(self, frame: torch.Tensor, strength: float, state: DetailState) -> torch.Tensor:
        """The corrected frame ``(1, 3, H, W)`` clamped to [0, 1]; updates `state`. Strength 0: unchanged."""
        if strength <= 0.0:
            return frame
        measured = math.log(max(sharpness(frame), 1e-6))
        if state.early is None:  # the full first dream: not part of the look the render settles into
            state.early = []
            return frame
        target = state.target
        if target is None:
            state.early.append(measured)
            return frame
        correction = strength * (target - measured) + state.integral
        output, achieved = frame, measured
        if correction > 0.0:
            detail = frame - gaussian_blur(frame)
            output = (frame + max(0.0, unsharp_amount(frame, detail, correction)) * detail).clamp_(0.0, 1.0)
            achieved = math.log(max(sharpness(output), 1e-6))
        integral = state.integral + integral_gain(strength) * (target - achieved)
        state.integral = max(0.0, min(INTEGRAL_LIMIT, integral))
        return output


__all__ = ["AMOUNT_RANGE", "SIGMA", "WARMUP", "DetailController", "DetailState", "gaussian_blur", "sharpness",
           "unsharp_amount"]
