"""Affine zoom, rotation and shift of a frame for feedback ("infinite zoom") mode.

Users describe motion per second (:class:`Motion`); the pipeline evaluates its schedules for frame n,
turns the result into one frame's step with :meth:`Motion.per_frame` and applies it with
:func:`transform_frame`. A zoom of 2x per second is ``2 ** (1/24)`` per frame at 24 fps and
``2 ** (1/60)`` at 60 fps, so the picture moves the same in both.

Conventions:

- Frames are float tensors ``(B, C, H, W)``, RGB in ``[0, 1]``; device and dtype come from the frame.
- Zoom > 1 zooms in (content grows). Angles are in degrees, counter-clockwise as seen on screen.
  Translations are fractions of the frame width / height, +x right and +y down: the content moves
  that way. Zoom and rotation turn about the centre ``(center_x, center_y)``, given as fractions of
  width / height; the translation is the speed of the content at that centre.
- Geometry is computed in pixels and only then normalized, so rotations stay rigid (no shear) on
  non-square frames.

A motion is a constant velocity field: zoom and rotation about the centre plus a drift whose speed
at the centre is the translation. A step is that field followed for one frame, so n steps at n fps
compose *exactly* to the motion of one second, whatever the fps (a translation combined with a zoom or
rotation is itself zoomed and turned while it happens; done per frame in a fixed order instead, the
result would depend on the fps, by 4.5 px on a 320-px frame between 24 and 60 fps for one second of
a 2x zoom, 45 degree turn and 0.1-width pan). With translation alone, content moves by exactly
``translate_x * width`` per second.
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from renderer.errors import PresetError
from renderer.flow import Interpolation, sample
from renderer.phase import even_out


@dataclass(frozen=True)
class _Affine:
    """Zoom, rotation and drift about a centre. The units (per second or per frame) are the subclass's.

    Attributes:
        zoom: scale factor, > 0 (> 1 zooms in).
        angle: rotation in degrees, counter-clockwise.
        translate_x: drift as a fraction of the width, + moves content right.
        translate_y: drift as a fraction of the height, + moves content down.
        center_x: centre of zoom and rotation as a fraction of the width.
        center_y: centre of zoom and rotation as a fraction of the height.
    """

    zoom: float = 1.0
    angle: float = 0.0
    translate_x: float = 0.0
    translate_y: float = 0.0
    center_x: float = 0.5
    center_y: float = 0.5

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class MotionStep(_Affine):
    """The affine motion of one frame, from :meth:`Motion.per_frame`: zoom, angle and drift per frame."""

    @property
    def is_identity(self) -> bool:
        """True when the step leaves every pixel where it is (the centre then does not matter)."""
        return self.zoom == 1.0 and self.angle == 0.0 and self.translate_x == 0.0 and self.translate_y == 0.0


@dataclass(frozen=True)
class Motion(_Affine):
    """Feedback-mode motion in per-second units, as users write it in presets and schedules: zoom per
    second (1.5 = 1.5x larger after one second), degrees per second, frame fractions per second.
    A distinct type from :class:`MotionStep`, so per-second values never reach the resampler."""

    def per_frame(self, fps: float) -> MotionStep:
        """The step for one frame at ``fps``: ``zoom ** (1/fps)``, ``angle / fps``, ``translate / fps``."""
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps}")
        return MotionStep(
            zoom=self.zoom ** (1.0 / fps),
            angle=self.angle / fps,
            translate_x=self.translate_x / fps,
            translate_y=self.translate_y / fps,
            center_x=self.center_x,
            center_y=self.center_y,
        )


def affine_matrix(
    step: MotionStep,
    height: int,
    width: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ``theta`` that ``F.affine_grid(..., align_corners=False)`` needs to apply ``step``.

    ``theta`` maps each *output* position to the *source* position it samples, both in normalized
    coordinates (``[-1, 1]`` across the outer pixel edges). It is built in pixels, where the step
    moves a source point ``s`` to ``c + zoom * R(angle) (s - c) + k t`` (``c`` the centre, ``t`` the
    translation, ``k = 1`` without zoom or rotation, see the module docstring), and then normalized
    per axis, which is what keeps rotations free of shear on non-square frames.

    Args:
        step: one frame's motion.
        height: frame height in pixels.
        width: frame width in pixels.
        dtype: dtype of the result.
        device: device of the result.

    Returns:
        ``(2, 3)`` affine matrix (unsqueeze to ``(1, 2, 3)`` for ``F.affine_grid``).
    """
    # Pixels as complex numbers x + iy (y down, pixel edges at integers). Counter-clockwise on screen
    # is clockwise in these axes, so the linear part multiplies by a = zoom * exp(-i angle).
    rate = complex(math.log(step.zoom), -math.radians(step.angle))
    a = cmath.exp(rate)
    # The drift, followed for one frame while zooming and turning, adds (a - 1) / rate times itself.
    drift = (a - 1) / rate if abs(rate) > 1e-6 else 1 + rate / 2
    centre = complex(step.center_x * width, step.center_y * height)
    landing = centre + drift * complex(step.translate_x * width, step.translate_y * height)
    # Output o samples source s = (o - landing) / a + centre = m o + b.
    m = 1 / a
    b = centre - m * landing
    # Normalize per axis with u = (x + 1) * size / 2: theta = S^-1 (M S (x + 1) + b) - 1.
    half_w, half_h = width / 2, height / 2
    theta = (
        (m.real, -m.imag * half_h / half_w, (m.real * half_w - m.imag * half_h + b.real) / half_w - 1),
        (m.imag * half_w / half_h, m.real, (m.imag * half_w + m.real * half_h + b.imag) / half_h - 1),
    )
    return torch.tensor(theta, dtype=dtype, device=device)


def transform_frame(
    frame: torch.Tensor, step: MotionStep, *, interpolation: Interpolation = Interpolation.KEYS, even: bool = False
) -> torch.Tensor:
    """Apply one frame's motion: resample, reflect at the borders, clamp to ``[0, 1]``.

    The identity step returns ``frame`` itself (no copy, no resampling). The default KEYS
    interpolation keeps a zoom sharp over hundreds of frames without ringing (see
    :class:`~renderer.flow.Interpolation` for the measurements). No unsharp mask is applied: near the
    zoom centre the samples fall on pixel centres and lose nothing, so any fixed sharpening there
    compounds frame after frame into ringing (measured: a 3x3 unsharp mask of amount 0.1 after each of
    100 zoom steps left 180x the Laplacian variance of a single equivalent zoom).

    Args:
        frame: ``(B, C, H, W)`` float in ``[0, 1]``.
        step: one frame's motion, from :meth:`Motion.per_frame`.
        interpolation: how to read between pixels.
        even: blur the pixels read at a sharper-than-average phase to the average
            (:func:`renderer.phase.even_out`), as a frame fed back into the next must be.

    Returns:
        ``(B, C, H, W)`` in ``[0, 1]``, same dtype and device.
    """
    if frame.ndim != 4:
        raise ValueError(f"expected a frame of shape (B, C, H, W), got {tuple(frame.shape)}")
    if step.is_identity:
        return frame
    batch, _, height, width = frame.shape
    theta = affine_matrix(step, height, width, dtype=frame.dtype, device=frame.device).expand(batch, 2, 3)
    grid = F.affine_grid(theta, list(frame.shape), align_corners=False)
    out = sample(frame, grid, interpolation=interpolation, padding_mode="reflection").clamp(0.0, 1.0)
    return even_out(out, grid, interpolation) if even else out


def compose(steps: list[MotionStep], height: int, width: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """The ``(3, 3)`` homogeneous ``theta`` of several steps followed in order (first step first).

    Each step's theta maps an output position to the position it samples, so following step 1 then
    step 2 samples at ``theta_1 @ theta_2``: a frame ``n`` steps on is one resampling of the first,
    not ``n`` (less blur than applying the steps one by one). Float64, so long chains stay exact.
    """
    theta = torch.eye(3, dtype=torch.float64, device=device)
    for step in steps:
        theta = theta @ torch.cat([affine_matrix(step, height, width, dtype=torch.float64, device=device),
                                   theta.new_tensor([[0.0, 0.0, 1.0]])])
    return theta


def resample(frame: torch.Tensor, theta: torch.Tensor, *, feather: float = 8.0,
             interpolation: Interpolation = Interpolation.KEYS,
             even: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample `frame` with a ``(3, 3)`` theta from :func:`compose` (or its inverse).

    Args:
        frame: ``(B, C, H, W)`` in [0, 1].
        theta: ``(3, 3)`` output -> source positions, normalized coordinates.
        feather: width in pixels over which the coverage falls to 0 at the frame's edge.
        interpolation: how to read between pixels.
        even: blur the pixels read at a sharper-than-average phase to the average
            (:func:`renderer.phase.even_out`): for a frame fed back into the next, so that the zoom's centre
            lines, read at phase 0 frame after frame, do not pile up detail into a cross.

    Returns:
        The resampled frame ``(B, C, H, W)`` in [0, 1] (reflected where it reads outside), and its
        coverage ``(B, 1, H, W)`` in [0, 1]: 1 where it read the frame itself at least `feather` px
        inside the edge, 0 where it read outside, a ramp between (blends without seams).
    """
    batch, _, height, width = frame.shape
    theta2 = theta[:2].to(frame.dtype).expand(batch, 2, 3)
    grid = F.affine_grid(theta2, list(frame.shape), align_corners=False)
    out = sample(frame, grid, interpolation=interpolation, padding_mode="reflection").clamp(0.0, 1.0)
    if even:
        out = even_out(out, grid, interpolation)
    half = grid.new_tensor([width / 2, height / 2])
    inside_px = ((1 - grid.abs()) * half).amin(-1)  # distance to the nearest edge, px (< 0 outside)
    coverage = (inside_px / max(feather, 1e-6)).clamp(0.0, 1.0)[:, None]
    return out, coverage


def _validate(motion: _Affine) -> None:
    for field in fields(motion):
        value = getattr(motion, field.name)
        if not math.isfinite(value):
            raise PresetError(f"motion {field.name} must be a finite number, got {value}")
    if motion.zoom <= 0:
        raise PresetError(
            f"motion zoom must be > 0, got {motion.zoom}", hint="use 1 for no zoom, < 1 to zoom out"
        )
