"""Presets: TOML files -> frozen, typed, validated settings; ``--set a.b=c`` overrides.

This is the one place where settings text is parsed. A preset has a top-level ``mode`` (``feedback``
or ``flow``) and ``description``, and the tables below. Every key marked *scheduled* becomes a parsed
:class:`~renderer.schedule.Schedule` (a constant or ``"0:(1.0), 48:(1.04)"``), ``dream.objective`` a
:class:`~renderer.schedule.TextSchedule`, choices become enums and sizes tuples. Everything downstream
(the timeline, "does this need the soundtrack", the saved settings) reads those values. Errors name the
key path and what is accepted, and suggest the closest key for a misspelled one.

Defaults are declared once, on the fields below; dream defaults come from
:data:`renderer.dream.DEFAULTS`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .color import Coherence, ColorSpace
from .dream import DEFAULTS, Precision
from .errors import PresetError
from .flow import FlowMethod
from .schedule import Schedule, ScheduleContext, TextSchedule, parse_schedule, parse_text_schedule

class Mode(Enum):
    FEEDBACK = "feedback"  # frame n+1 = dream(transform(frame n)), optionally mixing the source in
    FLOW = "flow"          # carry the previous dream along the source video's optical flow

    @property
    def cadence_section(self) -> str:
        """The section whose ``cadence`` key this mode reads (``motion`` or ``flow``)."""
        return "flow" if self is Mode.FLOW else "motion"


def scheduled(default: float | str) -> Any:
    """A scheduled setting: declared with its default as written in a preset; :class:`Section` parses
    the default (or a value given as a plain number or text) into a Schedule."""
    return field(default=default, metadata={"scheduled": True})


class Section:
    """Base of the preset's tables: scheduled fields always hold parsed schedules."""

    SECTION = ""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if "scheduled" in f.metadata and not isinstance(value, (Schedule, TextSchedule)):
                parse = parse_text_schedule if f.name == "objective" else parse_schedule
                object.__setattr__(self, f.name, parse(value, f"{self.SECTION}.{f.name}"))


@dataclass(frozen=True)
class ModelSettings(Section):
    SECTION = "model"

    name: str = "inception5h"
    weights: str = ""  # a weight file; empty = the standard lookup (the packaged file for inception5h)


@dataclass(frozen=True)
class DreamConfig(Section):
    """Per-frame dreaming. ``first_*`` apply to the first frame, which is dreamed fully."""

    SECTION = "dream"

    objective: TextSchedule = scheduled("mixed4c")          # "0:(mixed4c), 4s:(mixed4c), 6s:(mixed5a)"
    steps: Schedule = scheduled(3)                          # rounded to whole steps
    step_size: Schedule = scheduled(DEFAULTS.step_size)     # mean change per pixel per step, [0,1] units
    octaves: Schedule = scheduled(2)                        # rounded
    octave_scale: Schedule = scheduled(DEFAULTS.octave_scale)
    # Short side (px) the look is dreamed at, whatever the frame size: `octaves` count down from it,
    # larger frames add detail octaves above it, smaller ones are dreamed enlarged to it and brought
    # back down (see renderer.dream.engine.octave_sizes). 0 = the frame's own size (looks change with it).
    working_size: int = 0
    jitter: int = DEFAULTS.jitter
    tile: int = DEFAULTS.tile       # 0 = auto (from free memory, fixed when the render starts), -1 = never, N = px
    precision: Precision = DEFAULTS.precision
    # Holds the mix of features the early keyframes dreamed (renderer.variety), so one pattern cannot
    # take over a long zoom: a channel with twice its early share pulls 2**-variety as hard. 0 = off.
    variety: Schedule = scheduled(0.0)
    first_steps: int = DEFAULTS.steps
    first_octaves: int = DEFAULTS.octaves


@dataclass(frozen=True)
class MotionConfig(Section):
    """Feedback-mode camera, per second (fps-independent)."""

    SECTION = "motion"

    zoom: Schedule = scheduled(1.0)           # scale per second, > 1 zooms in
    angle: Schedule = scheduled(0.0)          # degrees per second, counter-clockwise
    translate_x: Schedule = scheduled(0.0)    # frame widths per second, + moves content right
    translate_y: Schedule = scheduled(0.0)    # frame heights per second, + moves content down
    center_x: Schedule = scheduled(0.5)       # zoom/rotation centre, fraction of width
    center_y: Schedule = scheduled(0.5)
    mix: Schedule = scheduled(0.0)            # weight of the current source frame blended in, 0..1
    follow: Schedule = scheduled(0.0)         # seconds: the broad layout follows the source video's with this
                                              # lag (0: never pulled); keeps the video readable in the zoom
    cadence: Schedule = scheduled(1)          # dream every k-th frame, tween the frames between (1..16)


@dataclass(frozen=True)
class FlowConfig(Section):
    """Flow-mode carrying of the previous dream along the source's motion."""

    SECTION = "flow"

    method: FlowMethod = FlowMethod.DIS
    carry: Schedule = scheduled(1.0)    # share of the previous frame's dream carried over, 0..1
    consistency: bool = True            # drop the carry where the source does not arrive intact (occlusions)
    cuts: bool = True                   # at a shot cut (renderer.cuts) drop the carry and dream the new shot afresh
    # The most a pixel's picture may change (coarse colour, the frame-wide change removed; [0, 1] units)
    # from the one its dream was made on before the dream is dropped and dreamed again: a dissolve or a
    # slow change passes the frame-to-frame test step by step, and the old dream stayed on the new
    # picture (benchmarks/README.md, "Dissolves"). 0 = off.
    drift: float = 0.12
    refine: Schedule = scheduled(0.1)   # step-size factor where the carry is reliable, 0..1: low keeps the
                                        # dream attached to things (stable), 1 re-dreams every pixel (lively)
    refresh: Schedule = scheduled(2.0)  # step-size factor where the carry was dropped (re-dream it)
    catch_up: int = 3                   # keyframes over which a dropped region's factor eases from refresh to refine
    # The most the carried dream is amplified per keyframe to hold the first frame's strength (0: it only
    # fades, as resampling and renewal wear it). Below what the carry loses a keyframe the hold settles
    # under its target: at 0.03 a span opened mid-way through a panning scene lost 5 % a keyframe and sat
    # at 0.65 of the render's strength, a street shot at 0.8. The gain is a change of every pixel, so it
    # costs warping error (benchmarks/README.md, "Holes against flicker").
    hold: float = 0.08
    # Frames each output waits so that where its dream is still catching up (dropped, being dreamed
    # again) it shows the dream it has that many frames later, carried back along the flow
    # (renderer.lookahead). 0 = off: the region's dream grows in front of the viewer.
    lookahead: int = 6
    cadence: Schedule = scheduled(1)    # dream every k-th frame, carry the dream to the frames between (1..16)


@dataclass(frozen=True)
class ColorConfig(Section):
    """Colour coherence: a controller holds each frame's brightness, contrast, saturation and colour
    balance at their targets (see :mod:`renderer.color`). Targets come from ``coherence``, and a
    scheduled ``brightness``/``contrast``/``saturation`` above 0 replaces that figure's target."""

    SECTION = "color"

    match: Schedule = scheduled(0.0)    # 0..1: the controller's strength (proportional gain); 0 = off
    coherence: Coherence = Coherence.AUTO   # first-frame | source | none; auto: source for video, else first frame
    space: ColorSpace = ColorSpace.LAB      # where corrections apply: lab (L*, a*b*), hsv (V, S), rgb (luma, chroma)
    brightness: Schedule = scheduled(0.0)   # target mean luma (Rec. 601), 0..1; 0 = from the coherence reference
    contrast: Schedule = scheduled(0.0)     # target standard deviation of luma, 0..0.5; 0 = from the reference
    saturation: Schedule = scheduled(0.0)   # target mean HSV saturation (max-min)/max, 0..1; 0 = from the reference
    knee: float = 0.06                      # width of the soft roll-off at each end of [0,1]; 0 = hard clip
    detail: Schedule = scheduled(0.0)       # 0..1: sharpness controller strength, holding the early frames'
                                            # fine detail with an unsharp mask (renderer.detail); 0 = off


@dataclass(frozen=True)
class AudioConfig(Section):
    SECTION = "audio"

    bpm: float = 0.0                    # tempo for beat keys ("8b") and `bpm`; 0 = detect from the soundtrack


@dataclass(frozen=True)
class OutputConfig(Section):
    SECTION = "output"

    fps: float = 24.0                   # for image, noise and frame-folder inputs (video keeps its own)
    size: tuple[int, int] | None = None  # "WxH" in a preset; None = the input's size (NOISE_SIZE for noise)
    crf: int = -1                       # quality for mp4/webm; -1 = the format's default
    seed: int = 0
    loop: bool = False                  # a perfect loop: the last frame carries on into the first (see renderer.loop)
    loop_frames: int = 0                # frames over which the loop closes; 0 = about 1.5 s (at most half the loop)


@dataclass(frozen=True)
class Preset:
    mode: Mode = Mode.FEEDBACK
    description: str = ""
    model: ModelSettings = field(default_factory=ModelSettings)
    dream: DreamConfig = field(default_factory=DreamConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    color: ColorConfig = field(default_factory=ColorConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def schedules(self) -> dict[str, Schedule | TextSchedule]:
        """{"section.key": schedule} for every scheduled setting, the objective included."""
        found = {}
        for section in fields(self):
            table = getattr(self, section.name)
            if isinstance(table, Section):
                found.update({f"{section.name}.{f.name}": getattr(table, f.name)
                              for f in fields(table) if "scheduled" in f.metadata})
        return found

    @property
    def needs_tempo(self) -> bool:
        """Whether a schedule counts beats or reads ``bpm``."""
        return any(s.needs_tempo for s in self.schedules().values())

    @property
    def reads_audio_features(self) -> bool:
        """Whether a schedule reads a feature of the soundtrack (``beat``, ``rms``, ...)."""
        from .audio import FEATURE_NAMES

        return any(s.names & set(FEATURE_NAMES) for s in self.schedules().values() if isinstance(s, Schedule))

    @property
    def needs_soundtrack(self) -> bool:
        """Whether the soundtrack must be analysed: for its features, or for a tempo the preset lacks."""
        return self.reads_audio_features or (self.needs_tempo and not self.audio.bpm)

    def to_dict(self) -> dict[str, Any]:
        """Plain TOML-able dict: enums as their values, schedules as written, sizes as "WxH"."""
        def plain(value: Any) -> Any:
            if isinstance(value, Enum):
                return value.value
            if isinstance(value, (Schedule, TextSchedule)):
                return value.source
            if dataclasses.is_dataclass(value):
                return {f.name: plain(getattr(value, f.name)) for f in fields(value)
                        if getattr(value, f.name) is not None}
            if isinstance(value, tuple):
                return "x".join(str(v) for v in value)
            return value
        return plain(self)

    def digest(self) -> str:
        """A short hash of every setting (resume refuses to continue with different settings)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


#: Inclusive bounds checked on constants here and on every frame's value of a schedule.
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "dream.steps": (0, 1000), "dream.step_size": (0, 1), "dream.octaves": (1, 12),
    "dream.octave_scale": (1.01, 4), "dream.jitter": (0, 4096), "dream.first_steps": (0, 1000),
    "dream.first_octaves": (1, 12), "dream.working_size": (0, 8192), "dream.variety": (0, 4), "motion.zoom": (1e-3, 1e3), "motion.mix": (0, 1),
    "motion.follow": (0, 3600),
    "motion.cadence": (1, 16), "flow.cadence": (1, 16),
    "flow.carry": (0, 1), "flow.refine": (0, 1), "flow.refresh": (0, 100), "flow.catch_up": (1, 100),
    "flow.lookahead": (0, 32),
    "flow.hold": (0, 1), "flow.drift": (0, 1), "output.fps": (0.1, 1000),
    "color.match": (0, 1), "color.brightness": (0, 1), "color.contrast": (0, 0.5), "color.saturation": (0, 1),
    "color.knee": (0, 0.25), "color.detail": (0, 1),
    "output.crf": (-1, 63), "dream.tile": (-1, 65536), "audio.bpm": (0, 1000), "output.seed": (0, 2**63 - 1), "output.loop_frames": (0, 100_000),
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
            raise PresetError(f"preset file not found: {path}", hint="check the path, or use a preset name "
                              f"({', '.join(preset_names())})")
        return path
    for folder in preset_dirs():
        if (folder / f"{name_or_path}.toml").is_file():
            return folder / f"{name_or_path}.toml"
    close = difflib.get_close_matches(name_or_path, preset_names(), n=1)
    raise PresetError(f"unknown preset {name_or_path!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                      hint=f"choose one of: {', '.join(preset_names())} (or give a path to a .toml file)")


# ------------------------------------------------------------------------------------------ loading

def read_preset_file(path: Path) -> dict[str, Any]:
    """The raw tables of one preset file."""
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path}: not a valid TOML preset ({str(exc).splitlines()[0]})",
                          hint="fix the file, or see `dreamvid presets show fractal-zoom` for the format") from exc
    except OSError as exc:
        raise PresetError(f"cannot read preset {path}: {exc.strerror}") from exc


#: One preset name or path, several layered (later over earlier), or None for the defaults.
PresetLayers = str | Path | Sequence[str | Path] | None


def preset_layers(presets: PresetLayers) -> tuple[str, ...]:
    """The layers of ``presets`` as a tuple of names or paths (``"a"`` -> ``("a",)``, None -> ``()``)."""
    if presets is None:
        return ()
    if isinstance(presets, (str, Path)):
        return (str(presets),)
    return tuple(str(p) for p in presets)


def load_preset(presets: PresetLayers, overrides: Sequence[str] = ()) -> Preset:
    """Read a preset, or several layered (``["fractal-zoom", "mymotion.toml"]``: each later one over the
    ones before, key by key, tables merged; ``mode`` and ``description`` too), apply ``--set
    key.path=value`` overrides, validate. None or no layers: all defaults. The result is what a render
    saves beside its output, so the merged settings render again identically from that one file."""
    raw: dict[str, Any] = {}
    for layer in preset_layers(presets):
        raw = merge_tables(raw, read_preset_file(find_preset(layer)))
    for item in overrides:
        apply_override(raw, item)
    return build_preset(raw)


def merge_tables(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` laid over ``base``: tables present in both are merged key by key, any other value of
    ``top`` replaces ``base``'s. Neither argument is changed."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_tables(merged[key], value)
        else:
            merged[key] = dict(value) if isinstance(value, Mapping) else value
    return merged


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
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            where = f" in [{prefix.rstrip('.')}]" if prefix else ""
            raise PresetError(f"unknown key {prefix + key!r}" + (f" (did you mean {prefix + close[0]!r}?)" if close else ""),
                              hint=f"known keys{where}: {', '.join(known)}")
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name in raw:
            values[name] = _value(hints[name], raw[name], prefix + name)
    return cls(**values)


def _value(kind: Any, value: Any, path: str) -> Any:
    if isinstance(kind, type) and issubclass(kind, Section):
        return _build(kind, value, path + ".")
    if isinstance(kind, type) and issubclass(kind, Enum):
        choices = [m.value for m in kind]
        if not isinstance(value, str) or value.lower() not in choices:
            raise PresetError(f"{path}: {value!r} is not allowed", hint=f"choose one of: {', '.join(choices)}")
        return kind(value.lower())
    if kind is TextSchedule:
        return parse_text_schedule(value, path)
    if kind is Schedule:
        schedule = parse_schedule(value, path)
        if schedule.constant is not None:
            check_range(path, schedule.constant)
        elif not schedule.needs_tempo:
            # A value outside the bounds at frame 0 is caught now; the rest when the length is known.
            check_range(path, float(schedule.evaluate(ScheduleContext(n_frames=1, fps=24.0))[0]), 0)
        return schedule
    if kind is bool:
        if not isinstance(value, bool):
            raise PresetError(f"{path}: expected true or false, got {value!r}")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            raise PresetError(f"{path}: expected {'a whole number' if kind is int else 'a number'}, got {value!r}")
        check_range(path, float(value))
        return kind(value)
    if kind == (tuple[int, int] | None):
        return None if value in ("", None) else parse_size(value, path)
    if kind is str:
        if not isinstance(value, str):
            raise PresetError(f"{path}: expected text, got {value!r}")
        if path == "model.name":
            from .models import available_models

            if value not in available_models():
                raise PresetError(f"{path}: unknown model {value!r}", hint=f"choose one of: {', '.join(available_models())}")
        return value
    raise TypeError(f"unhandled setting type {kind} at {path}")  # a bug in the dataclasses above


def parse_size(text: Any, what: str = "--size") -> tuple[int, int]:
    """'640x360' -> (640, 360). Whether the size can be rendered is checked with the input."""
    try:
        width, height = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise PresetError(f"{what}: bad size {text!r}", hint="write WIDTHxHEIGHT, e.g. 640x360") from None
    if width < 1 or height < 1:
        raise PresetError(f"{what}: size {width}x{height} is not positive", hint="write WIDTHxHEIGHT, e.g. 640x360")
    return width, height


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


#: A preview dreams this share of a render's steps (per frame and on the first frame), each step larger
#: by sqrt(steps / preview steps): normalised, jittered steps add up partly like a random walk, so
#: their strength grows about as the square root of their count (measured for the studio on cat-pan:
#: 4 steps so scaled look like 10; the slow test in tests/test_preview.py compares whole renders).
PREVIEW_STEP_SHARE = 0.6


def preview_steps(steps: int) -> tuple[int, float]:
    """A preview's step count for a render's `steps`, and the factor on the step size that keeps the
    dream's strength: (steps', sqrt(steps / steps')). ``(0, 1.0)`` for 0 steps."""
    if steps <= 0:
        return 0, 1.0
    fewer = max(1, round(steps * PREVIEW_STEP_SHARE))
    return fewer, (steps / fewer) ** 0.5


def preview_preset(preset: Preset, rate_share: float = 1.0) -> Preset:
    """The same look, fast: the same objective, working size and octaves (so the same features at
    the same share of the frame), PREVIEW_STEP_SHARE of the steps, each larger so the dream is as
    strong. The preview's frame size and rate are :func:`renderer.plan.preview_source`'s: a feedback
    preview at `rate_share` of the render's frame rate dreams each frame more, since the zoom carries
    each dream further: steps larger by ``rate_share ** -0.25``. Measured with fractal-zoom on
    samples/bunny.mp4, 48 frames, the preview's second half against the render's at the same times:
    x1 gives sharpness -27 % (strength -4 %), x sqrt(2) +27 % (strength -1 %), x 2 ** 0.25 -5 %
    (strength -2 %). A flow preview needs nothing: its dream rides the source, not the zoom.

    A scheduled ``dream.steps`` takes its factor from its value at frame 0."""
    dream = preset.dream
    steps = dream.steps.constant
    if steps is None:
        steps = float(dream.steps.evaluate(ScheduleContext(n_frames=1, fps=preset.output.fps))[0])
    fewer, factor = preview_steps(round(steps))
    if preset.mode is Mode.FEEDBACK:
        factor *= rate_share ** -0.25
    ratio = round(steps) / fewer if fewer else 1.0
    first = max(1, math.ceil(dream.first_steps / ratio)) if dream.first_steps else 0
    preview = dataclasses.replace(
        dream, steps=parse_schedule(fewer if dream.steps.is_constant else _scaled_source(dream.steps, 1 / ratio),
                                    "dream.steps"),
        step_size=parse_schedule(_scaled_source(dream.step_size, factor), "dream.step_size"),
        first_steps=first)
    return dataclasses.replace(preset, dream=preview)


def _scaled_source(schedule: Schedule, factor: float) -> float | str:
    """The text of `schedule` times `factor` (a number for a constant, each keyframe's body otherwise)."""
    if schedule.constant is not None:
        return float(f"{schedule.constant * factor:.6g}")
    if len(schedule.keyframes) == 1 and ":" not in str(schedule.source):
        return f"({schedule.source})*{factor:.6g}"
    keys = ", ".join(f"{k.key.amount:g}{k.key.unit.value}:(({k.body})*{factor:.6g})" for k in schedule.keyframes)
    return f"{schedule.interpolation.value}|{keys}"
