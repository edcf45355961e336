"""Presets: TOML files -> frozen, validated settings; ``--set a.b=c`` overrides.

A preset has a top-level ``mode`` (``feedback`` or ``flow``) and ``description``, and the tables
below. Every numeric key marked *scheduled* takes a constant or a schedule string
(``"0:(1.0), 48:(1.04)"``, see :mod:`renderer.schedule`); ``dream.objective`` takes a text schedule.
Errors name the key path and what is accepted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import PresetError
from .flow import FlowMethod
from .schedule import parse_schedule, parse_text_schedule

#: A scheduled number: a constant or a schedule string.
Scheduled = Union[float, str]


class Mode(Enum):
    FEEDBACK = "feedback"  # frame n+1 = dream(transform(frame n)), optionally mixing the source in
    FLOW = "flow"          # carry the previous dream along the source video's optical flow


@dataclass(frozen=True)
class ModelSettings:
    name: str = "inception5h"
    weights: str = ""  # a weight file; empty = the standard lookup


@dataclass(frozen=True)
class DreamConfig:
    """Per-frame dreaming. ``first_*`` apply to the first frame, which is dreamed fully."""

    objective: str = "mixed4c"      # text schedule: "0:(mixed4c), 4s:(mixed4c), 6s:(mixed5a)"
    steps: Scheduled = 3            # scheduled; rounded to whole steps
    step_size: Scheduled = 0.006    # scheduled; mean change per pixel per step, [0,1] units
    octaves: Scheduled = 2          # scheduled; rounded
    octave_scale: Scheduled = 1.4   # scheduled
    jitter: int = 32
    tile: int = 0                   # 0 = auto (from free memory), -1 = never, N = tile side px
    precision: str = "auto"         # auto (bf16/fp16 autocast on CUDA, fp32 elsewhere) | fp32 | bf16 | fp16
    first_steps: int = 10
    first_octaves: int = 4


@dataclass(frozen=True)
class MotionConfig:
    """Feedback-mode camera, per second (fps-independent)."""

    zoom: Scheduled = 1.0           # scale per second, > 1 zooms in
    angle: Scheduled = 0.0          # degrees per second, counter-clockwise
    translate_x: Scheduled = 0.0    # frame widths per second, + moves content right
    translate_y: Scheduled = 0.0    # frame heights per second, + moves content down
    center_x: Scheduled = 0.5       # zoom/rotation centre, fraction of width
    center_y: Scheduled = 0.5
    mix: Scheduled = 0.0            # weight of the current source frame blended in, 0..1


@dataclass(frozen=True)
class FlowConfig:
    """Flow-mode carrying of the previous dream along the source's motion."""

    method: str = "dis"             # dis | farneback
    carry: Scheduled = 0.85         # share of the previous frame's dream carried over, 0..1 (< 1 keeps
                                    # the dream's strength at a steady state instead of piling up)
    consistency: bool = True        # drop the carry where the flow is unreliable (occlusions)
    refresh: Scheduled = 2.0        # extra step-size factor where the carry was dropped (re-dream it)


@dataclass(frozen=True)
class ColorConfig:
    match: Scheduled = 0.0          # 0..1: pull each frame's colour statistics toward the source's


@dataclass(frozen=True)
class OutputConfig:
    fps: float = 24.0               # for image, noise and frame-folder inputs (video keeps its own)
    size: str = ""                  # WxH; empty = the input's size (640x360 for noise)
    crf: int = -1                   # quality for mp4/webm; -1 = the format's default
    seed: int = 0


@dataclass(frozen=True)
class Preset:
    mode: Mode = Mode.FEEDBACK
    description: str = ""
    model: ModelSettings = field(default_factory=ModelSettings)
    dream: DreamConfig = field(default_factory=DreamConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    color: ColorConfig = field(default_factory=ColorConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain TOML-able dict (enums as their values)."""
        def plain(value: Any) -> Any:
            if isinstance(value, Enum):
                return value.value
            return {k: plain(v) for k, v in value.items()} if isinstance(value, dict) else value
        return plain(dataclasses.asdict(self))

    def digest(self) -> str:
        """A short hash of every setting (resume refuses to continue with different settings)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


#: Keys whose value is a text schedule rather than a number.
TEXT_SCHEDULED = {"dream.objective"}
CHOICES = {"model.name": None, "dream.precision": ("auto", "fp32", "bf16", "fp16"), "flow.method": tuple(m.name.lower() for m in FlowMethod), "mode": tuple(m.value for m in Mode)}
#: Inclusive bounds checked on constants here and on every frame's value of a schedule.
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "dream.steps": (0, 1000), "dream.step_size": (0, 1), "dream.octaves": (1, 12),
    "dream.octave_scale": (1.01, 4), "dream.jitter": (0, 4096), "dream.first_steps": (0, 1000),
    "dream.first_octaves": (1, 12), "motion.zoom": (1e-3, 1e3), "motion.mix": (0, 1),
    "flow.carry": (0, 1), "flow.refresh": (0, 100), "color.match": (0, 1), "output.fps": (0.1, 1000),
    "output.crf": (-1, 63), "dream.tile": (-1, 65536),
}


# ----------------------------------------------------------------------------------------- locating

def preset_dirs() -> list[Path]:
    """Where named presets live: the user's folder, then the shipped ones."""
    shipped = [Path(__file__).resolve().parent.parent / "presets", Path(sys.prefix) / "share" / "dreamvid" / "presets"]
    user = Path.home() / ".config" / "dreamvid" / "presets"
    return [user] + [d for d in shipped if d.is_dir()][:1]


def preset_names() -> list[str]:
    return sorted({p.stem for d in preset_dirs() if d.is_dir() for p in d.glob("*.toml")})


def find_preset(name_or_path: str) -> Path:
    """A preset name (``fractal-zoom``) or a path to a TOML file."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise PresetError(f"preset file not found: {path}")
        return path
    for folder in preset_dirs():
        if (folder / f"{name_or_path}.toml").is_file():
            return folder / f"{name_or_path}.toml"
    raise PresetError(f"unknown preset {name_or_path!r}", hint=f"choose one of: {', '.join(preset_names())}"
                      " (or give a path to a .toml file)")


# ------------------------------------------------------------------------------------------ loading

def load_preset(name_or_path: str | None, overrides: Sequence[str] = ()) -> Preset:
    """Read a preset (None = all defaults), apply ``--set key.path=value`` overrides, validate."""
    raw: dict[str, Any] = {}
    if name_or_path:
        path = find_preset(name_or_path)
        try:
            raw = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PresetError(f"{path}: invalid TOML ({exc})") from exc
    for item in overrides:
        apply_override(raw, item)
    return build_preset(raw)


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply ``a.b=value`` to the nested dict; the value is read as TOML (numbers, booleans, quoted
    strings), and as a plain string when it is not valid TOML (``dream.objective=mixed5a``)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise PresetError(f"bad --set {item!r}", hint="write --set section.key=value, e.g. --set dream.steps=6")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise PresetError(f"bad --set {item!r}: {part} is not a table")
    node[leaf] = value


def build_preset(raw: Mapping[str, Any]) -> Preset:
    """Validate a nested dict into a :class:`Preset` (unknown keys, types, bounds, schedule syntax)."""
    return _build(Preset, raw, "")


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise PresetError(f"{prefix.rstrip('.')}: expected a table of settings, got {raw!r}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        path = prefix + key
        if key not in known:
            raise PresetError(f"unknown key {path!r}", hint=f"known keys{' in [' + prefix.rstrip('.') + ']' if prefix else ''}: "
                              f"{', '.join(known)}")
        values[key] = _value(hints[key], value, path)
    return cls(**values)


def _value(kind: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, path + ".")
    if isinstance(kind, type) and issubclass(kind, Enum):
        choices = [m.value for m in kind]
        if value not in choices:
            raise PresetError(f"{path}: {value!r} is not allowed", hint=f"choose one of: {', '.join(choices)}")
        return kind(value)
    if kind is Scheduled or get_origin(kind) is Union and str in get_args(kind) and float in get_args(kind):
        if path in TEXT_SCHEDULED:
            parse_text_schedule(value, path)
            return value
        schedule = parse_schedule(value, path)
        if schedule.is_constant:
            _check_bounds(path, float(value) if not isinstance(value, str) else None, schedule)
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise PresetError(f"{path}: expected true or false, got {value!r}")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            raise PresetError(f"{path}: expected {'a whole number' if kind is int else 'a number'}, got {value!r}")
        _check_bounds(path, float(value))
        return kind(value)
    if kind is str:
        if not isinstance(value, str):
            raise PresetError(f"{path}: expected text, got {value!r}")
        choices = CHOICES.get(path)
        if choices and value.lower() not in choices:
            raise PresetError(f"{path}: {value!r} is not allowed", hint=f"choose one of: {', '.join(choices)}")
        return value
    raise TypeError(f"unhandled setting type {kind} at {path}")  # a bug in the dataclasses above


def _check_bounds(path: str, value: float | None, schedule: Any = None) -> None:
    if value is None and schedule is not None:
        from .schedule import ScheduleContext

        value = float(schedule.evaluate(ScheduleContext(n_frames=1, fps=24.0))[0])
    check_range(path, value)


def check_range(path: str, value: float, frame: int | None = None) -> None:
    """Raise PresetError when `value` is outside the bounds of `path` (frame named when scheduled)."""
    lo, hi = BOUNDS.get(path, (None, None))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        at = f" at frame {frame}" if frame is not None else ""
        raise PresetError(f"{path}: {value:g}{at} is out of range", hint=f"use a value from {lo:g} to {hi:g}")


def dump_toml(preset: Preset, header: Sequence[str] = ()) -> str:
    """The preset as TOML (loadable with --preset), with `header` lines as comments."""
    import tomli_w

    data = preset.to_dict()
    top = {k: data.pop(k) for k in ("mode", "description")}
    lines = [f"# {line}" for line in header]
    return "\n".join(lines) + ("\n" if lines else "") + tomli_w.dumps(top) + "\n" + tomli_w.dumps(data)


def preview_preset(preset: Preset) -> Preset:
    """The same look, fast: at most 2 steps on 2 octaves per frame (4 steps on the first frame)."""
    dream = dataclasses.replace(preset.dream, steps=2, octaves=2, first_steps=min(preset.dream.first_steps, 4),
                                first_octaves=min(preset.dream.first_octaves, 2))
    return dataclasses.replace(preset, dream=dream)
