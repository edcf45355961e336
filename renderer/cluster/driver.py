"""The driver: split renders into spans, hand them to an executor, keep what comes back, join it.

A render's work folder (:mod:`renderer.workdir`, ``OUT.dreamvid-partial/``) holds ``spans.json`` (the
span plan, the settings digest, the spans finished) and each finished span's files (``span_00003.mp4``
and, in flow mode, the lossless frames of its seams). A span is recorded only after its files are in
place, so after Ctrl-C, a crash or a lost driver, ``--resume`` renders only the spans not recorded.
The folder also holds the ordinary ``state.pt`` (no frames, the digest), so that planning a render
sees an unfinished one there and asks for ``--resume`` or ``--overwrite``. When every span is in, the
seams are cross-faded (:mod:`.seams`) and the segments joined with the soundtrack as a local render's
are (:func:`renderer.pipeline.finish_render`).

Executors: :class:`LocalExecutor` runs spans one after the other in this process (batches without
Ray, tests); :class:`renderer.cluster.ray_backend.RayExecutor` runs them on Ray actors.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from .. import media
from ..config import Mode
from ..errors import InputError
from ..pipeline import RenderInterrupted, finish_render, opening_strength, segment_encoding
from ..plan import RenderPlan
from ..workdir import LoopState
from .progress import ProgressSnapshot, ProgressTracker
from .seams import BlendChoice, seam_blend, write_seam
from .spans import Span, SpanPlan, plan_spans
from .worker import ModelCache, SpanJob, SpanResult, portable, run_span, unpack

SPANS_FILE = "spans.json"
Announce = Callable[[str], None]


class Executor(Protocol):
    """Runs span jobs somewhere and hands back each result as it finishes."""

    workers: int

    def run(self, jobs: list[SpanJob], done: Callable[[SpanResult], None], tracker: ProgressTracker,
            progress: Callable[[ProgressSnapshot], None] | None) -> None: ...


class LocalExecutor:
    """Spans one after the other in this process, with the model loaded once."""

    workers = 1

    def __init__(self) -> None:
        self.models = ModelCache()

    def run(self, jobs: list[SpanJob], done: Callable[[SpanResult], None], tracker: ProgressTracker,
            progress: Callable[[ProgressSnapshot], None] | None) -> None:
        for job in jobs:
            def report(frames: int, job: SpanJob = job) -> None:
                tracker.report("local", (job.render, job.span.index), job.label, frames, os.getpid())
                if progress:
                    progress(tracker.snapshot())

            done(run_span(job, self.models, "local", report))


class ClusterRender:
    """One render split into spans: its span plan, its work folder's record, its final join."""

    def __init__(self, index: int, plan: RenderPlan, spans: SpanPlan, device: str, strength: float | None = None,
                 blend: BlendChoice | None = None) -> None:
        """`strength`: the render's opening strength when already measured (:func:`split`); `blend`: how
        the seams' cross-fade was chosen, for :meth:`describe`."""
        self.index, self.plan, self.device = index, plan, device
        self.work = plan.work
        self.digest = plan.digest()
        self.spans = spans
        self.blend = blend
        self.done: dict[int, dict[str, int]] = {}
        self.strength: float | None = None
        if plan.resume:
            self._load()
        elif len(spans.spans) > 1:
            # Every span holds the dream to the strength of the render's first frame, as a local render does
            # (each span's own opening frame would give each its own strength).
            self.strength = strength if strength is not None else opening_strength(plan)
        if not plan.resume:
            self.work.create()
            self.work.save(LoopState(tile=plan.tile), self.digest)
            self._save()

    def describe(self, workers: int) -> str:
        """One line for the user: how the render is split and, in flow mode, what chose its cross-fade."""
        return self.spans.describe(workers, self.blend.describe() if self.blend else None)

    # --------------------------------------------------------------------------------- record

    @property
    def record(self) -> Path:
        return self.work.path / SPANS_FILE

    def _save(self) -> None:
        data = {"digest": self.digest, "warmup": self.spans.warmup, "blend": self.spans.blend,
                "n_frames": self.spans.n_frames, "strength": self.strength,
                "spans": [dataclasses.asdict(s) for s in self.spans.spans],
                "done": {str(k): v for k, v in self.done.items()}}
        with media.atomic_path(self.record) as tmp:
            tmp.write_text(json.dumps(data, indent=1))

    def _load(self) -> None:
        """Continue the spans saved in the work folder (their plan, whatever the workers now)."""
        if not self.record.is_file():
            raise InputError(f"the unfinished render in {self.work.path} was not started on a cluster",
                             hint="resume it without --cluster/--workers, or pass --overwrite to start over")
        data = json.loads(self.record.read_text())
        if data["digest"] != self.digest:
            raise InputError(f"the unfinished render in {self.work.path} used different settings or input",
                             hint="run the same command as before with --resume, or pass --overwrite to start over")
        self.spans = SpanPlan(tuple(Span(**s) for s in data["spans"]), data["warmup"], data["blend"], data["n_frames"])
        self.strength = data["strength"]
        for key, counts in data["done"].items():
            if all(self._complete(int(key), role, n) for role, n in counts.items()):
                self.done[int(key)] = counts

    def _complete(self, span: int, role: str, frames: int) -> bool:
        path = self.path(span, role)
        return path.exists() and media.count_frames(path) == frames

    def path(self, span: int, role: str) -> Path:
        """Where a finished span's files are kept: ``main`` (kept frames), ``head``/``tail`` (seam frames)."""
        if role == "main":
            return self.work.path / f"span_{span:05d}{self.plan.format.segment_suffix}"
        return self.work.path / f"span_{span:05d}.{role}.mkv"

    # ----------------------------------------------------------------------------------- jobs

    def jobs(self) -> list[SpanJob]:
        """The spans still to render."""
        lite = portable(self.plan)
        label = self.plan.output.name
        return [SpanJob(self.index, f"{label} span {s.index + 1}/{len(self.spans.spans)}", lite, s, self.device,
                        self.strength)
                for s in self.spans.spans if s.index not in self.done]

    def finished_frames(self) -> int:
        """Frames dreamed by the spans already done (warm-up included)."""
        return sum(_dreamed(s, self.plan.source.n_frames) for s in self.spans.spans if s.index in self.done)

    def keep(self, result: SpanResult) -> None:
        """Store a finished span's files, then record it."""
        for role, payload in result.files.items():
            if result.counts[role]:
                unpack(payload, self.path(result.span, role))
        self.done[result.span] = {role: n for role, n in result.counts.items() if n}
        self._save()

    def finish(self) -> Path:
        """Cross-fade the seams, join everything with the soundtrack into the output; the output path."""
        segments, n_frames = [], 0
        encoding = segment_encoding(self.plan)
        for span in self.spans.spans:
            counts = self.done[span.index]
            if span.blend_in and "head" in counts and "tail" in self.done[span.index - 1]:
                seam = self.work.path / f"seam_{span.index:05d}{self.plan.format.segment_suffix}"
                n_frames += write_seam(self.plan.source, span.first, self.path(span.index - 1, "tail"),
                                       self.path(span.index, "head"), seam, self.plan.format, encoding)
                segments.append(seam)
            segments.append(self.path(span.index, "main"))
            n_frames += counts["main"]
        self.work.save(LoopState(next_frame=n_frames, tile=self.plan.tile, finished=True), self.digest)
        return finish_render(self.plan, segments, n_frames)


def _dreamed(span: Span, n_frames: int) -> int:
    return (span.stop if span.stop is not None else n_frames) - span.start


def run_renders(renders: list[ClusterRender], executor: Executor,
                progress: Callable[[ProgressSnapshot], None] | None = None, announce: Announce | None = None) -> list[Path]:
    """Render every span of `renders` on `executor` and finish each render; the output paths, in order.
    Says (`announce`) how many spans a resumed run finds done.

    Raises:
        RenderInterrupted: on Ctrl-C; the spans done are kept (``--resume``).
    """
    jobs = [job for render in renders for job in render.jobs()]
    spans = sum(len(r.spans.spans) for r in renders)
    if announce and len(jobs) < spans:
        announce(f"resuming: {spans - len(jobs)} of {spans} spans done")
    total = sum(_dreamed(s, r.plan.source.n_frames) for r in renders for s in r.spans.spans)
    tracker = ProgressTracker(total, done=sum(r.finished_frames() for r in renders))
    try:
        executor.run(jobs, lambda result: renders[result.render].keep(result), tracker, progress)
    except KeyboardInterrupt:
        done = sum(len(r.done) for r in renders)
        raise RenderInterrupted(f"interrupted with {done} of {spans} spans done (kept in "
                                f"{renders[0].work.path}{' and the other work folders' if len(renders) > 1 else ''})",
                                hint="run the same command with --resume to continue") from None
    if progress:
        progress(tracker.finish())
    return [render.finish() for render in renders]


def split(plan: RenderPlan, workers: int, device: str = "auto", index: int = 0) -> ClusterRender:
    """A render split for `workers` workers (see :func:`renderer.cluster.spans.plan_spans`); in flow
    mode with its seams' cross-fade chosen from the clip (:func:`renderer.cluster.seams.seam_blend`).
    A resumed render keeps the spans it was started with."""
    if plan.preset.mode is not Mode.FLOW or workers < 2 or plan.resume:
        return ClusterRender(index, plan, plan_spans(plan.preset.mode, plan.source.n_frames, workers, plan.timeline),
                             device)
    strength = opening_strength(plan)
    blend = seam_blend(plan.source, strength) if strength else None
    spans = plan_spans(plan.preset.mode, plan.source.n_frames, workers, plan.timeline,
                       **({"blend": blend.frames} if blend else {}))
    return ClusterRender(index, plan, spans, device, strength, blend)


def whole(plans: Iterable[RenderPlan], device: str = "auto") -> list[ClusterRender]:
    """Renders that each go to one worker in one span (a batch): the frames of a local render."""
    return [ClusterRender(i, plan, SpanPlan((Span(0, 0, 0, None),), 0, 0, plan.source.n_frames), device)
            for i, plan in enumerate(plans)]
