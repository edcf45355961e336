"""The per-frame loop of a render, for each mode, with resumable state.

    decode (+ optical flow, flow mode)  ──prefetch thread──►  init ► dream ► colour ► encode
                                                               ▲
                                     previous dreamed frame ───┘

* feedback: init = transform(previous output) [mixed with the source frame by ``motion.mix``]
* flow:     init = source + carry * mask * warp(previous dream - previous source, flow)
            (the hallucination residual rides the source motion; where the flow is unreliable
            the mask drops it, and ``flow.refresh`` dreams those pixels harder)

The first frame is dreamed fully (``dream.first_steps``/``first_octaves``). Frames are written to
segment files in a work folder beside the output; after every segment the state needed to continue
(last dream, RNG state, next frame, settings digest) is saved, so Ctrl-C or a crash loses nothing and
``resume=True`` continues to the same result as an uninterrupted render.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import queue
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import media
from .audio import AudioFeatures, analyze_audio
from .color import channel_stats, match_color
from .config import Mode, Preset, dump_toml
from .dream import Objective, dream, parse_objective
from .errors import DreamvidError, InputError, PresetError
from .flow import FlowEstimator, FlowMethod, Interpolation, consistency_mask, flow_to_tensor, warp
from .frames import load_frame, noise_frame, to_tensor, to_uint8
from .models import load_backbone
from .motion import transform_frame
from .sources import Source, SourceKind
from .timeline import FrameSettings, Timeline, build_timeline, uses_audio

#: Frames per segment file: the most a crash (not Ctrl-C) can lose.
SEGMENT_FRAMES = 48
STATE_FILE = "state.pt"
AUDIO_RATE = 22050

Progress = Callable[[int, int], None]


class RenderInterrupted(DreamvidError):
    """Ctrl-C during a render: the state is saved and the render can be resumed."""

    exit_code = 130


@dataclass(frozen=True)
class RenderJob:
    """A fully planned render."""

    source: Source
    output: Path
    preset: Preset
    device: torch.device
    overwrite: bool = False
    resume: bool = False

    def digest(self) -> str:
        """Everything that determines the frames: resume refuses to mix two different renders."""
        s = self.source
        plan = [self.preset.digest(), s.kind.value, str(s.path), s.width, s.height, s.fps, s.n_frames, s.start,
                s.end, media.output_format(self.output).name]
        return hashlib.sha256(json.dumps(plan).encode()).hexdigest()[:16]


@dataclass
class LoopState:
    """What frame n+1 needs from frame n (saved at every segment boundary)."""

    next_frame: int = 0
    segments: int = 0
    previous: torch.Tensor | None = None         # last output frame (1,3,H,W)
    reference: tuple[torch.Tensor, torch.Tensor] | None = None  # colour stats when there is no source
    rng: torch.Tensor = field(default_factory=lambda: torch.Generator().get_state())


# ----------------------------------------------------------------------------------------- frame steps

@dataclass
class FrameInput:
    """One decoded source frame and, in flow mode, the flows from the previous source frame."""

    index: int
    image: np.ndarray | None                   # uint8 (H,W,3), None for noise
    flows: tuple[np.ndarray, np.ndarray] | None = None  # (backward, forward) (H,W,2) pixels
    previous_image: np.ndarray | None = None


class FrameDreamer:
    """Turns frame inputs into dreamed frames for one render (model and objectives built once)."""

    def __init__(self, job: RenderJob, timeline: Timeline, model: torch.nn.Module,
                 objectives: dict[str, Objective]) -> None:
        self.job, self.timeline, self.model, self.objectives = job, timeline, model, objectives
        self.device = job.device
        self.mode = job.preset.mode
        # A still image would sit unzoomed on top of the zoom: only moving sources are mixed in.
        self.mixes_source = job.source.kind in (SourceKind.VIDEO, SourceKind.FOLDER)

    def objective(self, weights: list[tuple[str, float]]) -> Objective:
        parts = [w * self.objectives[text] if w != 1.0 else self.objectives[text] for text, w in weights]
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    def __call__(self, item: FrameInput, state: LoopState, generator: torch.Generator) -> torch.Tensor:
        settings = self.timeline.frame(item.index)
        source = None if item.image is None else to_tensor(item.image, self.device)
        if state.previous is None:
            init = source if source is not None else noise_frame(self.job.source.height, self.job.source.width,
                                                                 generator, self.device)
            weight = None
        elif self.mode is Mode.FLOW:
            init, weight = self._flow_init(item, source, state.previous, settings)
        else:
            init, weight = self._feedback_init(source, state.previous, settings), None
        frame = dream(init, self.model, self.objective(settings.objective), settings.dream, generator, weight)
        if state.reference is None and source is None:
            state.reference = channel_stats(frame)
        reference = channel_stats(source) if source is not None else state.reference
        return match_color(frame, reference, settings.color_match)

    def _feedback_init(self, source: torch.Tensor | None, previous: torch.Tensor,
                       settings: FrameSettings) -> torch.Tensor:
        init = transform_frame(previous, settings.motion.per_frame(self.job.source.fps))
        if source is not None and self.mixes_source and settings.mix > 0.0:
            init = torch.lerp(init, source, settings.mix)
        return init

    def _flow_init(self, item: FrameInput, source: torch.Tensor, previous: torch.Tensor,
                   settings: FrameSettings) -> tuple[torch.Tensor, torch.Tensor | None]:
        backward, forward = (flow_to_tensor(f, self.device) for f in item.flows)
        residual = previous - to_tensor(item.previous_image, self.device)
        carried = warp(residual, backward, interpolation=Interpolation.KEYS)
        weight = None
        if self.job.preset.flow.consistency:
            mask = consistency_mask(backward, forward)
            carried = carried * mask
            weight = 1.0 + (settings.refresh - 1.0) * (1.0 - mask)
        return (source + settings.carry * carried).clamp_(0.0, 1.0), weight


# ------------------------------------------------------------------------------------------- inputs

def frame_inputs(source: Source, mode: Mode, method: FlowMethod, first_needed: int) -> Iterator[FrameInput]:
    """Decoded frames (and flows in flow mode) from frame 0; flows only from `first_needed` on."""
    estimator = FlowEstimator(method) if mode is Mode.FLOW else None
    previous = None
    for index, image in enumerate(source.frames()):
        flows = None
        if estimator is not None and previous is not None and index >= first_needed:
            pair = estimator.forward_backward(previous, image)
            flows = (pair.backward, pair.forward)
        yield FrameInput(index, image, flows, previous)
        previous = image


class Prefetch(Iterator):
    """Runs an iterator on a background thread, `depth` items ahead (decoding and optical flow
    overlap with dreaming; OpenCV and ffmpeg release the GIL). Errors surface in the consumer."""

    _END = object()

    def __init__(self, items: Iterator, depth: int = 4) -> None:
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._items = items
        self._thread = threading.Thread(target=self._run, daemon=True, name="dreamvid-prefetch")
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    break
            self._put(self._END)
        except BaseException as exc:  # handed to the consumer
            self._put(exc)
        finally:
            close = getattr(self._items, "close", None)
            if close:
                close()

    def _put(self, item: object) -> bool:
        """Queue `item`, waiting for room; False when the consumer closed the prefetch."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __next__(self):
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# ------------------------------------------------------------------------------------------- render

def analyse_soundtrack(source: Source) -> AudioFeatures | None:
    """Audio features of the render's soundtrack span, aligned to its frames (None without sound)."""
    if source.audio is None:
        warnings.warn("schedules use audio variables but the render has no soundtrack: they read as 0")
        return None
    a = source.audio
    end = None if a.duration is None else a.start + a.duration
    samples = media.read_audio(a.path, AUDIO_RATE, a.start, end)
    return analyze_audio(samples, AUDIO_RATE, source.fps, source.n_frames)


def settings_path(output: Path) -> Path:
    """Where the settings of a render are saved: beside the output, same stem, ``.toml``."""
    return output.with_name(output.name.rstrip("/").rsplit(".", 1)[0] + ".toml") if output.suffix else \
        output.with_name(output.name + ".toml")


def _save_state(work: Path, state: LoopState, digest: str) -> None:
    tmp = work / (STATE_FILE + ".tmp")
    torch.save({"digest": digest, "next_frame": state.next_frame, "segments": state.segments,
                "previous": None if state.previous is None else state.previous.cpu(),
                "reference": None if state.reference is None else tuple(t.cpu() for t in state.reference),
                "rng": state.rng}, tmp)
    os.replace(tmp, work / STATE_FILE)


def _load_state(work: Path, digest: str, device: torch.device, fmt: media.OutputFormat) -> LoopState:
    saved = torch.load(work / STATE_FILE, weights_only=True)
    if saved["digest"] != digest:
        raise PresetError(f"the unfinished render in {work} used different settings or input",
                          hint="run the same command as before with --resume, or pass --overwrite to start over")
    for stale in sorted(work.glob("segment_*"))[saved["segments"]:]:  # written after the last checkpoint
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    to = (lambda t: None if t is None else t.to(device))
    reference = saved["reference"]
    return LoopState(saved["next_frame"], saved["segments"], to(saved["previous"]),
                     None if reference is None else tuple(to(t) for t in reference), saved["rng"])


def _prepare_work_dir(job: RenderJob, digest: str, fmt: media.OutputFormat) -> tuple[Path, LoopState]:
    work = media.partial_dir(job.output)
    if not job.output.parent.is_dir():
        raise InputError(f"output folder {job.output.parent} does not exist", hint="create it or choose another -o")
    if not os.access(job.output.parent, os.W_OK):
        raise InputError(f"cannot write to {job.output.parent}", hint="choose a writable output folder")
    if job.output.exists() and not job.overwrite:
        raise InputError(f"{job.output} exists", hint="pass --overwrite to replace it, or choose another -o")
    if work.exists():
        if job.resume and (work / STATE_FILE).exists():
            return work, _load_state(work, digest, job.device, fmt)
        if not job.overwrite and not job.resume:
            raise InputError(f"an unfinished render of {job.output.name} is in {work}",
                             hint="pass --resume to continue it, or --overwrite to start over")
        shutil.rmtree(work)
    work.mkdir()
    return work, LoopState(rng=torch.Generator().manual_seed(job.preset.output.seed).get_state())


def render(job: RenderJob, progress: Progress | None = None) -> Path:
    """Render `job` to its output file; returns the output path.

    Raises:
        RenderInterrupted: on Ctrl-C, after saving the state (resume with ``resume=True``).
        DreamvidError: bad input, settings, model or encoding problems (one-line messages).
    """
    fmt = media.output_format(job.output)
    source, preset = job.source, job.preset
    if preset.mode is Mode.FLOW and source.kind not in (SourceKind.VIDEO, SourceKind.FOLDER):
        raise InputError(f"flow mode needs a video or a folder of frames, not {source.kind.value} input",
                         hint="use a feedback preset (e.g. fractal-zoom) for images and noise")
    features = analyse_soundtrack(source) if uses_audio(preset) else None
    timeline = build_timeline(preset, source.n_frames, source.fps, features)
    digest = job.digest()
    work, state = _prepare_work_dir(job, digest, fmt)

    model = load_backbone(preset.model.name, preset.model.weights or None, job.device)
    objectives = {text: parse_objective(text, model, lambda path: load_frame(path, job.device))
                  for text in timeline.objective.texts}
    dreamer = FrameDreamer(job, timeline, model, objectives)
    generator = torch.Generator()
    generator.set_state(state.rng)
    crf = preset.output.crf if preset.output.crf >= 0 else None

    inputs = Prefetch(frame_inputs(source, preset.mode, FlowMethod[preset.flow.method.upper()], state.next_frame))
    writer: media.SegmentWriter | None = None
    try:
        for item in inputs:
            if item.index < state.next_frame:
                continue
            if writer is None:
                writer = media.SegmentWriter(media.segment_path(work, state.segments, fmt), source.width,
                                             source.height, source.fps, fmt, crf).__enter__()
            frame = dreamer(item, state, generator)
            writer.write(to_uint8(frame))
            state.previous, state.next_frame, state.rng = frame, item.index + 1, generator.get_state()
            if progress:
                progress(state.next_frame, source.n_frames)
            if writer.frames_written >= SEGMENT_FRAMES:
                writer.__exit__(None, None, None)
                writer, state.segments = None, state.segments + 1
                _save_state(work, state, digest)
    except BaseException as exc:
        _checkpoint(writer, work, state, digest, exc)
        if isinstance(exc, KeyboardInterrupt):
            preview = media.partial_preview(sorted(work.glob("segment_*")), job.output, fmt, source.fps)
            shown = f"; partial video: {preview}" if preview else ""
            raise RenderInterrupted(f"interrupted after {state.next_frame} of {source.n_frames} frames{shown}",
                                    hint="run the same command with --resume to continue") from None
        raise
    finally:
        inputs.close()
    _checkpoint(writer, work, state, digest, None)
    if state.next_frame == 0:
        raise InputError(f"{source.path} gave no frames to render", hint="check the input and --start/--end")
    segments = sorted(work.glob("segment_*"))
    # The sound spans exactly the frames rendered (a video's frame count is only estimated up front).
    audio = source.audio and dataclasses.replace(source.audio, duration=state.next_frame / source.fps)
    result = media.finalize(segments, job.output, fmt, source.fps, audio=audio, overwrite=job.overwrite)
    header = [f"dreamvid settings for {result.name} ({state.next_frame} frames at {source.fps:g} fps, "
              f"{source.width}x{source.height}, input {source.path or 'noise'})", "render again with --preset THIS_FILE"]
    _write_text(settings_path(result), dump_toml(preset, header))
    shutil.rmtree(work, ignore_errors=True)
    media.preview_path(job.output).unlink(missing_ok=True)
    return result


def _checkpoint(writer: media.SegmentWriter | None, work: Path, state: LoopState, digest: str,
                error: BaseException | None) -> None:
    """Close the open segment (it stays playable) and save the state matching the frames written."""
    if writer is not None:
        wrote = writer.frames_written
        writer.__exit__(type(error) if error else None, error, None)
        if wrote:
            state.segments += 1
    _save_state(work, state, digest)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
