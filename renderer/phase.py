"""Evening out the blur of a resampling, which depends on where each pixel samples between pixel centres.

An interpolating kernel read exactly on a pixel centre (phase 0) returns the pixel untouched; read
halfway between two (phase 0.5) it averages them and damps the finest detail most. A feedback zoom reads
every output pixel at the phase ``frac(c + (x - c) / zoom)``, which is 0 along the row and the column
through the zoom's centre and drifts away from 0 across the frame. Content elsewhere moves outward across
all phases and is softened on average; content on those two lines never is, and what stays there longest
(the centre) is what the zoom shows longest. Frame after frame, the dream's detail and the sharpness
controller's unsharp mask (:mod:`renderer.detail`) piled up along them into a thin cross through the
zoom's centre (noise-genesis at 640x360 from frame ~150: 3.5x the median edge energy across those
lines, 7.4x in a 200-frame zoom with a fixed unsharp mask of 0.1).

:func:`even_out` blurs each pixel read at a phase that would settle sharper than the frame's average,
just enough to bring it to that average, and leaves the others alone. No line is special any more (a
1.2x/s zoom at 320x180 that adds fresh detail each frame: 4.2x the median edge energy across the centre
lines after 160 frames, 1.2x evened out), and a resampling that reads every pixel at one phase (none at
all, a shift) is left as it is. The price: content that crosses every phase is now also blurred where it
crosses the sharp ones (that zoom's corners settle at 0.75 of their Laplacian variance), which the
sharpness controller makes up.

The average is what content moving across the phases keeps: per frequency, the geometric mean over the
phases this resampling reads at of the kernel's power response. "Settles" is the steady state of a
feedback loop that adds the same detail at every pixel each frame and keeps a power ``g(w)`` of it per
frame, so holds ``1 / (1 - g(w))`` of it; its sharpness is that weighted by the Laplacian's power
``(2 - 2 cos w)^2``, as the sharpness metric (variance of the Laplacian) weighs it. Matching a single frame's
loss instead over-blurred the lines (a 3-tap blur damps middle frequencies that the phases' mean keeps);
matching nothing left them sharper. The blur is the 3-tap ``[b/2, 1 - b, b/2]`` per axis (``b`` up to
0.064 for KEYS, at phase 0), solved per phase from tables made once per kernel.

Pure tensor code on ``(B, C, H, W)`` frames and ``grid_sample`` grids.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
import torch.nn.functional as F

from renderer.flow import Interpolation, grid_pixels

#: Phases tabulated in [0, 1]; :func:`even_out` interpolates linearly between them.
TABLE_SIZE = 65
_PHASES = np.linspace(0.0, 1.0, TABLE_SIZE)
#: Sample positions are snapped to 1/PHASE_STEPS px before their phase is taken (see :func:`even_out`).
PHASE_STEPS = 1024
#: Blurs below this are left out (see :func:`blurs_to_even`).
MIN_BLUR = 1e-3
#: Frequencies in (0, pi), cell midpoints (no division by the zero loss at 0, no log of the zero gain at pi).
_FREQUENCIES = (np.arange(256) + 0.5) / 256 * np.pi
#: The Laplacian's power response along one axis: the weight each frequency has in the sharpness metric.
_LAPLACIAN_POWER = (2.0 - 2.0 * np.cos(_FREQUENCIES)) ** 2
#: The 3-tap blurs tabulated: b in [0, 1/2], where the response 1 - b (1 - cos w) falls at every
#: frequency as b grows, so the settled sharpness falls monotonically in b.
_BLURS = np.linspace(0.0, 0.5, 129)


def kernel_taps(interpolation: Interpolation, phase: float) -> np.ndarray:
    """The weights ``(4,)`` the kernel gives the pixels at offsets -1, 0, 1, 2 from the one below the
    sample, for a sample `phase` (in [0, 1)) of the way to the next pixel. KEYS is Keys' cubic with
    a = -0.5 (exact in 1-D, see :func:`renderer.flow.sample`), BICUBIC torch's a = -0.75."""
    distances = np.abs(np.array([-1.0, 0.0, 1.0, 2.0]) - phase)
    if interpolation is Interpolation.BILINEAR:
        return np.clip(1.0 - distances, 0.0, None)
    a = -0.5 if interpolation is Interpolation.KEYS else -0.75
    near = ((a + 2) * distances - (a + 3)) * distances**2 + 1
    far = ((a * distances - 5 * a) * distances + 8 * a) * distances - 4 * a
    return np.where(distances <= 1.0, near, np.where(distances < 2.0, far, 0.0))


@cache
def kernel_power(interpolation: Interpolation) -> np.ndarray:
    """The kernel's power response ``(TABLE_SIZE, F)`` at each tabulated phase and frequency."""
    taps = np.stack([kernel_taps(interpolation, phase) for phase in _PHASES])  # (P, 4)
    waves = np.exp(-1j * np.outer(np.array([-1.0, 0.0, 1.0, 2.0]), _FREQUENCIES))  # (4, F)
    return np.abs(taps @ waves) ** 2


def settled_sharpness(gain: np.ndarray) -> np.ndarray:
    """The Laplacian energy a feedback loop that keeps the power `gain` ``(..., F)`` of each frequency per
    frame settles at, relative to the detail it adds per frame: ``mean(L / (1 - gain)) / mean(L)``, ``(...)``."""
    return np.sum(_LAPLACIAN_POWER / np.maximum(1.0 - gain, 1e-12), -1) / np.sum(_LAPLACIAN_POWER)


@cache
def settled_table(interpolation: Interpolation) -> np.ndarray:
    """:func:`settled_sharpness` ``(TABLE_SIZE, len(_BLURS))`` of the kernel at each phase followed by each
    3-tap blur; decreasing along each row."""
    blur_power = (1.0 - np.outer(_BLURS, 1.0 - np.cos(_FREQUENCIES))) ** 2  # (B, F)
    return settled_sharpness(kernel_power(interpolation)[:, None, :] * blur_power[None])


@cache
def _log_power(interpolation: Interpolation) -> np.ndarray:
    """``log`` of :func:`kernel_power` ``(TABLE_SIZE - 1, F)``, the last phase (= the first) left out."""
    return np.log(np.maximum(kernel_power(interpolation)[:-1], 1e-300))


def _table_position(phase: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For phases in [0, 1] (any shape): the table entry below each (long) and the fraction toward the next."""
    position = phase * (TABLE_SIZE - 1)
    below = position.floor().clamp_(0, TABLE_SIZE - 2)
    return below.long(), position - below


def _lookup(table: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """`table` ``(TABLE_SIZE,)`` over phases in [0, 1], read at `phase` (any shape) by linear interpolation."""
    index, upper = _table_position(phase)
    return table[index] + upper * (table[index + 1] - table[index])


def blurs_to_even(interpolation: Interpolation, phase: torch.Tensor) -> torch.Tensor:
    """The 3-tap blur ``b`` for each sample of `phase` (any shape, in [0, 1)) along one axis that brings the
    sharpness it would settle at down to that of the phases' mean response (0 where it is lower already)."""
    # The share of the samples at each tabulated phase, split linearly between the two around each (the
    # first and the last are the same phase).
    index, upper = _table_position(phase.flatten())
    weights = torch.bincount(index, 1.0 - upper, TABLE_SIZE) + torch.bincount(index + 1, upper, TABLE_SIZE)
    share = weights.double().cpu().numpy()
    share = np.concatenate([[share[0] + share[-1]], share[1:-1]])
    share /= share.sum()  # exactly 1 in float64: phase 0 everywhere must give gain 1, not 1 - 1e-7
    target = float(settled_sharpness(np.exp(share @ _log_power(interpolation))))
    # Per tabulated phase, the blur whose row reaches the target (rows fall; np.interp wants rising x).
    table = [float(np.interp(target, row[::-1], _BLURS[::-1])) if row[0] > target else 0.0
             for row in settled_table(interpolation)]
    amount = _lookup(torch.tensor(table, dtype=phase.dtype, device=phase.device), phase)
    # Below this a pixel moves by under 1/2000 of its neighbours' difference: rounding between the table's
    # phases, not a sharper line (one phase everywhere then stays exactly as it was).
    return torch.where(amount < MIN_BLUR, 0.0, amount)


def _blur_along(frame: torch.Tensor, amount: torch.Tensor, dim: int) -> torch.Tensor:
    """``frame + amount/2 * (previous - 2 frame + next)`` along `dim` (3: x, 2: y), edges replicated."""
    padding = (1, 1, 0, 0) if dim == 3 else (0, 0, 1, 1)
    padded = F.pad(frame, padding, mode="replicate")
    size = frame.shape[dim]
    previous, following = padded.narrow(dim, 0, size), padded.narrow(dim, 2, size)
    return frame + 0.5 * amount * (previous + following - 2.0 * frame)


def even_out(frame: torch.Tensor, grid: torch.Tensor, interpolation: Interpolation) -> torch.Tensor:
    """Blur each pixel of `frame`, just resampled at `grid`, by what its sampling phase would leave sharper
    than the frame's average (see the module docstring).

    Args:
        frame: ``(B, C, H, W)``, the output of ``sample(image, grid, interpolation=interpolation)`` for an
            image of the same size.
        grid: ``(B, H, W, 2)`` the normalized sample positions (``align_corners=False``) it was read at.
        interpolation: the kernel it was read with.

    Returns:
        ``(B, C, H, W)``, same dtype and device. A mean of the neighbours with non-negative weights, so
        it stays within the range of `frame`.
    """
    pixel = grid_pixels(grid, frame.shape[-2:])
    # (B, H, W, 2), snapped to 1/1024 px: float32 positions carry noise of up to 1e-4 px at 640 px, and
    # near phase 0 (where a pixel kept forever would settle infinitely sharp) that noise alone would blur.
    phase = torch.remainder((pixel * PHASE_STEPS).round() / PHASE_STEPS, 1.0)
    for axis, dim in ((0, 3), (1, 2)):
        amount = blurs_to_even(interpolation, phase[..., axis])
        if bool((amount > 0).any()):
            frame = _blur_along(frame, amount.unsqueeze(1), dim)
    return frame


__all__ = ["TABLE_SIZE", "blurs_to_even", "even_out", "kernel_power", "kernel_taps", "settled_sharpness",
           "settled_table"]
