"""Per-frame settings of Deforum and Parseq in dreamvid's units, as numbers and as schedule text.

Deforum's 2D motion (``anim_frame_warp_2d``: ``cv2.getRotationMatrix2D(centre, angle, zoom)`` after a
shift of ``translation_x/y`` pixels) happens once per frame; dreamvid's ``motion`` is per second
(:class:`renderer.motion.Motion`). At the file's frame rate ``F`` and picture size ``W x H``:

=====================  =========================  =============================================
Deforum (per frame)    dreamvid (per second)      conversion
=====================  =========================  =============================================
zoom (factor)          motion.zoom (factor)       ``zoom ** F``
angle (deg, ccw)       motion.angle (deg, ccw)    ``angle * F``
translation_x (px, +right)  motion.translate_x (widths, +right)   ``translation_x * F / W``
translation_y (px, +down)   motion.translate_y (heights, +down)   ``translation_y * F / H``
transform_center_x/y   motion.center_x/y          the same (fractions of the picture)
strength (kept, 0..1)  dream.step_size            ``STEP_SIZE_AT_065 * (1 - clip(strength, 0, 1)) / 0.35``
=====================  =========================  =============================================

The strength: Deforum denoises ``steps * (1 - strength)`` sampler steps per frame, so how far a frame
moves from the warped previous one grows with ``1 - strength``. dreamvid's measure of that is the
dream's step size; Deforum's default strength 0.65 is mapped to dreamvid's default step size
(:data:`renderer.dream.DEFAULTS`), and strength 1 (keep everything) to 0 (dream nothing).

Deforum shifts before it zooms and turns, so its shift is scaled and turned with the frame; dreamvid's
translation is the speed of the content at the centre while it zooms. With a zoom or a turn the two
differ by about half a frame's zoom (1 % of the shift at zoom 1.02); they are equal without.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..dream import DEFAULTS

#: Deforum's default strength_schedule; it is given dreamvid's default dream step size.
REFERENCE_STRENGTH = 0.65


@dataclass(frozen=True)
class Conversion:
    """How one per-frame setting becomes a dreamvid setting.

    Attributes:
        key: the dreamvid key, ``"section.key"``.
        kind: ``"power"`` (value ** factor), ``"scale"`` (value * factor), ``"strength"`` (step size
            from a kept share) or ``"same"``.
        factor: the exponent or scale (the frame rate, or frame rate / picture side).
        factor_text: the factor as written into expressions (``"15"``, ``"15/512"``).
        note: the comment that explains it in the written preset.
    """

    key: str
    kind: str
    factor: float
    factor_text: str
    note: str

    @property
    def linear(self) -> bool:
        """Whether linear interpolation commutes with the conversion (so keyframes stay keyframes)."""
        return self.kind != "power"

    def number(self, value: float) -> float:
        """The dreamvid value of one per-frame value."""
        if self.kind == "power":
            return value ** self.factor
        if self.kind == "scale":
            return value * self.factor
        if self.kind == "strength":
            return STEP_PER_WEAKNESS * (1.0 - min(max(value, 0.0), 1.0))
        return value

    def expression(self, expression: str) -> str:
        """The dreamvid expression for a per-frame expression (``t`` stays the frame index)."""
        if self.kind == "power":
            return f"({expression})**{self.factor_text}"
        if self.kind == "scale":
            return f"({expression})*{self.factor_text}"
        if self.kind == "strength":
            return f"{fmt(STEP_PER_WEAKNESS)}*(1 - clip({expression}, 0, 1))"
        return expression


#: dream.step_size per unit of (1 - strength): Deforum's default strength gives dreamvid's default step.
STEP_PER_WEAKNESS = DEFAULTS.step_size / (1.0 - REFERENCE_STRENGTH)


def motion_conversions(fps: float, width: int, height: int) -> dict[str, Conversion]:
    """The conversions of Deforum's 2D motion and strength at ``fps`` frames per second and a picture
    of ``width`` x ``height`` pixels, by Deforum key."""
    f = fmt(fps)
    return {
        "zoom": Conversion("motion.zoom", "power", fps, f,
                           f"Deforum zoom is a factor per frame; dreamvid's per second: zoom ** {f} (at {f} fps)."),
        "angle": Conversion("motion.angle", "scale", fps, f,
                            f"Deforum angle is degrees per frame, counter-clockwise; dreamvid's per second: "
                            f"angle * {f}."),
        "translation_x": Conversion("motion.translate_x", "scale", fps / width, f"{f}/{width}",
                                    f"Deforum translation_x is pixels per frame (+ right) at {width} px wide; "
                                    f"dreamvid's is frame widths per second: translation_x * {f} / {width}. "
                                    "Deforum shifts before zooming: with zoom or angle the two differ by about "
                                    "half a frame's zoom."),
        "translation_y": Conversion("motion.translate_y", "scale", fps / height, f"{f}/{height}",
                                    f"Deforum translation_y is pixels per frame (+ down) at {height} px high; "
                                    f"dreamvid's is frame heights per second: translation_y * {f} / {height}."),
        "transform_center_x": Conversion("motion.center_x", "same", 1.0, "1",
                                         "Zoom and rotation centre, a fraction of the width in both."),
        "transform_center_y": Conversion("motion.center_y", "same", 1.0, "1",
                                         "Zoom and rotation centre, a fraction of the height in both."),
        "strength": Conversion("dream.step_size", "strength", 1.0, "1",
                               "Deforum strength is the share of the previous frame kept (each frame denoises "
                               "steps * (1 - strength)); dreamvid dreams with a step size: "
                               f"{fmt(STEP_PER_WEAKNESS)} * (1 - strength), so Deforum's default 0.65 gives "
                               f"dreamvid's default {fmt(DEFAULTS.step_size)} and strength 1 dreams nothing."),
    }


def fmt(value: float) -> str:
    """A number as schedule text: 12 significant digits, the shortest form (``1.02``, ``15``, ``1e-05``)."""
    rounded = float(f"{value:.12g}")
    return str(int(rounded)) if rounded.is_integer() and abs(rounded) < 1e15 else repr(rounded)


def keyframes(frames: Sequence[int], values: Sequence[float]) -> str | float:
    """Per-frame values as a linear keyframe schedule, keeping only the frames where the slope changes.

    Every dropped frame lies on the straight line between the kept frames around it (within 1e-9 of
    the values' scale), so the schedule gives every frame's value. One value throughout becomes a
    plain number.

    Args:
        frames: frame indices, increasing.
        values: the value at each of ``frames``.
    """
    if not values:
        raise ValueError("no values")
    scale = max(abs(v) for v in values) or 1.0
    tolerance = 1e-9 * scale
    if max(values) - min(values) <= tolerance:
        return float(fmt(values[0]))
    kept, last = [0], len(values) - 1
    while kept[-1] < last:
        a = kept[-1]
        slope = (values[a + 1] - values[a]) / (frames[a + 1] - frames[a])
        end = a + 1
        while end < last and abs(values[a] + slope * (frames[end + 1] - frames[a]) - values[end + 1]) <= tolerance:
            end += 1
        kept.append(end)
    return ", ".join(f"{frames[i]}:({fmt(values[i])})" for i in kept)
