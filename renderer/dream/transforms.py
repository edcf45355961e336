"""Transformation robustness: the random view of the image the network sees at each step.

A feature visualisation optimised through one fixed view learns the network's blind spots (pixel-grid
patterns, one-pixel-shift artefacts); one that must work through random shifts, scales and small turns
learns the shapes the network really means (Olah et al., Distill 2017; lucid's ``standard_transforms``:
pad, jitter, random scale, random rotation).

:func:`random_view` does all of it in one resampling: an affine map from the view to the image drawn
from a CPU generator, evaluated with ``grid_sample``. For images larger than the network's working size
it also picks a random crop (``crop``), so a 1024-px image is seen both whole and in parts at the scale
the network knows. Pure tensor code; images are (B,3,H,W) RGB in [0,1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ViewSettings:
    """How each step's view is drawn.

    Attributes:
        jitter: maximum shift, pixels of the image.
        scale: (min, max) zoom factor (1 = the crop fills the view).
        angle: maximum rotation either way, degrees.
        crop: (min, max) side of the cropped region as a fraction of the image's; (1, 1) = always whole.
        border: what the view shows outside the image: "grey" (0.5) or "reflect".
    """

    jitter: int = 24
    scale: tuple[float, float] = (0.75, 1.25)
    angle: float = 15.0
    crop: tuple[float, float] = (1.0, 1.0)
    border: str = "grey"


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def random_view(image: torch.Tensor, size: tuple[int, int], settings: ViewSettings,
                generator: torch.Generator) -> torch.Tensor:
    """A randomly shifted, zoomed, turned (and cropped) view of `image` (B,3,H,W), of `size` (h, w).

    One affine draw per call (the whole batch gets the same view); differentiable in `image`."""
    height, width = image.shape[-2:]
    out_h, out_w = size
    crop = _uniform(generator, *settings.crop)
    zoom = _uniform(generator, *settings.scale)
    angle = math.radians(_uniform(generator, -settings.angle, settings.angle))
    # image pixels per view pixel (the crop's shorter side spans the view's)
    k = crop * min(height / out_h, width / out_w) / zoom
    # the crop's centre may wander within the image, plus the jitter
    room_x = max(0.0, (width - k * out_w) / 2)
    room_y = max(0.0, (height - k * out_h) / 2)
    tx = _uniform(generator, -room_x - settings.jitter, room_x + settings.jitter)
    ty = _uniform(generator, -room_y - settings.jitter, room_y + settings.jitter)
    cos, sin = math.cos(angle), math.sin(angle)
    # view pixel (px, py) from its centre -> image pixel R(angle) * k * (px, py) + (tx, ty); then both to [-1, 1]
    theta = torch.tensor([[k * cos * out_w / width, -k * sin * out_h / width, 2 * tx / width],
                          [k * sin * out_w / height, k * cos * out_h / height, 2 * ty / height]],
                         dtype=image.dtype, device=image.device)
    grid = F.affine_grid(theta.expand(image.shape[0], 2, 3), [image.shape[0], 3, out_h, out_w], align_corners=False)
    if settings.border == "reflect":
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return F.grid_sample(image - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5
