"""Splitting a render into spans that workers render side by side.

Flow mode carries the dream from frame to frame, so a span that starts in the middle of a clip cannot
continue the dream of the span before it (that one is being rendered at the same time). Instead each
span after the first starts with a **warm-up**: it begins ``warmup`` frames before its first kept
frame, dreams that frame in full as the render dreams its first (see
:meth:`renderer.pipeline.FrameDreamer._open_span`), and carries the dream forward until it has settled;
those frames are discarded. The two spans still carry different
hallucinations, so at each **seam** the last ``blend`` frames of the earlier span and the last
``blend`` warm-up frames of the later one (the same frame indices) are cross-faded
(:mod:`renderer.cluster.seams`): the dream changes over ``blend`` frames instead of jumping in one.
How many frames that takes depends on the clip (:func:`renderer.cluster.seams.seam_blend`); a clip too
short for it gets the longest cross-fade its spans allow.

Feedback mode is a chain (each frame is made from the one before): a render is one span.

Span boundaries sit on keyframes (``motion.cadence`` / ``flow.cadence``): a span's first rendered
frame is a keyframe of the whole render, and so is the last frame before each boundary, so every
group of frames a span dreams is a group the whole render dreams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import Mode
from ..timeline import Timeline

#: The shortest cross-fade at a seam (flow mode), and the length when none is chosen from the clip:
#: shorter ones show on any footage (measured on samples/bunny.mp4: see benchmarks/README.md,
#: "Rendering on a cluster").
BLEND_FRAMES = 12
#: Warm-up frames before the blend, for the opening frame's dream to settle into the carry.
SETTLE_FRAMES = 8
#: A span keeps at least this many times its warm-up in frames (warm-up overhead at most 1/3)...
MIN_SPAN_FACTOR = 3
#: ...and at most this many frames, so that long renders are split into several spans per worker
#: (finer retries and resume, and workers that finish early take more).
MAX_SPAN_FRAMES = 600


@dataclass(frozen=True)
class Span:
    """One worker's share of a render.

    Attributes:
        index: position in the render (0-based).
        start: the first frame rendered (a keyframe; ``first - start`` frames of warm-up).
        first: the first frame kept.
        stop: one past the last frame kept, or None for the last span (to the end of the source).
        blend_in: the last ``blend_in`` warm-up frames (``[first - blend_in, first)``) are returned for
            the seam with the span before.
        blend_out: the last ``blend_out`` kept frames are returned apart, for the seam with the next span.
    """

    index: int
    start: int
    first: int
    stop: int | None
    blend_in: int = 0
    blend_out: int = 0

    @property
    def warmup(self) -> int:
        """Frames rendered before the first kept one."""
        return self.first - self.start


@dataclass(frozen=True)
class SpanPlan:
    """How a render is split: spans in order, and the warm-up and blend they use (frames)."""

    spans: tuple[Span, ...]
    warmup: int
    blend: int
    n_frames: int
    wanted_blend: int = 0  # the cross-fade asked for, when the clip was too short for it (0: as asked)

    @property
    def overhead(self) -> float:
        """Warm-up frames as a share of the frames kept."""
        return sum(s.warmup for s in self.spans) / max(self.n_frames, 1)

    def describe(self, workers: int, why: str | None = None) -> str:
        """One line for the user: spans, their length, warm-up and its cost; `why`: what chose the
        cross-fade (:meth:`renderer.cluster.seams.BlendChoice.describe`)."""
        n = len(self.spans)
        if n == 1:
            return f"{self.n_frames} frames in 1 span on 1 of {workers} worker{'s' * (workers > 1)} (no warm-up)"
        length = round(self.n_frames / n)
        line = (f"{self.n_frames} frames in {n} spans of about {length} on {min(workers, n)} workers; warm-up "
                f"{self.warmup} frames before each span after the first, the last {self.blend} cross-faded at "
                f"each seam (+{100 * self.overhead:.0f} % frames)")
        if self.short_blend:
            return (f"{line}; {why + ': that ' if why else ''}asks for {self.wanted_blend}, so the seams may show: "
                    "use fewer workers, or a longer clip")
        return f"{line}, as {why}" if why else line

    @property
    def short_blend(self) -> bool:
        """The cross-fade is well short of the one asked for (the seam's added flicker goes as 1 / its
        length: a quarter short adds a third)."""
        return 4 * self.blend < 3 * self.wanted_blend


def keyframes(timeline: Timeline, n_frames: int) -> list[int]:
    """The keyframes of a render of `n_frames` frames: 0, then each one ``cadence`` frames after the last."""
    found, k = [], 0
    while k < n_frames:
        found.append(k)
        k += max(1, timeline.frame(k).cadence)
    return found


def plan_spans(mode: Mode, n_frames: int, workers: int, timeline: Timeline, *, blend: int = BLEND_FRAMES,
               settle: int = SETTLE_FRAMES, max_span: int = MAX_SPAN_FRAMES) -> SpanPlan:
    """Split a render of `n_frames` frames for `workers` workers.

    `blend` is the cross-fade wanted at each seam and `settle` the warm-up frames before it. Feedback
    mode, one worker, or a clip too short for two spans of ``MIN_SPAN_FACTOR`` warm-ups: one span. A
    clip too short for that with `blend` gets the longest cross-fade that fits, down to
    ``BLEND_FRAMES`` (or `blend`, if shorter). Otherwise at least one span per worker, more when
    spans would exceed `max_span` frames (a multiple of `workers`, so that every round keeps every
    worker busy), the first span longer by a warm-up so that every span has the same frames to dream;
    boundaries moved to the nearest keyframe.
    """
    single = SpanPlan((Span(0, 0, 0, None),), 0, 0, n_frames)
    if mode is not Mode.FLOW or workers < 2:
        return single
    wanted, blend = blend, min(blend, n_frames // (2 * MIN_SPAN_FACTOR) - settle)
    if blend < min(wanted, BLEND_FRAMES):
        return single
    warmup = settle + blend
    count = min(workers, n_frames // (MIN_SPAN_FACTOR * warmup))
    if n_frames / count > max_span:
        count = workers * math.ceil(n_frames / (max_span * workers))
    # Equal work: the first span has no warm-up, so it keeps `warmup` more frames than the others.
    length = (n_frames - warmup) / count
    keys = keyframes(timeline, n_frames)
    bounds = []
    for i in range(1, count):
        target = round(warmup + i * length)
        # A boundary b needs b - 1 on a keyframe (the span before ends on one), and a keyframe at or
        # before b - warmup to start the warm-up on.
        b = min((k + 1 for k in keys if k + 1 - warmup >= 0), key=lambda b: abs(b - target))
        if (not bounds or b - bounds[-1] >= 2 * blend) and n_frames - b >= 2 * blend:
            bounds.append(b)
    if not bounds:
        return single
    edges = [0, *bounds, None]
    spans = []
    for i in range(len(edges) - 1):
        first, stop = edges[i], edges[i + 1]
        start = max((k for k in keys if k <= first - warmup), default=0) if first else 0
        spans.append(Span(i, start, first, stop, blend_in=blend if first else 0,
                          blend_out=blend if stop is not None else 0))
    return SpanPlan(tuple(spans), warmup, blend, n_frames, wanted if wanted > blend else 0)
