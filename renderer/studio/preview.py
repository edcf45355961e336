"""Live preview: one frame of the input, dreamed with the page's settings, in about a second.

The network is loaded once per server (per model) and kept; decoded frames, probed inputs and
analysed soundtracks are cached. A preview dreams frame ``k`` of the input the way a render dreams
its first frame, with the settings the ``--preview`` pass (:func:`renderer.config.preview_preset`)
gives frame ``k`` (objective, step size, colour match, ...), at the ``--preview`` size
(:func:`renderer.plan.preview_size`): the same look as the render, fast.

Previews run one at a time on a worker thread. Every new request makes older ones stale: a stale
preview stops at its next gradient step (:class:`PreviewCancelled`), so the newest change is what
the CPU works on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..audio import AudioFeatures
from ..color import channel_stats, match_color
from ..config import Preset, preview_preset
from ..devices import pick_device
from ..dream import DreamSettings, Objective, dream, parse_objective
from ..dream.engine import Precision, cpu_has_amx
from ..frames import load_frame, noise_frame, to_tensor, to_uint8
from ..models import load_backbone
from ..plan import preview_size, soundtrack_features
from ..sources import NOISE, Source, open_source
from ..timeline import Timeline, build_timeline
from .workspace import Workspace

#: Threads a preview gives torch on the CPU while a render runs: half the cores. torch's OpenMP
#: threads spin when the cores are oversubscribed: measured with benchmarks/studio_preview.py on this
#: project's 2-core machine under a load of 5-6, 0.9-1.6 s per preview with 1 thread, 3.5-42 s with 2.
PREVIEW_THREADS = max(1, (os.cpu_count() or 2) // 2)
#: ... and while no render runs: every core (2-core machine, fractal-zoom at its 360 px working size,
#: mixed4c: 3.1 s with 1 thread, 2.1 s with 2; see benchmarks/README.md).
IDLE_THREADS = os.cpu_count() or 1
#: Gradient steps per octave of a live preview (the --preview pass's first frame takes 5 to 8): what
#: keeps it near a second at the 360 px working size on 2 cores. Fewer, larger steps keep the look:
#: the cat photo at 640x360, 10 steps against 3 (step size x sqrt(10/3)): strength 0.0315 / 0.0288
#: (mixed4c), 0.0566 / 0.0557 (deep-objects), sharpness +7 % and +12 %, 4.0 s against 1.0 s.
LIVE_STEPS = 3
#: JPEG quality of preview images.
JPEG_QUALITY = 88


def preview_dream_settings(preview: Preset, frame: DreamSettings) -> DreamSettings:
    """How a live preview dreams frame settings `frame` of the ``--preview`` preset `preview`
    (:func:`renderer.config.preview_preset`, whose step sizes already make up for its fewer steps):
    like that pass's first frame, on ``dream.first_octaves`` octaves at the preset's working size, so
    the features have the size the render gives them, in at most LIVE_STEPS steps per octave, each
    larger by the same square-root rule, so they have its strength too."""
    first = preview.dream.first_steps
    steps = min(first, LIVE_STEPS)
    factor = (first / steps) ** 0.5 if steps else 1.0
    return dataclasses.replace(frame, steps=steps, octaves=preview.dream.first_octaves,
                               step_size=frame.step_size * factor)


def live_precision(precision: Precision, device: torch.device) -> Precision:
    """bf16 for ``auto`` on a CPU with AMX tiles: a live preview is one frame, shown for its look, where
    bf16's 1.4x counts and its gradient noise (which makes a video flicker more) does not."""
    cpu_bf16 = device.type == "cpu" and cpu_has_amx()
    return Precision.BF16 if precision is Precision.AUTO and cpu_bf16 else precision


class PreviewCancelled(Exception):
    """A newer preview was asked for: this one stopped between two gradient steps."""


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What a preview or a plot reads: the input and soundtrack (workspace-relative, or ``noise``),
    and the frame count asked for (None: the input's own length)."""

    input: str
    audio: str | None = None
    frames: int | None = None


class _Cache:
    """A small least-recently-used cache; `get` computes missing values under a lock."""

    def __init__(self, size: int) -> None:
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


def encode_jpeg(frame: np.ndarray) -> bytes:
    """uint8 (H,W,3) RGB -> JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


class Previewer:
    """Dreams preview frames for one workspace; holds the loaded networks."""

    def __init__(self, workspace: Workspace, device: str = "auto", rendering: Callable[[], bool] = lambda: False) -> None:
        """`rendering` says whether a render is running beside the previews (they then take half the cores)."""
        self.workspace = workspace
        self.rendering = rendering
        self.device = pick_device(device)
        self._models = _Cache(2)
        self._objectives = _Cache(32)
        self._sources = _Cache(16)
        self._frames = _Cache(64)
        self._features = _Cache(4)
        self._generation = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dreamvid-preview")

    def close(self) -> None:
        """Cancel running previews and stop the worker thread."""
        self._bump()
        self._executor.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------------------------- inputs

    def _path(self, relative: str | None) -> Path | None:
        return None if relative in (None, "", NOISE) else self.workspace.resolve(relative)

    def source(self, spec: InputSpec, preset: Preset) -> Source:
        """The input as a render of `preset` would open it (probed once per file version)."""
        path, audio = self._path(spec.input), self._path(spec.audio)
        key = (spec.input, _stamp(path), spec.audio, _stamp(audio), spec.frames, preset.output.size, preset.output.fps)
        return self._sources.get(key, lambda: open_source(
            NOISE if path is None else str(path), size=preset.output.size, default_fps=preset.output.fps,
            frames=spec.frames, audio=audio))

    def features(self, source: Source) -> AudioFeatures | None:
        """The soundtrack's per-frame features (analysed once per soundtrack and length)."""
        if source.audio is None:
            return None
        a = source.audio
        key = (str(a.path), _stamp(a.path), a.start, a.duration, source.fps, source.n_frames)
        return self._features.get(key, lambda: soundtrack_features(source))

    def timeline(self, spec: InputSpec, preset: Preset) -> tuple[Source, Timeline, AudioFeatures | None]:
        """The input, the timeline of `preset` over it, and the soundtrack's features (or None)."""
        source = self.source(spec, preset)
        features = self.features(source) if preset.needs_soundtrack or source.audio else None
        return source, build_timeline(preset, source.n_frames, source.fps, features), features

    def frame(self, source: Source, index: int) -> np.ndarray | None:
        """Frame `index` of `source` at its size (None for noise); decoded frames are cached."""
        index = min(max(index, 0), source.n_frames - 1)
        key = (source.kind, str(source.path), _stamp(source.path), source.width, source.height, source.fps,
               source.start, index)

        def decode() -> np.ndarray | None:
            frames = source.frames(index)
            try:
                return next(frames, None)
            finally:
                frames.close()
        return self._frames.get(key, decode)

    def model(self, preset: Preset) -> nn.Module:
        """The preset's network, loaded once."""
        key = (preset.model.name, preset.model.weights)
        return self._models.get(key, lambda: load_backbone(preset.model.name, preset.model.weights or None,
                                                           self.device))

    def objective(self, model: nn.Module, weights: list[tuple[str, float]]) -> Objective:
        """The cross-faded objective of one frame, its texts parsed once per model."""
        parts = []
        for text, weight in weights:
            parsed = self._objectives.get((id(model), text), lambda text=text: parse_objective(
                text, model, lambda path: load_frame(self.workspace.resolve(path), self.device)))
            parts.append(parsed if weight == 1.0 else weight * parsed)
        return sum(parts[1:], parts[0])

    # ------------------------------------------------------------------------------------ preview

    def _bump(self) -> int:
        with self._lock:
            self._generation += 1
            return self._generation

    def _checked(self, objective: Objective, generation: int) -> Objective:
        """`objective`, stopping with PreviewCancelled once a newer preview was asked for."""
        def score(acts: Any) -> torch.Tensor:
            if self._generation != generation:
                raise PreviewCancelled()
            return objective.fn(acts)
        return Objective(score, objective.layers, objective.description, objective.kinds, objective.whole)

    async def preview(self, spec: InputSpec, preset: Preset, index: int) -> bytes:
        """JPEG of frame `index` dreamed with `preset` at preview size. Raises PreviewCancelled when a
        newer preview was asked for first, DreamvidError for settings the input or model refuse."""
        generation = self._bump()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._dream, spec, preset, index, generation)

    def _dream(self, spec: InputSpec, preset: Preset, index: int, generation: int) -> bytes:
        if self._generation != generation:
            raise PreviewCancelled()
        preset = preview_preset(preset)  # the --preview pass's settings: one rule for both previews
        source, timeline, _ = self.timeline(spec, preset)
        small = preview_size(source, even=False)
        index = min(max(index, 0), source.n_frames - 1)
        image = self.frame(small, index)
        settings = timeline.frame(index)
        model = self.model(preset)
        objective = self._checked(self.objective(model, settings.objective), generation)
        generator = torch.Generator().manual_seed(preset.output.seed)
        if self.device.type == "cpu":
            torch.set_num_threads(PREVIEW_THREADS if self.rendering() else IDLE_THREADS)
        if image is None:
            init, reference = noise_frame(small.height, small.width, generator, self.device), None
        else:
            init = to_tensor(image, self.device)
            reference = channel_stats(init)
        dream_settings = preview_dream_settings(preset, settings.dream)
        dream_settings = dataclasses.replace(dream_settings, precision=live_precision(dream_settings.precision, self.device))
        result = dream(init, model, objective, dream_settings, generator)
        if reference is not None:
            result = match_color(result, reference, settings.color_match)
        return encode_jpeg(to_uint8(result))

    async def source_image(self, spec: InputSpec, preset: Preset, index: int) -> bytes:
        """JPEG of frame `index` of the input, undreamed, at preview size (grey for noise)."""
        def make() -> bytes:
            small = preview_size(self.source(spec, preset), even=False)
            image = self.frame(small, index)
            return encode_jpeg(image if image is not None else np.full((small.height, small.width, 3), 128, np.uint8))
        return await asyncio.get_running_loop().run_in_executor(None, make)


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """A file's version (modification time, size): caches forget a file that changed."""
    if path is None:
        return None
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
