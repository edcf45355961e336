"""Plan a render: check everything that can be checked, then hand the loop a complete plan.

:func:`plan_render` turns what the user asked for (:class:`RenderRequest`, from the CLI or any other
front end) into a :class:`RenderPlan`: the typed settings, the probed input, the per-frame timeline
(with the soundtrack analysed when a schedule needs it), the loaded model and parsed objectives, the
output, settings and work-folder paths, and the gradient tile size. It creates nothing on disk: a
typo, a missing file or a full disk is reported before any file exists, so the corrected command
simply runs. :func:`renderer.pipeline.render` then executes the plan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import media
from .audio import AudioFeatures, analyze_audio
from .config import Mode, Preset, find_preset, load_preset, preset_layers, preview_preset
from .devices import pick_device
from .dream import Objective, parse_objective
from .dream.engine import auto_tile
from .errors import InputError
from .frames import load_frame
from .loop import LoopSpec, LoopTimeline, bars_to_frames, loop_spec
from .models import load_backbone
from .sources import NOISE, Source, SourceKind, open_source
from .timeline import Timeline, build_timeline
from .workdir import NEVER_TILE, WorkDir

#: Sample rate of the soundtrack analysis (Hz).
AUDIO_RATE = 22050
#: A preview renders at about this many pixels on the longer side.
PREVIEW_SIDE = 320
#: A preview of a video, an image or noise runs at this share of the render's frame rate (the same
#: seconds, half the frames: schedules and motion are per second, so the zoom travels as far and the
#: soundtrack stays in sync), but not below PREVIEW_MIN_FPS. Half the frames is half the dreaming: the
#: working size fixes a frame's dreaming cost, so a smaller frame saves little on a clip under 640 px.
PREVIEW_FPS_SHARE = 0.5
PREVIEW_MIN_FPS = 12.0
#: Pessimistic bytes per pixel per frame of each output (segments of dreamed detail), for the disk check.
_BYTES_PER_PIXEL = {media.OutputFormat.MP4: 0.3, media.OutputFormat.WEBM: 0.3, media.OutputFormat.MOV: 0.8,
                    media.OutputFormat.GIF: 1.0, media.OutputFormat.PNG_FOLDER: 2.5}


@dataclass(frozen=True)
class RenderRequest:
    """What the user asked for, as given (see ``dreamvid render --help`` for each field)."""

    input: str
    output: str | Path | None = None    # a string ending in "/" is a folder of PNG frames, whatever its name
    preset: str | tuple[str, ...] | None = "fractal-zoom"   # one preset, or layers (later over earlier)
    overrides: tuple[str, ...] = ()
    frames: int | None = None
    seconds: float | None = None
    start: float = 0.0
    end: float | None = None
    size: tuple[int, int] | None = None
    scale: float | None = None
    fps: float | None = None
    audio: Path | None = None
    no_audio: bool = False
    crf: int | None = None
    seed: int | None = None
    bpm: float | None = None
    device: str = "auto"
    preview: bool = False
    resume: bool = False
    overwrite: bool = False
    loop: bool = False                  # a perfect loop (output.loop)
    loop_bars: float | None = None      # loop length in bars of 4 beats at the tempo (implies loop)


@dataclass(frozen=True)
class RenderPlan:
    """A checked render, ready to run: nothing of it has touched the disk yet."""

    source: Source
    preset: Preset
    timeline: Timeline
    model: nn.Module
    objectives: dict[str, Objective]   # objective text -> objective, for every text of the schedule
    device: torch.device
    output: Path
    format: media.OutputFormat
    settings_file: Path                # the settings used, saved beside the output when it is done
    work: WorkDir
    tile: int                          # gradient tile side in px, NEVER_TILE for whole frames
    resume: bool                       # continue the render saved in `work`
    overwrite: bool
    loop: LoopSpec | None = None       # a perfect loop: the timeline goes round it (renderer.loop)

    def digest(self) -> str:
        """Everything that determines the frames: resume refuses to mix two different renders."""
        s = self.source
        plan = [self.preset.digest(), s.kind.value, str(s.path), s.width, s.height, s.fps, s.n_frames, s.start,
                s.end, self.format.name]
        return hashlib.sha256(json.dumps(plan).encode()).hexdigest()[:16]


def plan_render(request: RenderRequest) -> RenderPlan:
    """Check `request` and build its plan. Creates no file or folder.

    Raises:
        DreamvidError: one-line messages for every problem found (input, settings, schedules, model,
            weights, objectives, output and settings paths, an unfinished render, disk space).
    """
    overrides = list(request.overrides)
    overrides += [f"output.crf={request.crf}"] if request.crf is not None else []
    overrides += [f"output.seed={request.seed}"] if request.seed is not None else []
    overrides += [f"audio.bpm={request.bpm}"] if request.bpm is not None else []
    overrides += ["output.loop=true"] if request.loop or request.loop_bars is not None else []
    preset = load_preset(request.preset, overrides)
    named = request.output if request.output is not None else default_output(request.input, request.preview)
    output, fmt = Path(named), media.output_format(named)  # the format from the text: Path drops a trailing "/"
    settings_file = settings_path(output, fmt)
    _check_output_paths(request, output, fmt, settings_file)
    media.ffmpeg_exe()  # a missing or too old ffmpeg is said now, not after the frames are dreamed

    source = open_source(request.input, size=request.size or preset.output.size, scale=request.scale,
                         fps=request.fps, default_fps=preset.output.fps, frames=request.frames,
                         seconds=request.seconds, start=request.start, end=request.end, audio=request.audio,
                         no_audio=request.no_audio, even=fmt.needs_even_size)
    if request.preview:
        small = preview_source(source, fmt.needs_even_size)
        source, preset = small, preview_preset(preset, rate_share=small.fps / source.fps)
    if preset.mode is Mode.FLOW and source.kind not in (SourceKind.VIDEO, SourceKind.FOLDER):
        raise InputError(f"flow mode needs a video or a folder of frames, not {source.kind.value} input",
                         hint="use a feedback preset (e.g. fractal-zoom) for images and noise")
    if preset.output.loop:
        source = _loop_source(request, preset, source, fmt)
    if preset.reads_audio_features and source.audio is None:
        warnings.warn("schedules use audio variables but the render has no soundtrack: they read as 0")
    features = soundtrack_features(source) if preset.needs_soundtrack and source.audio else None
    timeline = build_timeline(preset, source.n_frames, source.fps, features)
    loop = None
    if preset.output.loop:
        loop = loop_spec(source.n_frames, source.fps, preset.output.loop_frames, preset.output.seed)
        timeline = LoopTimeline(**vars(timeline), period=loop.period)

    device = pick_device(request.device)
    model = load_backbone(preset.model.name, preset.model.weights or None, device)
    objectives = {text: parse_objective(text, model, lambda path: load_frame(path, device))
                  for text in preset.dream.objective.texts}
    work = WorkDir(output, fmt)
    resume = _check_work_folder(work, request)
    _check_free_space(output, fmt, source)
    plan = RenderPlan(source, preset, timeline, model, objectives, device, output, fmt, settings_file, work,
                      fixed_tile(preset, model, objectives, source, device), resume, request.overwrite, loop)
    if resume:
        work.check_resumable(plan.digest())
    return plan


# ------------------------------------------------------------------------------------------ naming

def default_output(input: str, preview: bool) -> Path:
    """INPUT.dream.mp4 beside the input (noise.dream.mp4 here for noise); .preview.mp4 for previews."""
    kind = "preview" if preview else "dream"
    if input == NOISE:
        return Path(f"noise.{kind}.mp4")
    path = Path(input)
    return path.with_name(f"{path.stem if path.suffix else path.name}.{kind}.mp4")


def settings_path(output: Path, fmt: media.OutputFormat) -> Path:
    """Where the settings of a render are saved: beside the output, same stem, ``.toml``
    (``out.mp4`` -> ``out.toml``; a frame folder keeps its whole name: ``take_1.5/`` -> ``take_1.5.toml``)."""
    return output.with_name(output.name + ".toml") if fmt.is_folder else output.with_suffix(".toml")


def preview_size(source: Source, even: bool) -> Source:
    """`source` at about PREVIEW_SIDE px on the longer side (the studio's one-frame previews)."""
    factor = min(1.0, PREVIEW_SIDE / max(source.width, source.height))
    width, height = max(16, round(source.width * factor)), max(16, round(source.height * factor))
    width, height = media.even_size(width, height) if even else (width, height)
    return dataclasses.replace(source, width=width, height=height)


def preview_source(source: Source, even: bool) -> Source:
    """The ``--preview`` pass's input: :func:`preview_size`, at PREVIEW_FPS_SHARE of the frame rate (a
    folder of frames keeps its rate: its frames are read one by one)."""
    small = preview_size(source, even)
    if source.kind is SourceKind.FOLDER or source.fps * PREVIEW_FPS_SHARE < PREVIEW_MIN_FPS:
        return small
    return dataclasses.replace(small, fps=source.fps * PREVIEW_FPS_SHARE,
                               n_frames=max(1, math.ceil(source.n_frames * PREVIEW_FPS_SHARE - 1e-9)))


# ------------------------------------------------------------------------------------------ checks

def _check_output_paths(request: RenderRequest, output: Path, fmt: media.OutputFormat, settings_file: Path) -> None:
    """The output can be written, replaces nothing without --overwrite, and is not an input."""
    folder = output.parent
    if folder.exists() and not folder.is_dir():
        raise InputError(f"cannot write {output}: {folder} is a file, not a folder", hint="choose another -o")
    if not folder.is_dir():
        raise InputError(f"output folder {folder} does not exist", hint="create it or choose another -o")
    _check_writable(folder)
    inputs = [Path(request.input)] if request.input != NOISE else []
    inputs += [request.audio] if request.audio else []
    for used in inputs:
        if used.exists() and output.resolve() == used.resolve():
            raise InputError(f"the output {output} is also an input", hint="choose another -o")
    if output.exists() and not request.overwrite:
        if fmt.is_folder and output.is_dir() and not any(output.iterdir()):
            pass  # an empty folder made for the frames replaces nothing
        elif request.resume and WorkDir(output, fmt).finished():
            pass  # this render's own output, renamed into place just before it was interrupted
        else:
            raise InputError(f"{output} exists", hint="pass --overwrite to replace it, or choose another -o")
    presets = [find_preset(layer).resolve() for layer in preset_layers(request.preset)]
    if settings_file.resolve() in presets:
        raise InputError(f"the settings of this render would be saved as {settings_file}, the preset it reads",
                         hint="choose an output with another name, e.g. -o " + str(output.with_stem(output.stem + "-render")))
    if settings_file.exists() and not request.overwrite and not (request.resume and WorkDir(output, fmt).finished()):
        raise InputError(f"{settings_file} exists (the render's settings are saved there)",
                         hint="pass --overwrite to replace it, or choose another -o")


def _check_writable(folder: Path) -> None:
    """Create and delete a probe file: permission bits alone say nothing for root or read-only mounts."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".dreamvid-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write to {folder} ({exc.strerror.lower()})",
                         hint="choose a writable output folder") from None


def _check_work_folder(work: WorkDir, request: RenderRequest) -> bool:
    """Whether to resume the render saved in `work`; refuses to silently discard or mix renders."""
    if not work.has_state():
        return False  # nothing saved (or debris of a start that saved nothing): start fresh
    if request.resume:
        return True
    if not request.overwrite:
        raise InputError(f"an unfinished render of {work.output.name} is in {work.path}",
                         hint="pass --resume to continue it, or --overwrite to start over")
    return False


def _check_free_space(output: Path, fmt: media.OutputFormat, source: Source) -> None:
    """Refuse a render whose segments and final file would not fit on the output's file system."""
    needed = 2 * _BYTES_PER_PIXEL[fmt] * source.width * source.height * source.n_frames  # segments + output
    free = shutil.disk_usage(output.parent).free
    if needed > free:
        raise InputError(f"not enough free space for {output}: the render needs about {_size(needed)}, "
                         f"{_size(free)} are free", hint="free some space, render fewer frames, or choose another -o")


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


# --------------------------------------------------------------------------------------- resolving

def _loop_source(request: RenderRequest, preset: Preset, source: Source, fmt: media.OutputFormat) -> Source:
    """The source of a loop, whose length must be known before the first frame: `--loop-bars` bars at
    the tempo (``audio.bpm``/``--bpm``, else the soundtrack's), or the frames asked for, or the video's."""
    if request.loop_bars is not None:
        if not request.loop_bars > 0:
            raise InputError(f"--loop-bars must be positive, got {request.loop_bars:g}")
        if request.frames is not None or request.seconds is not None:
            raise InputError("--loop-bars sets the length: it cannot be combined with --frames or --seconds")
        bpm = preset.audio.bpm or _detected_bpm(source)
        frames = bars_to_frames(request.loop_bars, bpm, source.fps)
        looped = open_source(request.input, size=request.size or preset.output.size, scale=request.scale,
                             fps=request.fps, default_fps=preset.output.fps, frames=frames, start=request.start,
                             end=request.end, audio=request.audio,
                             no_audio=request.no_audio, even=fmt.needs_even_size)
        looped = dataclasses.replace(looped, width=source.width, height=source.height)  # as --preview sized it
        if looped.n_frames < frames:
            raise InputError(f"{request.loop_bars:g} bars at {bpm:.1f} bpm are {frames} frames, but the input has "
                             f"only {looped.n_frames} from --start", hint="use fewer --loop-bars or an earlier --start")
        return looped
    unsized = source.kind in (SourceKind.IMAGE, SourceKind.NOISE) and request.audio is None
    if unsized and request.frames is None and request.seconds is None:
        raise InputError(f"a loop of {source.kind.value} input needs its length up front",
                         hint="pass --frames, --seconds or --loop-bars")
    return source


def _detected_bpm(source: Source) -> float:
    """The tempo of the render's soundtrack span, for ``--loop-bars``."""
    if source.audio is None:
        raise InputError("--loop-bars needs a tempo and the render has no soundtrack",
                         hint="pass --bpm, or a soundtrack with --audio")
    a = source.audio
    end = None if a.duration is None else a.start + a.duration
    bpm = analyze_audio(media.read_audio(a.path, AUDIO_RATE, a.start, end), AUDIO_RATE, source.fps, source.n_frames).bpm
    if bpm is None:
        raise InputError(f"no tempo found in the soundtrack {a.path}", hint="pass --bpm")
    return bpm


def soundtrack_features(source: Source) -> AudioFeatures | None:
    """Audio features of the render's soundtrack span, one row per frame (None without sound)."""
    if source.audio is None:
        return None
    a = source.audio
    end = None if a.duration is None else a.start + a.duration
    samples = media.read_audio(a.path, AUDIO_RATE, a.start, end)
    return analyze_audio(samples, AUDIO_RATE, source.fps, source.n_frames)


def fixed_tile(preset: Preset, model: nn.Module, objectives: dict[str, Objective], source: Source,
               device: torch.device) -> int:
    """The tile side for the whole render, fixed now so that a resumed render tiles like the original
    (automatic tiling follows free memory, which changes between runs)."""
    tile = preset.dream.tile
    if tile != 0:
        return tile if tile > 0 else NEVER_TILE
    layers = frozenset().union(*(o.layers for o in objectives.values()))
    side = auto_tile(model, layers, source.height, source.width, device)
    return NEVER_TILE if side is None else side
