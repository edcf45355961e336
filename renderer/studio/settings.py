"""The studio's settings model: the CLI's presets and ``--set`` overrides, seen as page controls.

The page holds a flat ``{"section.key": value}`` map of every setting. What the studio renders is a
preset name plus the overrides where that map differs from the preset (:func:`overrides`), loaded by
:func:`renderer.config.load_preset` exactly as ``dreamvid render --preset P --set k=v`` would, so the
command the page shows (:func:`render_command`) reproduces the render. :func:`schema` describes each
control (kind, choices, bounds, a comfortable slider range); :func:`check` reports every problem at
the key it belongs to.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import fields
from enum import Enum
from typing import Any, get_type_hints

import tomli_w

from ..config import BOUNDS, Preset, Section, apply_override, load_preset
from ..errors import DreamvidError
from ..models import available_models
from ..plan import RenderRequest
from ..schedule import Schedule, TextSchedule

#: Slider ranges (min, max, step) for numeric settings; the accepted bounds are config.BOUNDS.
SLIDERS: dict[str, tuple[float, float, float]] = {
    "dream.steps": (0, 20, 1), "dream.step_size": (0, 0.03, 0.0005), "dream.octaves": (1, 6, 1),
    "dream.octave_scale": (1.1, 2.0, 0.05), "dream.jitter": (0, 64, 1), "dream.first_steps": (0, 40, 1),
    "dream.first_octaves": (1, 8, 1), "dream.variety": (0, 4, 0.05), "motion.zoom": (0.5, 3.0, 0.01), "motion.angle": (-90, 90, 1),
    "motion.translate_x": (-0.5, 0.5, 0.01), "motion.translate_y": (-0.5, 0.5, 0.01),
    "motion.center_x": (0, 1, 0.01), "motion.center_y": (0, 1, 0.01), "motion.mix": (0, 1, 0.01),
    "motion.follow": (0, 5, 0.05),
    "flow.carry": (0, 1, 0.01), "flow.refine": (0, 1, 0.01), "flow.refresh": (0, 5, 0.1),
    "flow.catch_up": (1, 12, 1), "flow.hold": (0, 0.2, 0.01), "flow.drift": (0, 0.3, 0.01),
    "flow.lookahead": (0, 12, 1),
    "color.match": (0, 1, 0.01), "color.detail": (0, 1, 0.01), "audio.bpm": (0, 240, 1), "output.fps": (1, 60, 1), "output.crf": (-1, 51, 1),
}

#: One line of help per setting, shown beside its control.
HELP: dict[str, str] = {
    "mode": "feedback zooms into its own output; flow carries the dream along a video's motion",
    "model.name": "the network that dreams", "model.weights": "a weight file (empty: the packaged one)",
    "dream.objective": "what to amplify: a layer, layer:channel, class:NAME, blends",
    "dream.steps": "gradient steps per octave, each frame", "dream.step_size": "change per pixel per step",
    "dream.octaves": "scales dreamed, coarse to fine", "dream.octave_scale": "size ratio between octaves",
    "dream.jitter": "random shift per step, px", "dream.tile": "tile side px (0 auto, -1 never)",
    "dream.precision": "network arithmetic", "dream.first_steps": "steps on the first frame",
    "dream.first_octaves": "octaves on the first frame",
    "dream.variety": "hold the early mix of features (0: off)", "motion.zoom": "scale per second (>1 zooms in)",
    "motion.angle": "degrees per second, counter-clockwise", "motion.translate_x": "frame widths per second",
    "motion.translate_y": "frame heights per second", "motion.center_x": "zoom centre, share of width",
    "motion.center_y": "zoom centre, share of height", "motion.mix": "share of the current source frame in each frame",
    "motion.follow": "seconds until the layout follows the video (0: off)",
    "flow.method": "optical flow estimator", "flow.carry": "share of the dream carried to the next frame",
    "flow.consistency": "drop the carry where the source changed",
    "flow.cuts": "dream each new shot afresh at a cut (and after a dissolve)",
    "flow.drift": "most a picture may change under its dream before it is re-dreamed (0: off)", "flow.refine": "dream where the carry holds",
    "flow.refresh": "dream where the carry was dropped",
    "flow.catch_up": "keyframes a dropped region is dreamed harder",
    "flow.hold": "most the dream is amplified a keyframe to hold its strength",
    "flow.lookahead": "frames a caught-up dream is carried back to where it was still growing (0: off)",
    "color.match": "pull colours toward the source",
    "color.detail": "hold the early frames' sharpness",
    "audio.bpm": "tempo for beat keys (0: detect)", "output.fps": "frame rate for images and noise",
    "output.size": "WxH (empty: the input's)", "output.crf": "quality, lower is better (-1 default)",
    "output.seed": "random seed",
}


def flatten(preset: Preset) -> dict[str, Any]:
    """Every setting of `preset` as ``{"section.key": value}`` (schedules as written, size as "WxH")."""
    flat: dict[str, Any] = {}
    for name, value in preset.to_dict().items():
        if isinstance(value, dict):
            flat.update({f"{name}.{key}": inner for key, inner in value.items()})
        else:
            flat[name] = value
    flat.setdefault("output.size", "")
    return flat


def schema() -> list[dict[str, Any]]:
    """The controls, grouped by section: ``[{"section", "fields": [{"key", "kind", ...}]}]``.

    Kinds: ``schedule`` (a number that may become a schedule), ``objective``, ``choice``, ``bool``,
    ``int``, ``float``, ``text``, ``size``.
    """
    groups: list[dict[str, Any]] = [{"section": "general", "fields": [
        {"key": "mode", "kind": "choice", "choices": ["feedback", "flow"], "help": HELP["mode"]},
        {"key": "description", "kind": "text", "help": "what the preset is for"}]}]
    hints = get_type_hints(Preset)
    for section in fields(Preset):
        cls = hints[section.name]
        if not (isinstance(cls, type) and issubclass(cls, Section)):
            continue
        group = [_control(f"{section.name}.{f.name}", kind, "scheduled" in f.metadata)
                 for f, kind in ((f, get_type_hints(cls)[f.name]) for f in fields(cls))]
        groups.append({"section": section.name, "fields": group})
    return groups


def _control(key: str, kind: Any, scheduled: bool) -> dict[str, Any]:
    control: dict[str, Any] = {"key": key, "help": HELP.get(key, "")}
    lo, hi = BOUNDS.get(key, (None, None))
    control.update(min=lo, max=hi)
    if key in SLIDERS:
        control["slider"] = SLIDERS[key]
    if kind is TextSchedule:
        control["kind"] = "objective"
    elif kind is Schedule or scheduled:
        control["kind"] = "schedule"
    elif isinstance(kind, type) and issubclass(kind, Enum):
        control.update(kind="choice", choices=[m.value for m in kind])
    elif key == "model.name":
        control.update(kind="choice", choices=list(available_models()))
    elif kind is bool:
        control["kind"] = "bool"
    elif kind in (int, float):
        control["kind"] = kind.__name__
    elif key == "output.size":
        control["kind"] = "size"
    else:
        control["kind"] = "text"
    return control


# ------------------------------------------------------------------------------------- overrides

def override_text(key: str, value: Any) -> str:
    """``key=value`` as ``--set`` reads it back to exactly `value`: bare when that round-trips
    (``dream.steps=6``, ``dream.objective=mixed5a``), else as a TOML string."""
    bare = value if isinstance(value, str) else _toml_value(value)
    for text in (bare, _toml_value(value)):
        parsed: dict[str, Any] = {}
        try:
            apply_override(parsed, f"{key}={text}")
        except DreamvidError:
            continue
        leaf: Any = parsed
        for part in key.split("."):
            leaf = leaf[part]
        if leaf == value and type(leaf) is type(value) and text.strip() == text:
            return f"{key}={text}"
    return f"{key}={_toml_value(value)}"


def _toml_value(value: Any) -> str:
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def overrides(base: Preset, values: dict[str, Any]) -> list[str]:
    """The ``--set`` overrides that turn `base` into the page's `values` (only keys that differ).
    Unknown keys are kept, so that loading them reports them."""
    current = flatten(base)
    found = []
    for key, value in values.items():
        if key == "output.size" and value in ("", None) and current.get(key) in ("", None):
            continue
        if not _same(current.get(key), value):
            found.append(override_text(key, value))
    return found


def _same(a: Any, b: Any) -> bool:
    """Equal settings: 0 and 0.0 are (JSON has one kind of number), 1 and True or 1 and "1" are not."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return a == b if numbers else a == b and type(a) is type(b)


@dataclasses.dataclass(frozen=True)
class Checked:
    """The page's settings checked: the preset (None when something is wrong), the overrides, and
    the problems by key (``""`` for problems that belong to no one key)."""

    preset: Preset | None
    overrides: list[str]
    errors: dict[str, str]


def check(preset_name: str | None, values: dict[str, Any]) -> Checked:
    """Load `preset_name` with the overrides the page's `values` make, the way the CLI does; every
    problem is reported at its key (each override is tried alone to find whose it is)."""
    try:
        base = load_preset(preset_name)
    except DreamvidError as exc:
        return Checked(None, [], {"": str(exc)})
    items = overrides(base, values)
    errors: dict[str, str] = {}
    for item in items:
        try:
            load_preset(preset_name, [item])
        except DreamvidError as exc:
            errors[item.partition("=")[0]] = str(exc)
    if errors:
        return Checked(None, items, errors)
    try:
        return Checked(load_preset(preset_name, items), items, {})
    except DreamvidError as exc:
        return Checked(None, items, {key_of(str(exc), values): str(exc)})


def key_of(message: str, values: dict[str, Any]) -> str:
    """The setting an error message starts with (``motion.zoom: ...``), else ``""``."""
    head = message.partition(":")[0].strip().strip("'\"")
    return head if head in values else ""


# --------------------------------------------------------------------------------------- command

def render_command(request: RenderRequest) -> str:
    """The ``dreamvid render ...`` command (run in the workspace) that makes the same render."""
    args = ["dreamvid", "render", request.input]
    if request.preset:
        args += ["--preset", request.preset]
    for item in request.overrides:
        args += ["--set", item]
    options: list[tuple[str, Any]] = [("--frames", request.frames), ("--seconds", request.seconds),
                                      ("--audio", request.audio), ("-o", request.output)]
    args += [part for flag, value in options if value is not None for part in (flag, str(value))]
    args += ["--preview"] if request.preview else []
    args += ["--resume"] if request.resume else []
    args += ["--overwrite"] if request.overwrite else []
    return shlex.join(args)

