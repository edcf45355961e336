"""Bring your settings: Deforum settings files and Parseq exports turned into dreamvid presets.

:func:`read_settings` reads a JSON file, tells the format by its content (a Parseq export has
``rendered_frames``; a Deforum settings file has ``animation_mode`` / ``max_frames`` and the motion
schedules) and returns an :class:`Imported`: the preset's tables (only the keys the file sets, so it
layers over a look: ``--preset fractal-zoom --preset imported.toml``), a comment for each carried
key saying how it was converted, and every key of the file that has no dreamvid equivalent, with the
reason. :func:`write_preset` writes it as TOML, checked by loading it back with
:func:`renderer.config.load_preset` (and evaluating every schedule over the imported length) before it
is renamed into place, so an import never leaves an unloadable preset behind.

Units (see :mod:`renderer.importers.units`): Deforum and Parseq describe motion per frame (zoom factor,
degrees, pixels); dreamvid per second (factor, degrees, frame widths / heights), so values are
converted at the file's frame rate and picture size, and the keyframe timing is kept in frames.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DreamvidError, InputError

#: Comment lines in the written TOML are wrapped at this width.
_WIDTH = 100


@dataclass
class Imported:
    """A preset made from another tool's settings.

    Attributes:
        kind: what was read, e.g. ``"Deforum settings"`` or ``"Parseq export"``.
        raw: the preset's tables as plain TOML values (``{"motion": {"zoom": "0:(1.3), 30:(2)"}}``).
        notes: comment lines for each carried key, by ``"section.key"`` (units, conversions).
        unmapped: foreign key -> why dreamvid has no equivalent; every key the file holds that was
            not carried is here.
        header: general comment lines (where the file came from, units).
        command: the dreamvid command that renders like the other tool did, ``{preset}`` standing for
            the preset's path.
        n_frames: the length of the animation in frames (for checking schedules over it).
        fps: the animation's frame rate.
    """

    kind: str
    raw: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    unmapped: dict[str, str] = field(default_factory=dict)
    header: list[str] = field(default_factory=list)
    command: str = "dreamvid render noise --preset {preset}"
    n_frames: int = 1
    fps: float = 24.0

    def set(self, path: str, value: Any, *notes: str) -> None:
        """Carry ``value`` to the preset key ``path`` (``"section.key"`` or a top-level key), with notes."""
        section, _, key = path.rpartition(".")
        (self.raw.setdefault(section, {}) if section else self.raw)[key] = value
        self.notes.setdefault(path, []).extend(notes)

    def skip(self, key: str, reason: str) -> None:
        """Record a foreign key that is not carried."""
        self.unmapped[key] = reason

    def unmapped_by_reason(self) -> dict[str, list[str]]:
        """{reason: [keys]} in the order the reasons first appear."""
        grouped: dict[str, list[str]] = {}
        for key, reason in self.unmapped.items():
            grouped.setdefault(reason, []).append(key)
        return grouped

    def render_command(self, preset: Path) -> str:
        """The command that renders like the other tool did, with this preset."""
        return self.command.replace("{preset}", str(preset))


def read_settings(path: Path, *, size: tuple[int, int] | None = None, deltas: bool = True) -> Imported:
    """Read a Deforum settings file or a Parseq export (told apart by content).

    Args:
        path: the JSON file (Deforum saves ``*_settings.txt``; Parseq exports ``*.json``).
        size: picture size ``(width, height)`` in pixels that translations are measured against; a
            Deforum file's own ``W``/``H`` by default, Deforum's default 512x512 for Parseq (which does
            not know the size).
        deltas: for Parseq, read motion from the per-frame ``*_delta`` fields, as Deforum does by
            default (``parseq_use_deltas``); False reads the plain fields as per-frame motion.

    Raises:
        InputError: the file cannot be read, is not JSON, is neither format, or holds a value of the
            wrong type (one line naming the key).
    """
    from . import deforum, parseq

    data = _load_json(path)
    if parseq.looks_like(data):
        return parseq.convert(data, path.name, size=size, deltas=deltas)
    if deforum.looks_like(data):
        return deforum.convert(data, path.name, size=size)
    raise InputError(f"{path}: neither a Deforum settings file nor a Parseq export",
                     hint="give the settings .txt Deforum saves beside its frames, or Parseq's exported JSON "
                          "(with rendered_frames)")


def _load_json(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"settings file not found: {path}", hint="check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a settings file", hint="give the settings .txt or .json file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file", hint="give the settings .txt Deforum saves, or Parseq's JSON") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
                         hint="Deforum settings files and Parseq exports are JSON") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object of settings, got a {type(data).__name__}",
                         hint="give the settings .txt Deforum saves, or Parseq's exported JSON") from None
    return data


# ----------------------------------------------------------------------------------------- reading values

def number(data: Mapping[str, Any], key: str, default: float | None = None, *, whole: bool = False) -> float:
    """A numeric setting (numbers written as strings, like Deforum's ``"2"`` cadence, are accepted).

    Raises:
        InputError: missing without a default, or not a number.
    """
    if key not in data or data[key] is None:
        if default is None:
            raise InputError(f"{key}: missing", hint="the file is incomplete; export it again")
        return default
    value = data[key]
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise InputError(f"{key}: expected a number, got {value!r}")
    if whole and value != int(value):
        raise InputError(f"{key}: expected a whole number, got {value!r}")
    return float(value)


def text(data: Mapping[str, Any], key: str, default: str) -> str:
    """A text setting. Raises InputError when it is not text."""
    value = data.get(key, default)
    if not isinstance(value, str):
        raise InputError(f"{key}: expected text, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------- writing

def to_toml(imported: Imported, preset: Path) -> str:
    """The preset as TOML (to be saved as ``preset``): the header, the command that renders it and every
    key not carried as comments on top, then each carried key with its conversion notes above it."""
    import tomli_w

    header = [*imported.header, f"Render it: {imported.render_command(preset)}"]
    lines = [f"# {line}" for line in header]
    grouped = imported.unmapped_by_reason()
    if grouped:
        lines += ["#", f"# Not carried ({len(imported.unmapped)} keys with no dreamvid equivalent):"]
        for reason, keys in grouped.items():
            lines += _wrap(f"- {reason}: {', '.join(keys)}", "#   ")
    top = {k: v for k, v in imported.raw.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in imported.raw.items() if isinstance(v, dict)}
    lines.append("")
    for key, value in top.items():
        lines += _key_lines(key, {key: value}, imported.notes.get(key, []), tomli_w.dumps)
    for section, table in tables.items():
        lines += ["", f"[{section}]"]
        for key, value in table.items():
            lines += _key_lines(key, {key: value}, imported.notes.get(f"{section}.{key}", []), tomli_w.dumps)
    return "\n".join(lines) + "\n"


def _key_lines(key: str, value: dict[str, Any], notes: list[str], dumps: Callable[[dict[str, Any]], str]) -> list[str]:
    lines = [line for note in notes for line in _wrap(note, "# ")]
    return lines + dumps(value).strip().splitlines()


def _wrap(line: str, prefix: str) -> list[str]:
    return textwrap.wrap(line, _WIDTH, initial_indent=prefix, subsequent_indent=prefix + "  ",
                         break_on_hyphens=False, break_long_words=False) or [prefix.rstrip()]


def write_preset(imported: Imported, output: Path, overwrite: bool = False) -> Path:
    """Write ``imported`` to ``output`` (TOML), refusing to replace a file without ``overwrite``.

    The file is written under a temporary name, loaded back with :func:`renderer.config.load_preset` and
    its schedules evaluated over the imported length at the imported frame rate; only then is it renamed
    onto ``output``. Returns ``output``.

    Raises:
        InputError: ``output`` exists (without ``overwrite``), its folder is missing, or the converted
            settings do not load (one line naming the key).
    """
    from ..config import load_preset
    from ..media import atomic_path
    from ..timeline import build_timeline

    if output.suffix != ".toml":
        raise InputError(f"{output}: a preset must end in .toml", hint=f"use -o {output.with_suffix('.toml')}")
    if output.exists() and not overwrite:
        raise InputError(f"{output} exists", hint="pass --overwrite to replace it, or choose another -o")
    if not output.parent.is_dir():
        raise InputError(f"output folder {output.parent} does not exist", hint="create it or choose another -o")
    with atomic_path(output) as tmp:
        tmp.write_text(to_toml(imported, output), encoding="utf-8")
        try:
            preset = load_preset(str(tmp))
            if not preset.needs_tempo:
                build_timeline(preset, imported.n_frames, imported.fps)
        except DreamvidError as exc:
            raise InputError(f"the converted settings do not load: {exc.message}",
                             hint="the file's values convert to more than dreamvid renders; change them (for Parseq, "
                                  "check --deltas)") from None
    return output


# ------------------------------------------------------------------------------------------ not carried

# Why a foreign key has no dreamvid equivalent, by key pattern (Deforum and Parseq names), first match.
_REASONS: list[tuple[str, str]] = [
    ("Stable Diffusion prompts, sampler and model (DeepDream has none: choose dream.objective)",
     r"(positive_|negative_|animation_)?prompts?(_\w+)?|deforum_prompt|prompt_weight_\d+|sampler(_schedule)?|"
     r"enable_\w+_scheduling|steps(_schedule)?|scale|cfg_scale_schedule|checkpoint_schedule|clipskip(_schedule)?|"
     r"sd_model_\w+|pix2pix_img_cfg_scale(_schedule)?|(ddim|ancestral)_eta(_schedule)?|tiling|restore_faces|"
     r"n_batch|n_samples|precision|[Cf]|dynamic_threshold|static_threshold|\w*prompt_weights?|log_weighted_subprompts"),
    ("diffusion noise and per-frame seeds (dreamvid draws all frames from one seeded stream: output.seed)",
     r"noise(_schedule|_type|_multiplier(_schedule)?|_mask_schedule)?|use_noise_mask|perlin_\w+|"
     r"seed_(schedule|behavior|iter_N|resize_from_[wh]|enable_extras)|subseed(_\w+)?"),
    ("3D camera, depth and perspective (dreamvid's motion is 2D)",
     r"translation_z|rotation_3d_[xyz]|enable_perspective_flip|perspective_flip_\w+|(fov|near|far)(_schedule)?|"
     r"aspect_ratio_\w+|use_depth_warping|depth_algorithm|midas_weight|padding_mode|sampling_mode|save_depth_maps|"
     r"use_zoe_depth"),
    ("hybrid video compositing (dreamvid's flow mode follows a video instead)", r"hybrid_\w+"),
    ("init image and masks", r"use_init|strength|strength_0_no_init|init_image(_box)?|use_mask|use_alpha_as_mask|"
                             r"mask_\w+|invert_mask|overlay_mask|fill|full_res_mask\w*|use_mask_video|video_mask_path"),
    ("anti-blur and contrast per frame (dreamvid holds sharpness with a controller instead: color.detail)",
     r"(amount|kernel|sigma|threshold)_schedule|antiblur_\w+|contrast(_schedule)?"),
    ("Deforum's optical-flow cadence and redo (dreamvid's flow mode has its own)",
     r"optical_flow_\w+|(cadence|redo)_flow_factor(_schedule)?|diffusion_redo"),
    ("ControlNet and guided images", r"cn_\d+_\w+|controlnet_\w+|use_looper|init_images|image_strength_schedule|"
                                     r"blendFactor\w+|tweening_frames_schedule|color_correction_factor|guided_\w+"),
    ("video frame range (pass --start/--end in seconds, --fps)", r"extract_\w+"),
    ("edges: dreamvid reflects the picture at its edges (Deforum replicates or wraps them)", r"border"),
    ("colour coherence details (dreamvid's color.match holds colours every frame, in colour)",
     r"color_coherence_\w+|color_force_grayscale|legacy_colormatch"),
    ("files, encoding, upscaling, interpolation and resuming (dreamvid's command line decides)",
     r"batch_name|outdir|save_\w+|display_samples|show_sample_per_step|filename_format|skip_video_\w+|make_gif|"
     r"delete_(imgs|input_frames)|image_path|mp4_path|add_soundtrack|soundtrack_path|r_upscale_\w+|"
     r"store_frames_in_ram|frame_interpolation_\w+|ffmpeg_\w+|render_steps|path_name_modifier|max_video_frames|"
     r"timestring|resume_\w+|overwrite_extracted_frames|video_init_path|reroll_\w+|motion_preview_mode|"
     r"deforum_git_commit_id|parseq_\w+"),
]


def reason_for(key: str) -> str:
    """Why the Deforum or Parseq setting ``key`` has no dreamvid equivalent."""
    import re

    for reason, pattern in _REASONS:
        if re.fullmatch(pattern, key):
            return reason
    return "no dreamvid equivalent"
