"""Deforum settings files (the JSON ``*_settings.txt`` Deforum saves beside its frames) -> dreamvid.

What is carried, and how (units in :mod:`renderer.importers.units`):

- ``animation_mode``: ``2D`` and ``3D`` -> ``mode = "feedback"`` (3D's depth camera is not carried);
  ``Video Input`` -> ``mode = "flow"`` (Deforum re-dreams every video frame from the video; dreamvid
  also carries the previous dream along the optical flow, ``flow.carry = 0`` dreams afresh).
- ``zoom``, ``angle``, ``translation_x/y``, ``transform_center_x/y`` (2D) -> ``motion.*`` per second;
  ``strength_schedule`` -> ``dream.step_size``; ``fps`` -> ``output.fps``; ``W``/``H`` ->
  ``output.size``; ``seed`` -> ``output.seed``; ``color_coherence`` -> ``color.match``,
  ``color.coherence`` and ``color.space``;
  ``diffusion_cadence`` -> ``motion.cadence``; ``max_frames`` and the video or init image -> the
  command line printed with the import.

Schedules keep Deforum's meaning exactly. Deforum evaluates each keyframe's expression at every
frame until the next keyframe (expressions hold; ``t`` is the frame index, ``max_f`` the last frame,
``s`` the seed), and draws straight lines between keyframes that are plain numbers. A schedule of
numbers is copied as dreamvid keyframes (linear, the same); one with expressions is written with
``step|`` and the straight stretches as explicit ramps, and ``s`` is replaced by the seed's value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..errors import InputError, PresetError
from ..schedule import ScheduleContext, parse_schedule
from . import Imported, number, reason_for, text
from .units import Conversion, fmt, motion_conversions

#: Keys whose presence marks a Deforum settings file.
SIGNATURE = ("animation_mode", "max_frames", "strength_schedule", "diffusion_cadence")
#: Deforum's animation modes this importer carries, and the dreamvid mode each becomes.
MODES = {"2D": "feedback", "3D": "feedback", "Video Input": "flow"}
_MOTION = ("zoom", "angle", "translation_x", "translation_y", "transform_center_x", "transform_center_y")
# Deforum's check_is_number: a keyframe that is only a number is interpolated, anything else is held.
_NUMBER = re.compile(r"[+-]?[0-9]*(\.[0-9]+)?")
# Deforum's `s` (the seed) as a whole word, not a function name or part of one.
_SEED_VARIABLE = re.compile(r"(?<![\w.])s(?![\w(])")
# A quoted keyframe key, '"max_f-1":(...)'.
_QUOTED_KEY = re.compile(r"""(["'])([^"']*)\1(\s*:)""")


def looks_like(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` is a Deforum settings file (at least two of its signature keys)."""
    return sum(key in data for key in SIGNATURE) >= 2


class _NotCarried(Exception):
    """A schedule that cannot be written in dreamvid's syntax; the message says why."""


@dataclass(frozen=True)
class _Key:
    frame: int
    body: str           # the text between the parentheses
    value: float | None  # the number, for a keyframe that is only a number


def convert(data: Mapping[str, Any], name: str, *, size: tuple[int, int] | None = None) -> Imported:
    """Convert a Deforum settings file (already read as JSON) into a dreamvid preset.

    Args:
        data: the settings.
        name: the file's name, for the description.
        size: the picture size translations are measured against (default: the file's ``W`` x ``H``).

    Raises:
        InputError: an animation mode with no dreamvid equivalent, or a value of the wrong type.
    """
    mode = text(data, "animation_mode", "2D")
    if mode not in MODES:
        raise InputError(f"animation_mode: {mode!r} has no dreamvid equivalent",
                         hint="dreamvid imports Deforum's 2D, 3D (without depth) and Video Input animations")
    n_frames = int(number(data, "max_frames", 120, whole=True))
    if n_frames < 1:
        raise InputError(f"max_frames: expected at least 1, got {n_frames}")
    fps = number(data, "fps", 15)
    width, height = (int(number(data, "W", 512, whole=True)), int(number(data, "H", 512, whole=True)))
    if fps <= 0 or width < 1 or height < 1:
        raise InputError(f"fps, W, H: expected positive values, got {fps:g}, {width}, {height}")
    seed = int(number(data, "seed", -1, whole=True))
    imported = Imported("Deforum settings", n_frames=n_frames, fps=fps)
    handled = {"animation_mode", "max_frames", "fps", "W", "H", "seed"}

    imported.set("mode", MODES[mode], f"Deforum animation_mode {mode}." + (
        " Deforum dreams every video frame afresh from the video; dreamvid's flow mode also carries the "
        "previous dream along the optical flow (set flow.carry = 0 to dream each frame afresh)."
        if mode == "Video Input" else ""))
    imported.set("description", f"Imported from Deforum settings {name} ({mode}, {n_frames} frames at {fmt(fps)} fps)")
    imported.set("output.fps", fps, "Deforum fps (for image and noise inputs; a video keeps its own rate).")
    imported.set("output.size", f"{width}x{height}", "Deforum W x H.")
    if seed >= 0:
        imported.set("output.seed", seed, "Deforum seed (dreamvid draws all frames from this one seeded stream).")
    else:
        imported.skip("seed", f"random seed ({seed}): Deforum drew one when it rendered; dreamvid's output.seed 0 applies")

    measure = size or (width, height)
    conversions = motion_conversions(fps, *measure)
    for key in (*_MOTION, "strength_schedule"):
        if key not in data:
            continue
        handled.add(key)
        if key in _MOTION and mode == "Video Input":
            imported.skip(key, "not used in Video Input mode")
            continue
        if key in _MOTION and mode == "3D":
            imported.skip(key, reason_for("translation_z") if key.startswith("translation")
                          else "2D motion, not used in Deforum's 3D mode")
            continue
        conversion = conversions["strength" if key == "strength_schedule" else key]
        try:
            value = schedule(data[key], key, conversion, n_frames, fps, seed)
        except _NotCarried as exc:
            imported.skip(key, str(exc))
            continue
        imported.set(conversion.key, value, conversion.note)
    handled |= _colour(imported, data, mode)
    handled |= _cadence(imported, data, mode)
    imported.command, command_keys = _command(data, mode, n_frames)
    handled |= set(command_keys)
    imported.header = [f"dreamvid preset imported from Deforum settings {name}",
                       f"Keyframes and t count frames, as in Deforum (at {fmt(fps)} fps); translations are pixels "
                       f"of {measure[0]}x{measure[1]}."]
    for key in data:
        if key not in handled and key not in imported.unmapped:
            imported.skip(key, reason_for(key))
    return imported


def _colour(imported: Imported, data: Mapping[str, Any], mode: str) -> set[str]:
    """color_coherence -> color.match, color.coherence and color.space. Deforum matches each frame's
    colour histograms, in RGB, HSV or LAB, to frame 0 (or, with ``Video Input``, to the video frame, in
    LAB); dreamvid's controller holds brightness, contrast, saturation and colour balance at the same
    reference, correcting in the same space (:mod:`renderer.color`)."""
    if "color_coherence" not in data:
        return set()
    coherence = text(data, "color_coherence", "None").removeprefix("Match Frame 0 ")
    if coherence == "None":
        imported.set("color.match", 0.0, "Deforum color_coherence None: no colour control.")
        return {"color_coherence"}
    if coherence not in ("RGB", "LAB", "HSV", "Video Input"):  # "Image": a reference picture of its own
        imported.skip("color_coherence", f"{coherence!r}: dreamvid holds colours to the first frame or the source")
        return set()
    video = coherence == "Video Input"
    space = "LAB" if video else coherence
    imported.set("color.match", 1.0, f"Deforum color_coherence {coherence}: match colours to "
                 f"{'each video frame' if video else 'frame 0'}, every frame, in {space}. dreamvid's controller "
                 "holds the mean brightness, contrast, saturation and colour balance there (Deforum matches "
                 "whole histograms), at full strength.")
    imported.set("color.coherence", "source" if video else "first-frame")
    imported.set("color.space", space.lower())
    return {"color_coherence"}


def _cadence(imported: Imported, data: Mapping[str, Any], mode: str) -> set[str]:
    """diffusion_cadence -> motion.cadence (dream every k-th frame, the frames between moved only),
    where this dreamvid has the setting."""
    if "diffusion_cadence" not in data:
        return set()
    cadence = int(number(data, "diffusion_cadence", 1, whole=True))
    if mode == "Video Input":
        imported.skip("diffusion_cadence", "Deforum ignores cadence in Video Input mode")
        return set()
    from ..config import BOUNDS, MotionConfig

    if "cadence" not in {f.name for f in fields(MotionConfig)}:
        imported.skip("diffusion_cadence", "no cadence setting in this dreamvid")
        return set()
    low, high = BOUNDS.get("motion.cadence", (1, cadence))
    kept = int(min(max(cadence, low or 1), high or cadence))
    note = "Deforum diffusion_cadence: dream every k-th frame, move the frames between."
    if kept != cadence:
        note += f" Deforum's {cadence} is beyond dreamvid's range: {kept}."
    imported.set("motion.cadence", kept, note)
    return {"diffusion_cadence"}


def _command(data: Mapping[str, Any], mode: str, n_frames: int) -> tuple[str, list[str]]:
    """The dreamvid command that renders like Deforum did, and the keys it carries."""
    keys = ["max_frames"]
    source = "noise"
    if mode == "Video Input" and isinstance(data.get("video_init_path"), str) and data["video_init_path"]:
        source, keys = data["video_init_path"], keys + ["video_init_path"]
    elif data.get("use_init") is True and isinstance(data.get("init_image"), str) and data["init_image"]:
        source, keys = data["init_image"], keys + ["use_init", "init_image"]
    look = "flow-dream" if mode == "Video Input" else "fractal-zoom"
    return f"dreamvid render {source} --frames {n_frames} --preset {look} --preset {{preset}}", keys


# ------------------------------------------------------------------------------------------- schedules

def schedule(value: Any, key: str, conversion: Conversion, n_frames: int, fps: float, seed: int) -> float | str:
    """A Deforum schedule as the dreamvid value of ``conversion.key``, frame for frame the same.

    Raises:
        _NotCarried: the schedule uses what dreamvid's expressions lack, or the seed when it is random.
        InputError: the value is neither text nor a number.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"{key}: expected a schedule like \"0: (1.0)\", got {value!r}")
    if not isinstance(value, str):
        return float(fmt(conversion.number(float(value))))
    keys, rewritten = _parse(value, key, n_frames, fps, seed)
    ramps = [(a, b) for a, b in zip(keys, keys[1:]) if a.value is not None and _value_at(b, key, n_frames, fps) != a.value]
    if all(k.value is not None for k in keys) and (conversion.linear or not ramps):
        values = [conversion.number(k.value) for k in keys]  # type: ignore[arg-type]
        if len(set(values)) == 1:
            return float(fmt(values[0]))
        if conversion.kind == "same" and not rewritten:
            return value.strip()  # Deforum's syntax is dreamvid's: copied verbatim
        return ", ".join(f"{k.frame}:({fmt(v)})" for k, v in zip(keys, values))
    bodies = []
    for index, k in enumerate(keys):
        if k.value is None:
            bodies.append(conversion.expression(k.body))
            continue
        target = _value_at(keys[index + 1], key, n_frames, fps) if index + 1 < len(keys) else k.value
        if target == k.value:
            bodies.append(fmt(conversion.number(k.value)))
        else:  # Deforum's straight line toward the next keyframe's value
            span, rise = keys[index + 1].frame - k.frame, target - k.value
            ramp = f"{fmt(k.value)} {'+' if rise > 0 else '-'} {fmt(abs(rise))}*(t - {k.frame})/{span}"
            bodies.append(conversion.expression(ramp))
    if len(keys) == 1:
        return f"0:({bodies[0]})"
    return "step| " + ", ".join(f"{k.frame}:({body})" for k, body in zip(keys, bodies))


def _parse(value: str, key: str, n_frames: int, fps: float, seed: int) -> tuple[list[_Key], bool]:
    """The keyframes of a Deforum schedule that apply within ``n_frames``, from frame 0, and whether
    they differ from the text (the seed or a key substituted, a key added at 0 or dropped)."""
    original = value
    if _SEED_VARIABLE.search(value):
        if seed < 0:
            raise _NotCarried("uses the seed variable s, but the seed is random (-1)")
        value = _SEED_VARIABLE.sub(str(seed), value)
    context = ScheduleContext(n_frames=n_frames, fps=fps)
    try:
        value = _QUOTED_KEY.sub(lambda m: f"{_evaluate(m[2], key, context, 0):.0f}{m[3]}", value)
        parsed = parse_schedule(value if ":" in value else f"0:({value})", key)
    except PresetError as exc:
        raise _NotCarried(f"not a schedule dreamvid can read ({exc.message.removeprefix(key + ': ')})") from None
    keys = []
    for keyframe in parsed.keyframes:
        frame = int(keyframe.key.amount)
        if keyframe.key.unit.value or frame != keyframe.key.amount:
            raise _NotCarried(f"key {keyframe.label} is not a frame number")
        if frame < n_frames:  # later keys never apply in Deforum
            plain = keyframe.body.replace("(", "").replace(")", "").replace("'", "").replace('"', "").strip()
            number_value = float(plain) if plain and _NUMBER.fullmatch(plain) else None
            keys.append(_Key(frame, keyframe.body, number_value))
    if not keys:
        raise _NotCarried(f"no keyframe before max_frames ({n_frames})")
    if keys[0].frame > 0:  # Deforum holds the first keyframe's value back to frame 0
        keys.insert(0, _Key(0, "", _value_at(keys[0], key, n_frames, fps)))
    return keys, value != original or len(keys) != len(parsed.keyframes)


def _value_at(k: _Key, key: str, n_frames: int, fps: float) -> float:
    """The value of keyframe ``k`` on its own frame."""
    if k.value is not None:
        return k.value
    return _evaluate(k.body, key, ScheduleContext(n_frames=n_frames, fps=fps), k.frame)


def _evaluate(expression: str, key: str, context: ScheduleContext, frame: int) -> float:
    """An expression's value at ``frame`` (``t`` = frame, ``max_f`` = the last frame)."""
    return float(parse_schedule(expression, key).evaluate(context)[min(frame, context.n_frames - 1)])
