"""What a worker does with a span: attach its model (loaded once, reused), render, pack the files.

Used in-process (:class:`renderer.cluster.driver.LocalExecutor`) and inside Ray actors
(:mod:`renderer.cluster.ray_backend`) alike: nothing here imports Ray. Finished spans travel back as
bytes (:func:`pack`), so the workers need no shared folder with the driver; they do need the input
(and any file the preset names) at the same path.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .. import media
from ..devices import pick_device
from ..dream import Objective, parse_objective
from ..frames import load_frame
from ..media.images import numbered_images
from ..models import load_backbone
from ..pipeline import SpanOutput, render_span
from ..plan import RenderPlan
from .seams import TRANSIT
from .spans import Span

#: A file's or a PNG folder's content: ``[("", bytes)]`` for a file, ``[(frame name, bytes), ...]`` for a folder.
Payload = list[tuple[str, bytes]]


@dataclass(frozen=True)
class SpanJob:
    """A span of one render, as sent to a worker.

    Attributes:
        render: which render of the run it belongs to (a batch runs several).
        label: a short name for progress lines (the output's name).
        plan: the render's plan without its model and objectives (:func:`portable`), rebuilt on the worker.
        span: the frames to render.
        device: ``auto``, ``cpu``, ``cuda``...: picked on the worker.
        strength: flow mode's dream strength for every span of the render (its first frame's), or None.
    """

    render: int
    label: str
    plan: RenderPlan
    span: Span
    device: str = "auto"
    strength: float | None = None

    @property
    def frames(self) -> int:
        """Frames the worker dreams, warm-up included (the last span: up to the planned count)."""
        stop = self.span.stop if self.span.stop is not None else self.plan.source.n_frames
        return max(stop - self.span.start, 1)


@dataclass(frozen=True)
class SpanResult:
    """A finished span: frames written per role (``main``, ``head``, ``tail``) and the files' contents."""

    render: int
    span: int
    counts: dict[str, int]
    files: dict[str, Payload]
    frames: int        # frames dreamed, warm-up included
    seconds: float     # wall time of the span on its worker
    worker: str


def portable(plan: RenderPlan) -> RenderPlan:
    """`plan` without the loaded network and objectives (they are rebuilt where the span runs)."""
    return dataclasses.replace(plan, model=None, objectives={})  # type: ignore[arg-type]


class ModelCache:
    """The networks and objectives a worker has loaded, by model, weights and device: loaded for the
    first span that needs them, reused for every later one."""

    def __init__(self) -> None:
        self.models: dict[tuple[str, str, str], nn.Module] = {}
        self.objectives: dict[tuple[tuple[str, str, str], str], Objective] = {}

    def attach(self, plan: RenderPlan, device: str) -> RenderPlan:
        """`plan` with its model and objectives on this worker's `device`."""
        chosen = pick_device(device)
        spec = plan.preset.model
        key = (spec.name, spec.weights or "", str(chosen))
        if key not in self.models:
            self.models[key] = load_backbone(spec.name, spec.weights or None, chosen)
        model = self.models[key]
        objectives = {}
        for text in plan.preset.dream.objective.texts:
            if (key, text) not in self.objectives:
                self.objectives[key, text] = parse_objective(text, model, lambda path: load_frame(path, chosen))
            objectives[text] = self.objectives[key, text]
        return dataclasses.replace(plan, model=model, objectives=objectives, device=chosen)


def span_outputs(span: Span, folder: Path, fmt: media.OutputFormat) -> dict[str, SpanOutput]:
    """Where a span's frames go: ``main`` (kept frames, in the output's segment format), ``head`` (the
    warm-up frames blended into the seam before it) and ``tail`` (its last kept frames, blended into the
    seam after it), the last two lossless."""
    main_stop = None if span.stop is None else span.stop - span.blend_out
    outputs = {"main": SpanOutput(span.first, main_stop, folder / f"main{fmt.segment_suffix}", fmt)}
    if span.blend_in:
        outputs["head"] = SpanOutput(span.first - span.blend_in, span.first, folder / "head.mkv", TRANSIT)
    if span.blend_out and span.stop is not None:
        outputs["tail"] = SpanOutput(span.stop - span.blend_out, span.stop, folder / "tail.mkv", TRANSIT)
    return outputs


def run_span(job: SpanJob, models: ModelCache, worker: str,
             progress: Callable[[int], None] | None = None) -> SpanResult:
    """Render `job` in a temporary folder and return its files as bytes."""
    began = time.perf_counter()
    plan = models.attach(job.plan, job.device)
    with tempfile.TemporaryDirectory(prefix="dreamvid-span-") as tmp:
        outputs = span_outputs(job.span, Path(tmp), plan.format)
        counts = render_span(plan, job.span.start, job.span.stop, list(outputs.values()), progress, job.strength)
        files = {role: pack(out.path) for role, out in outputs.items()}
    written = dict(zip(outputs, counts))
    rendered = job.span.warmup + written["main"] + written.get("tail", 0)  # head frames are warm-up frames
    return SpanResult(job.render, job.span.index, written, files, rendered, time.perf_counter() - began, worker)


def pack(path: Path) -> Payload:
    """The content of a segment file or PNG folder (empty when nothing was written)."""
    if path.is_dir():
        return [(frame.name, frame.read_bytes()) for frame in numbered_images(path)]
    return [("", path.read_bytes())] if path.exists() else []


def unpack(payload: Payload, path: Path) -> None:
    """Write a :func:`pack` payload to `path` (a file, or a folder of frames), atomically."""
    with media.atomic_path(path) as tmp:
        if len(payload) == 1 and payload[0][0] == "":
            tmp.write_bytes(payload[0][1])
        else:
            tmp.mkdir()
            for name, data in payload:
                (tmp / name).write_bytes(data)
