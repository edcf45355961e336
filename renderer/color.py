"""Keeping colours steady over long renders (feedback loops drift, saturate, clip or wash out).

Two tools, both pure tensor code on frames ``(1, 3, H, W)``, RGB in [0, 1]:

* :func:`match_color`: a one-shot pull of each RGB channel's mean and spread toward a reference (the
  studio's single-frame preview uses it).
* :class:`ColorController`: colour coherence for renders. A feedback loop adds a little contrast and
  saturation every frame, and a fixed blend toward a reference (``match_color`` with strength s) only
  balances that drift at a steady error of about ``(1 - s) / s`` frames' worth of it, with values piling
  up at 0 and 255. The controller instead holds five figures of every output frame at their targets
  with one PI loop each, then rolls the ends off with a soft knee so no value sits at pure black or white.

The figures (:func:`figures`; the same ones the long-run benchmark judges):

========== ================================================================ =================
brightness mean luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (Rec. 601, as OpenCV's grey)  [0, 1]
contrast   standard deviation of luma over the frame                          [0, 0.5]
saturation mean HSV saturation ``(max - min) / max`` of each pixel (0 for black) [0, 1]
balance    mean of the two chroma coordinates of the colour space (2 values):  about [-0.5, 0.5]
           ``lab``: a*/100, b*/100; ``rgb``/``hsv``: B - Y, R - Y. Holds the hue cast.
========== ================================================================ =================

How the correction is applied depends on the space (:class:`ColorSpace`): ``lab`` moves L* (lightness
and contrast) and scales/shifts a*, b* (saturation and balance), so hues stay put as lightness changes;
``hsv`` moves V and scales S (each pixel keeps its hue) and shifts the chroma for the balance; ``rgb``
works on luma and the RGB chroma ``RGB - Y`` (linear, cheapest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import torch

#: Rec. 601 luma weights (OpenCV's RGB -> grey, which :func:`renderer.metrics.sharpness` uses too).
LUMA = (0.299, 0.587, 0.114)
#: Number of controlled figures: brightness, contrast, saturation, and the two balance coordinates.
N_FIGURES = 5
BRIGHTNESS, CONTRAST, SATURATION, BALANCE = 0, 1, 2, slice(3, 5)
#: Figures controlled as ratios (log error, multiplicative gain) rather than differences.
_RATIO = (False, True, True, False, False)
#: Anti-windup: the most each loop's integral may correct (offsets in figure units; log gains). The
#: balance loops get little room: a cast shift also moves the saturation, which has priority.
_INTEGRAL_LIMIT = (0.25, 1.0, 1.0, 0.05, 0.05)
#: Smallest contrast or saturation taken as a figure (a flat or grey frame would give log(0)).
_FLOOR = 1e-3


class Coherence(Enum):
    """What the colour figures are held to (Deforum's ``color_coherence``)."""

    AUTO = "auto"                # the source for a video or a folder of frames, the first frame otherwise
    FIRST_FRAME = "first-frame"  # the first dreamed frame's figures, for the whole render
    SOURCE = "source"            # each frame's own source frame (a still image: the image)
    NONE = "none"                # no colour control at all (as color.match = 0)


class ColorSpace(Enum):
    """Where the correction is applied (the figures themselves are always measured the same way)."""

    LAB = "lab"
    HSV = "hsv"
    RGB = "rgb"


# ------------------------------------------------------------------------------------------ measures

def luma(frame: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of (1,3,H,W) RGB in [0,1] -> (1,1,H,W)."""
    weights = frame.new_tensor(LUMA).view(1, 3, 1, 1)
    return (frame * weights).sum(1, keepdim=True)


def saturation(frame: torch.Tensor) -> torch.Tensor:
    """HSV saturation ``(max - min) / max`` of (1,3,H,W) -> (1,1,H,W) in [0,1]; 0 where max is ~0."""
    high = frame.amax(1, keepdim=True)
    low = frame.amin(1, keepdim=True)
    return torch.where(high > 1e-6, (high - low) / high.clamp_min(1e-6), torch.zeros_like(high))


def channel_stats(frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of (1,3,H,W), each (1,3,1,1)."""
    return frame.mean((2, 3), keepdim=True), frame.std((2, 3), keepdim=True)


def figures(frame: torch.Tensor, space: ColorSpace = ColorSpace.LAB) -> torch.Tensor:
    """The controlled figures of (1,3,H,W) RGB in [0,1]: a float64 CPU tensor (5,) = brightness (mean
    luma), contrast (std of luma), saturation (mean HSV saturation), balance (2: mean chroma of `space`,
    see the module docstring). Values outside [0,1] are measured as they would be shown (clamped)."""
    shown = frame.clamp(0.0, 1.0)
    y = luma(shown)
    if space is ColorSpace.LAB:
        lab = rgb_to_lab(shown)
        balance = lab[:, 1:].mean((2, 3)).flatten() / 100.0
    else:
        balance = torch.stack([(shown[:, 2:3] - y).mean(), (shown[:, 0:1] - y).mean()])
    values = torch.stack([y.mean(), y.std(), saturation(shown).mean(), *balance])
    return values.double().cpu()


# ----------------------------------------------------------------------------------- colour spaces

# sRGB (D65) <-> CIE XYZ, and the D65 white point.
_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
_XYZ_TO_RGB = tuple(tuple(row) for row in torch.linalg.inv(torch.tensor(_RGB_TO_XYZ, dtype=torch.float64)).tolist())
_WHITE = (0.95047, 1.0, 1.08883)


def _linear(srgb: torch.Tensor) -> torch.Tensor:
    """sRGB transfer function inverse; odd-symmetric so out-of-range values survive a round trip."""
    a = srgb.abs()
    return torch.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4) * srgb.sign()


def _gamma(linear: torch.Tensor) -> torch.Tensor:
    a = linear.abs()
    return torch.where(a <= 0.0031308, a * 12.92, 1.055 * a ** (1 / 2.4) - 0.055) * linear.sign()


def rgb_to_lab(frame: torch.Tensor) -> torch.Tensor:
    """(1,3,H,W) sRGB in [0,1] -> CIE L*a*b* (D65): L in [0,100], a and b about [-110, 110]."""
    matrix = frame.new_tensor(_RGB_TO_XYZ)
    xyz = torch.einsum("rc,bchw->brhw", matrix, _linear(frame)) / frame.new_tensor(_WHITE).view(1, 3, 1, 1)
    delta = 6 / 29
    f = torch.where(xyz > delta ** 3, xyz.abs() ** (1 / 3) * xyz.sign(), xyz / (3 * delta ** 2) + 4 / 29)
    return torch.cat([116 * f[:, 1:2] - 16, 500 * (f[:, 0:1] - f[:, 1:2]), 200 * (f[:, 1:2] - f[:, 2:3])], 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_lab`; colours outside sRGB come back outside [0,1] (not clamped)."""
    fy = (lab[:, 0:1] + 16) / 116
    f = torch.cat([fy + lab[:, 1:2] / 500, fy, fy - lab[:, 2:3] / 200], 1)
    delta = 6 / 29
    xyz = torch.where(f > delta, f ** 3, 3 * delta ** 2 * (f - 4 / 29)) * lab.new_tensor(_WHITE).view(1, 3, 1, 1)
    matrix = lab.new_tensor(_XYZ_TO_RGB)
    return _gamma(torch.einsum("rc,bchw->brhw", matrix, xyz))


def rgb_to_hsv(frame: torch.Tensor) -> torch.Tensor:
    """(1,3,H,W) RGB in [0,1] -> HSV (1,3,H,W): hue in [0,1) (a full turn), saturation and value in [0,1]."""
    high, argmax = frame.max(1, keepdim=True)
    spread = high - frame.amin(1, keepdim=True)
    r, g, b = frame[:, 0:1], frame[:, 1:2], frame[:, 2:3]
    safe = spread.clamp_min(1e-8)
    hue = torch.where(argmax == 0, ((g - b) / safe) % 6, torch.where(argmax == 1, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(spread > 1e-8, hue / 6, torch.zeros_like(hue))
    return torch.cat([hue, saturation(frame), high], 1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv` (saturation and value may leave [0,1]: the result is not clamped)."""
    h, s, v = hsv[:, 0:1], hsv[:, 1:2], hsv[:, 2:3]
    k = (hsv.new_tensor((5.0, 3.0, 1.0)).view(1, 3, 1, 1) + h * 6) % 6
    return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0.0, 1.0)


# -------------------------------------------------------------------------------------- correction

def soft_clip(frame: torch.Tensor, knee: float) -> torch.Tensor:
    """Roll values off toward 0 and 1 instead of clipping: identity on [knee, 1 - knee], and an excess
    ``o`` beyond an edge becomes ``o / (1 + o / knee)`` (slope 1 at the edge, approaching the end of
    the range asymptotically), so a value reaches uint8 0 or 255 only some 30 knees past the end;
    values near the ends are compressed (in a feedback loop, a gentle push back toward the middle, so
    nothing piles up at pure black or white). Rational rather than tanh: as smooth, and cheap on a
    busy CPU. `knee` is the width of each soft zone, in [0, 0.5); 0 = a hard clamp. Same shape as
    `frame`."""
    if knee <= 0.0:
        return frame.clamp(0.0, 1.0)
    over = (frame - (1.0 - knee)).clamp_min(0.0)
    under = (knee - frame).clamp_min(0.0)
    rolled = frame - over + over / (1.0 + over / knee) + under - under / (1.0 + under / knee)
    return rolled.clamp(0.0, 1.0)  # the asymptote itself (and NaN-free rounding) stays inside


def apply_correction(frame: torch.Tensor, correction: torch.Tensor, space: ColorSpace) -> torch.Tensor:
    """Apply a correction (5,) = [brightness offset, log contrast gain, log saturation gain, balance
    offset (2)] to (1,3,H,W) RGB in [0,1] in `space`; the result is not clamped. A zero correction
    returns the frame unchanged (up to the colour space's round trip)."""
    offset, contrast, chroma, shift_1, shift_2 = (float(v) for v in correction)
    gain, chroma_gain = math.exp(contrast), math.exp(chroma)
    if space is ColorSpace.LAB:
        lab = rgb_to_lab(frame)
        light = lab[:, 0:1]
        # Brightness is mean luma in [0,1]; L* spans 100 for the same range (about 1:1 in mid-tones).
        light = (light - light.mean()) * gain + light.mean() + 100 * offset
        ab = lab[:, 1:] * chroma_gain + lab.new_tensor((shift_1, shift_2)).view(1, 2, 1, 1) * 100
        return lab_to_rgb(torch.cat([light, ab], 1))
    if space is ColorSpace.HSV:
        hsv = rgb_to_hsv(frame.clamp(0.0, 1.0))
        value = hsv[:, 2:3]
        value = (value - value.mean()) * gain + value.mean() + offset
        frame = hsv_to_rgb(torch.cat([hsv[:, 0:1], hsv[:, 1:2] * chroma_gain, value], 1))
        return _shift_chroma(frame, shift_1, shift_2)
    y = luma(frame)
    y_new = (y - y.mean()) * gain + y.mean() + offset
    return _shift_chroma(y_new + (frame - y) * chroma_gain, shift_1, shift_2)


def _shift_chroma(frame: torch.Tensor, blue: float, red: float) -> torch.Tensor:
    """Add `blue` to B - Y and `red` to R - Y, keeping luma: G takes what keeps Y unchanged."""
    green = -(LUMA[0] * red + LUMA[2] * blue) / LUMA[1]
    return frame + frame.new_tensor((red, green, blue)).view(1, 3, 1, 1)


def match_color(frame: torch.Tensor, reference: tuple[torch.Tensor, torch.Tensor], strength: float) -> torch.Tensor:
    """Move each channel's mean and spread of `frame` (1,3,H,W) toward `reference` stats by `strength`
    (0 = unchanged, 1 = exactly the reference's); clamped to [0,1]. One frame at a time (the studio's
    preview); renders use :class:`ColorController`."""
    if strength <= 0.0:
        return frame
    mean, std = channel_stats(frame)
    ref_mean, ref_std = reference
    matched = (frame - mean) * (ref_std / std.clamp_min(1e-4)) + ref_mean
    return torch.lerp(frame, matched, strength).clamp_(0.0, 1.0)


# -------------------------------------------------------------------------------------- controller

def integral_gain(strength: float) -> float:
    """The integral gain that makes a PI loop of proportional gain `strength` critically damped when
    the loop's output is fed back (a feedback render is an integrator: what is corrected in frame n
    stays in frame n+1). Closed loop: ``z^2 - (2 - Kp - Ki) z + (1 - Kp)``; a double root at
    ``sqrt(1 - Kp)`` needs ``Ki = (1 - sqrt(1 - Kp))^2``: the error decays without changing sign
    (no oscillation), within about ``4 / (1 - sqrt(1 - Kp))`` frames (strength 0.25: ~30 frames)."""
    strength = min(max(strength, 0.0), 1.0)
    return (1.0 - math.sqrt(1.0 - strength)) ** 2


def _errors(target: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """target - measured for offsets, log(target / measured) for ratios; (5,) float64."""
    error = target - measured
    for i, ratio in enumerate(_RATIO):
        if ratio:
            error[i] = math.log(max(float(target[i]), _FLOOR) / max(float(measured[i]), _FLOOR))
    return error


@dataclass
class ColorState:
    """The controller's memory, saved in a render's checkpoint so a resumed render continues exactly.

    Attributes:
        target: the first-frame figures (5,) as floats, or None before the first frame / when holding
            to the source.
        integral: each loop's integral term (5,): brightness and balance offsets, log contrast and
            log saturation gains.
    """

    target: list[float] | None = None
    integral: list[float] = field(default_factory=lambda: [0.0] * N_FIGURES)

    def to_dict(self) -> dict:
        return {"target": None if self.target is None else list(self.target), "integral": list(self.integral)}

    @classmethod
    def from_dict(cls, saved: dict) -> ColorState:
        target = saved["target"]
        return cls(None if target is None else [float(v) for v in target], [float(v) for v in saved["integral"]])


@dataclass(frozen=True)
class ColorTargets:
    """One frame's colour settings. `strength` is ``color.match`` (the proportional gain, 0 = off);
    `brightness`, `contrast`, `saturation` are scheduled targets in figure units (0 = from the reference)."""

    strength: float
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0


class ColorController:
    """Holds each frame's figures at their targets: one PI loop per figure, then a soft knee.

    For each dreamed frame ``x`` with figures ``f(x)`` and targets ``T``:
    ``u = Kp * e(T, f(x)) + I`` (``e`` = difference, or log ratio for contrast and saturation),
    the frame is corrected by ``u`` (:func:`apply_correction`) and soft-clipped (:func:`soft_clip`);
    then ``I += Ki * e(T, f(output))``: the integral learns the correction the loop's own drift
    (the dream adds contrast every frame, the zoom's resampling softens it) needs, so the *output*
    converges to the target, where a fixed blend would settle at a steady error. ``Kp`` is
    ``color.match``, ``Ki`` from :func:`integral_gain` (critically damped). The state is
    :class:`ColorState`.
    """

    def __init__(self, coherence: Coherence, space: ColorSpace, knee: float, moving_source: bool) -> None:
        if coherence is Coherence.AUTO:
            coherence = Coherence.SOURCE if moving_source else Coherence.FIRST_FRAME
        self.coherence, self.space, self.knee = coherence, space, knee

    def reference(self, state: ColorState, dreamed: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        """The figures to hold (5,): the source frame's, or the first dreamed frame's (recorded into
        `state` the first time; a render without a source always uses the first frame)."""
        if self.coherence is Coherence.SOURCE and source is not None:
            return figures(source, self.space)
        if state.target is None:
            state.target = figures(dreamed, self.space).tolist()
        return torch.tensor(state.target, dtype=torch.float64)

    def __call__(self, frame: torch.Tensor, source: torch.Tensor | None, settings: ColorTargets,
                 state: ColorState) -> torch.Tensor:
        """The corrected frame (1,3,H,W) in (0,1); updates `state`. Strength 0 or coherence ``none``:
        the frame clamped to [0,1], as without colour control."""
        if self.coherence is Coherence.NONE or settings.strength <= 0.0:
            return frame.clamp(0.0, 1.0)
        target = self.reference(state, frame, source)
        if settings.saturation > 0.0:
            # The colour cast (mean chroma) grows and shrinks with the saturation: scale it with a
            # scheduled saturation, or the balance and saturation loops would fight each other.
            target[BALANCE] *= settings.saturation / max(float(target[SATURATION]), _FLOOR)
        for i, scheduled in ((BRIGHTNESS, settings.brightness), (CONTRAST, settings.contrast),
                             (SATURATION, settings.saturation)):
            if scheduled > 0.0:
                target[i] = scheduled
        integral = torch.tensor(state.integral, dtype=torch.float64)
        measured = figures(frame, self.space)
        correction = settings.strength * _errors(target, measured) + integral
        output = soft_clip(apply_correction(frame, correction, self.space), self.knee)
        limit = torch.tensor(_INTEGRAL_LIMIT, dtype=torch.float64)
        measured = figures(output, self.space)
        integral = integral + integral_gain(settings.strength) * _errors(target, measured)
        state.integral = torch.maximum(torch.minimum(integral, limit), -limit).tolist()
        return output
