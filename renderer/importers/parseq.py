"""Parseq keyframe exports (sd-parseq's JSON: ``rendered_frames`` plus ``options`` and ``keyframes``)
-> dreamvid.

Parseq renders its keyframes to one value per frame (``rendered_frames``: ``frame``, ``zoom``,
``angle``, ``translation_x``, ``strength``, ``seed``, ..., with ``*_delta`` and ``*_pc`` variants).
Deforum reads the motion fields from their ``*_delta`` variants by default (``parseq_use_deltas``:
Parseq's motion values are positions, the deltas are the motion of each frame; ``zoom_delta`` is
``1 + zoom[n] - zoom[n-1]``), and the others as they are. The importer does the same, converts every
frame's value to dreamvid's units (:mod:`renderer.importers.units`) and writes a linear keyframe
schedule that keeps only the frames where the slope changes: every frame's value is kept exactly.

Parseq does not know the picture size; translations (pixels per frame) are measured against
Deforum's default 512x512 unless a size is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InputError
from . import Imported, number, reason_for
from .units import fmt, keyframes, motion_conversions

#: Deforum's picture size when none is given (Parseq's translations are pixels of it).
DEFAULT_SIZE = (512, 512)
#: Motion fields Deforum reads from their ``*_delta`` variant (when it uses deltas).
DELTA_FIELDS = ("zoom", "angle", "translation_x", "translation_y", "translation_z", "rotation_3d_x",
                "rotation_3d_y", "rotation_3d_z", "perspective_flip_theta", "perspective_flip_phi",
                "perspective_flip_gamma")
_CARRIED = ("zoom", "angle", "translation_x", "translation_y", "transform_center_x", "transform_center_y", "strength")
# Top-level keys of an export, and what happens to them.
_TOP_LEVEL = {
    "meta": "the export's metadata (generator, version, date)",
    "prompts": reason_for("prompts"),
    "keyframes": "Parseq's keyframes and interpolators (their rendered per-frame values are imported)",
    "timeSeries": "Parseq's time series (their rendered per-frame values are imported)",
    "managedFields": "Parseq's list of the fields it renders",
    "displayedFields": "Parseq's display settings",
    "keyframeLock": "Parseq's display settings",
    "rendered_frames_meta": "Parseq's summary of the rendered values",
    "reverseRender": "Parseq's reversed rendering (render the imported preset and reverse the output)",
    "options.input_fps": "Parseq's analysis settings for its reference audio or video",
    "options.cc_window_width": "Parseq's analysis settings for its reference audio or video",
    "options.cc_window_slide_rate": "Parseq's analysis settings for its reference audio or video",
    "options.cc_use_input": "Parseq's analysis settings for its reference audio or video",
}


def looks_like(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` is a Parseq export."""
    return "rendered_frames" in data


def convert(data: Mapping[str, Any], name: str, *, size: tuple[int, int] | None = None,
            deltas: bool = True) -> Imported:
    """Convert a Parseq export (already read as JSON) into a dreamvid preset.

    Args:
        data: the export.
        name: the file's name, for the description.
        size: the picture size translations are measured against (default 512x512).
        deltas: read motion from the ``*_delta`` fields, as Deforum does by default.

    Raises:
        InputError: no frames, or a frame or value of the wrong type (naming it).
    """
    frames = _frames(data.get("rendered_frames"))
    options = data.get("options", {})
    if not isinstance(options, Mapping):
        raise InputError(f"options: expected an object, got {options!r}")
    fps = number(options, "output_fps", 15)
    if fps <= 0:
        raise InputError(f"options.output_fps: expected a positive number, got {fps:g}")
    n_frames = frames[-1]["frame"] + 1
    imported = Imported("Parseq export", n_frames=n_frames, fps=fps)
    imported.set("mode", "feedback", "Parseq animates Deforum's 2D/3D feedback loop.")
    imported.set("description", f"Imported from Parseq export {name} ({n_frames} frames at {fmt(fps)} fps)")
    imported.set("output.fps", fps, "Parseq options.output_fps (for image and noise inputs).")
    _options(imported, options)

    width, height = size or DEFAULT_SIZE
    conversions = motion_conversions(fps, width, height)
    numbers = [f["frame"] for f in frames]
    fields = list(frames[0])
    handled = {"frame"}
    for field in _CARRIED:
        source = f"{field}_delta" if deltas and field in DELTA_FIELDS else field
        if field not in frames[0] and source not in frames[0]:
            continue
        values = _series(frames, field, source)
        conversion = conversions[field]
        note = conversion.note + (f" Read from Parseq's {source} (Deforum's parseq_use_deltas)." if source != field else "")
        imported.set(conversion.key, keyframes(numbers, [conversion.number(v) for v in values]), note)
        handled |= {field, f"{field}_delta", f"{field}_pc"}
    if "seed" in frames[0]:
        seeds = _series(frames, "seed", "seed")
        first = int(seeds[0])
        if first >= 0:
            imported.set("output.seed", first, "Parseq seed at frame 0 (dreamvid draws all frames from one seeded stream).")
        if len(set(seeds)) > 1 or first < 0:
            imported.skip("seed", "a seed per frame (dreamvid draws all frames from one seeded stream: output.seed)")
        handled |= {"seed", "seed_delta", "seed_pc"}

    imported.command = f"dreamvid render noise --frames {n_frames} --preset fractal-zoom --preset {{preset}}"
    imported.header = [f"dreamvid preset imported from Parseq export {name}",
                       f"Keyframes count frames, as in Parseq (at {fmt(fps)} fps); translations are pixels of "
                       f"{width}x{height}."]
    for field in fields:
        base = field.removesuffix("_delta").removesuffix("_pc")
        if field not in handled and base not in handled:
            imported.skip(f"rendered_frames.{field}", reason_for(base))
    for key in data:
        if key not in ("rendered_frames", "options"):
            imported.skip(key, _TOP_LEVEL.get(key, reason_for(key)))
    return imported


def _options(imported: Imported, options: Mapping[str, Any]) -> None:
    """options: output_fps (carried by the caller), bpm -> audio.bpm, cadence -> motion.cadence."""
    from dataclasses import fields

    from ..config import MotionConfig

    for key in options:
        if key == "bpm":
            bpm = number(options, "bpm", 0)
            if bpm > 0:
                imported.set("audio.bpm", bpm, "Parseq options.bpm: the tempo of beat keys (8b) and bpm.")
        elif key == "cadence" and "cadence" in {f.name for f in fields(MotionConfig)}:
            imported.set("motion.cadence", int(number(options, "cadence", 1, whole=True)),
                         "Parseq options.cadence (Deforum's diffusion_cadence): dream every k-th frame.")
        elif key != "output_fps":
            imported.skip(f"options.{key}", _TOP_LEVEL.get(f"options.{key}", reason_for(key)))


def _frames(rendered: Any) -> list[dict[str, Any]]:
    """The rendered frames in frame order (a repeated frame: the later one wins, as in Deforum)."""
    if not isinstance(rendered, list) or not rendered:
        raise InputError("rendered_frames: expected a list of frames, got " + repr(rendered)[:60],
                         hint="export the rendered frames from Parseq again")
    by_frame: dict[int, dict[str, Any]] = {}
    for index, frame in enumerate(rendered):
        if not isinstance(frame, dict) or isinstance(frame.get("frame"), bool) or not isinstance(frame.get("frame"), int) \
                or frame["frame"] < 0:
            raise InputError(f"rendered_frames[{index}]: expected an object with a frame number, got {repr(frame)[:60]}")
        by_frame[frame["frame"]] = frame
    return [by_frame[n] for n in sorted(by_frame)]


def _series(frames: Sequence[Mapping[str, Any]], field: str, source: str) -> list[float]:
    """Every frame's value of ``source``; a missing ``*_delta`` is computed as Parseq does (``zoom``:
    ``1 + zoom[n] - zoom[n-1]``, others ``value[n] - value[n-1]``; frame 0 keeps its value), and a frame
    without the field holds the previous frame's value."""
    if source != field and source not in frames[0]:
        values = _series(frames, field, field)
        return values[:1] + [(1.0 if field == "zoom" else 0.0) + b - a for a, b in zip(values, values[1:])]
    values: list[float] = []
    for frame in frames:
        if source not in frame:
            values.append(values[-1])
            continue
        value = frame[source]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise InputError(f"rendered_frames frame {frame['frame']}: {source}: expected a number, got {value!r}")
        values.append(float(value))
    return values
