"""Perfect loops: the render goes once round the clip and on through its first frames again.

A loop of ``period`` frames is rendered as ``period + head`` frames of one continuous render: frames
``0 .. period-1`` (the first pass), then the *wrap*: the first ``head`` frames again (virtual indices
``period .. period+head-1``, source frames and motion of ``0 .. head-1``), carried on from the last
frame by the ordinary motion (the zoom step, or the source's flow from its last frame to its first).
The wrap is pulled toward the first pass's frames of the same index, more each frame, and dreamed as
usual, so that its last frame *is* the first pass's frame ``head - 1``. The output is the wrap followed
by first-pass frames ``head .. period-1``: every junction is an ordinary step of the render (the seam
from the last frame to the first is a plain feedback or flow step; the join into the first pass is an
exact hand-over), and the first pass's frames ``0 .. head-1`` are only targets, never shown.

The pull is a *dissolve*, not a cross-fade: each pixel switches from the carried dream to the target
over a short part of the closure, at a time set by a smooth random field, so a frame is almost
everywhere one dream or the other (no double exposure), and the dream steps that follow re-synthesise
the boundaries between them. ``benchmarks/loops.py`` measures the seam of every preset.

Frames are float tensors ``(1, 3, H, W)`` in [0, 1]; targets are kept as ``uint8 (head, H, W, 3)`` so a
resumed render pulls toward exactly the same values as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import PresetError
from .motion import MotionStep, compose, resample
from .timeline import FrameSettings, Timeline

#: Default closure length (seconds) when ``output.loop_frames`` is 0.
CLOSURE_SECONDS = 1.5
#: Share of the closure over which one pixel dissolves from the carried dream to its target.
DISSOLVE_WIDTH = 0.35
#: Share of the step size the loop's first frame (the seam) is dreamed with.
SEAM_STEP = 0.5
#: Beats per bar for ``--loop-bars``.
BEATS_PER_BAR = 4


@dataclass(frozen=True)
class LoopSpec:
    """A loop's shape: `period` output frames, of which the first `head` are re-rendered as the wrap.

    Attributes:
        period: frames in the loop (the output's frame count).
        head: closure length in frames, 1 <= head <= period // 2 (at least 1).
        seed: seeds the dissolve field.
    """

    period: int
    head: int
    seed: int = 0

    @property
    def total(self) -> int:
        """Frames dreamed: the first pass and the wrap."""
        return self.period + self.head

    def is_wrap(self, index: int) -> bool:
        return index >= self.period

    def progress(self, index: int) -> float:
        """How far wrap frame `index` is through the closure, in (0, 1]; 1 at its last frame."""
        return (index - self.period + 1) / self.head


def loop_spec(period: int, fps: float, loop_frames: int, seed: int) -> LoopSpec:
    """The loop of a `period`-frame render: the closure is `loop_frames` long (0: about
    :data:`CLOSURE_SECONDS`), at most half the loop.

    Raises:
        PresetError: a loop shorter than 2 frames.
    """
    if period < 2:
        raise PresetError(f"a loop needs at least 2 frames, got {period}", hint="pass a longer --frames or --seconds")
    head = loop_frames if loop_frames > 0 else round(CLOSURE_SECONDS * fps)
    return LoopSpec(period, max(1, min(head, period // 2)), seed)


def bars_to_frames(bars: float, bpm: float, fps: float) -> int:
    """Frames in `bars` bars of :data:`BEATS_PER_BAR` beats at `bpm` beats per minute, at `fps`
    (rounded to the nearest frame: the loop is off the bar by at most half a frame)."""
    if not (bpm > 0 and math.isfinite(bpm)):
        raise PresetError(f"the tempo must be a positive number of beats per minute, got {bpm:g}")
    return max(2, round(bars * BEATS_PER_BAR * 60.0 / bpm * fps))


# ----------------------------------------------------------------------------------------- closure

def dissolve_field(height: int, width: int, seed: int, device: torch.device | str | None = None,
                   cells: int = 6) -> torch.Tensor:
    """A smooth random field ``(1, 1, H, W)`` with values spread evenly over [0, 1] (its ranks): the
    closure progress at which each pixel starts to dissolve. About `cells` blobs across the shorter
    side, so the regions that switch together are larger than the dream's own texture."""
    generator = torch.Generator().manual_seed(seed)
    side = min(height, width)
    coarse = torch.rand(1, 1, max(2, round(cells * height / side)), max(2, round(cells * width / side)),
                        generator=generator, dtype=torch.float64)
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False).flatten()
    ranks = torch.empty_like(smooth)
    ranks[smooth.argsort()] = torch.linspace(0.0, 1.0, smooth.numel(), dtype=torch.float64)
    return ranks.view(1, 1, height, width).to(device=device, dtype=torch.float32)


def pull_weight(progress: float, field: torch.Tensor | None, width: float = DISSOLVE_WIDTH) -> torch.Tensor | float:
    """The share of the target in a wrap frame at closure `progress` (0..1): per pixel
    ``smoothstep((progress - field * (1 - width)) / width)`` (``(1, 1, H, W)``), 1 everywhere at
    ``progress = 1``; with `field` None the uniform ``smoothstep(progress)`` (a cross-fade)."""
    if field is None:
        x = min(max(progress, 0.0), 1.0)
        return x * x * (3 - 2 * x)
    x = ((progress - field * (1 - width)) / width).clamp(0.0, 1.0)
    return x * x * (3 - 2 * x)


def pull(init: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | float) -> torch.Tensor:
    """`init` moved toward `target` by `weight` (scalar or ``(1, 1, H, W)``), both ``(1, 3, H, W)``."""
    return torch.lerp(init, target, weight if isinstance(weight, torch.Tensor) else float(weight))


def target_frame(head: torch.Tensor, j: int, device: torch.device | str) -> torch.Tensor:
    """First-pass frame `j` from the saved ``uint8 (head, H, W, 3)`` targets, as ``(1, 3, H, W)`` in [0, 1]."""
    return head[j].to(device).permute(2, 0, 1)[None].float() / 255.0


def quantize(frame: torch.Tensor) -> torch.Tensor:
    """A frame ``(1, 3, H, W)`` in [0, 1] as the ``uint8 (H, W, 3)`` CPU tensor the targets keep."""
    return (frame[0].detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu()


@dataclass(frozen=True)
class LoopTimeline(Timeline):
    """A render's timeline going round a loop: frame ``period + j`` has the settings of frame `j`
    (its motion, objective, colour), except that frame ``period`` is not dreamed in full as frame 0
    is, but with the ordinary steps at :data:`SEAM_STEP` of the step size."""

    period: int = 0

    def frame(self, n: int) -> FrameSettings:
        if n < self.period:
            return super().frame(n)
        settings = super().frame(n - self.period)
        if n != self.period:
            return settings
        steps, octaves = self.values["dream.steps"][0], self.values["dream.octaves"][0]
        # The hinge of the loop dreams at SEAM_STEP of the step size, so the seam is gentler than an
        # ordinary step even where the encoder restarts its prediction (the file's first frame).
        return dataclasses.replace(settings, dream=dataclasses.replace(
            settings.dream, steps=round(steps), octaves=round(octaves), step_size=settings.dream.step_size * SEAM_STEP))


# ------------------------------------------------------------------------------------ seam measure

def _difference(a: torch.Tensor, b: torch.Tensor, cover: torch.Tensor) -> float:
    """Mean absolute difference (0..1 units) of `a` and `b` ``(1, 3, H, W)`` weighted by `cover` ``(1, 1, H, W)``."""
    return float(((a - b).abs().mean(1, keepdim=True) * cover).sum() / cover.sum().clamp_min(1e-6))


def feedback_differences(frames: list[torch.Tensor], steps: list[MotionStep]) -> np.ndarray:
    """For each frame ``t`` of a loop, the difference between frame ``t`` carried one step by the
    motion and frame ``t + 1`` (the last entry: the last frame carried onto frame 0, the seam).

    Args:
        frames: N frames ``(1, 3, H, W)`` in [0, 1], as decoded from the output.
        steps: N motion steps; ``steps[t]`` moves frame ``t - 1`` onto frame ``t`` (``steps[0]``:
            the last frame onto frame 0).

    Returns:
        ``(N,)`` mean absolute differences in [0, 1] units, over the pixels the step reads inside the frame.
    """
    n = len(frames)
    _, _, height, width = frames[0].shape
    out = []
    for t in range(n):
        carried, cover = resample(frames[t], compose([steps[(t + 1) % n]], height, width, device=frames[t].device),
                                  feather=1.0)
        out.append(_difference(carried, frames[(t + 1) % n], cover))
    return np.array(out)


def flow_differences(frames: list[torch.Tensor], flows: list[torch.Tensor]) -> np.ndarray:
    """As :func:`feedback_differences` along a looping source's flow: ``flows[t]`` ``(1, 2, H, W)``
    is the backward flow on source frame ``t`` into frame ``t - 1`` (``flows[0]``: into the last frame),
    in pixels. Pixels whose flow reads outside the frame are left out."""
    from .flow import warp

    n = len(frames)
    out = []
    for t in range(n):
        flow = flows[(t + 1) % n]
        carried = warp(frames[t], flow)
        _, _, height, width = flow.shape
        ys, xs = torch.meshgrid(torch.arange(height, device=flow.device), torch.arange(width, device=flow.device),
                                indexing="ij")
        x, y = xs + flow[:, 0], ys + flow[:, 1]
        cover = ((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)).float()[:, None]
        out.append(_difference(carried, frames[(t + 1) % n], cover))
    return np.array(out)


@dataclass(frozen=True)
class SeamReport:
    """The seam of a loop against its ordinary frame-to-frame change (mean absolute differences, 0..1)."""

    seam: float
    median: float
    largest: float      # the largest consecutive difference other than the seam

    @classmethod
    def of(cls, differences: np.ndarray) -> SeamReport:
        """From :func:`feedback_differences` / :func:`flow_differences` (the last entry is the seam)."""
        return cls(float(differences[-1]), float(np.median(differences[:-1])), float(differences[:-1].max()))

    @property
    def ok(self) -> bool:
        return self.seam <= self.median

    def __str__(self) -> str:
        return f"seam {self.seam:.4f} vs median {self.median:.4f} (ratio {self.seam / max(self.median, 1e-9):.2f}, largest step {self.largest:.4f})"


def measure_feedback(frames: list[np.ndarray], timeline: Timeline, fps: float) -> SeamReport:
    """The seam of a feedback loop: `frames` ``uint8 (H, W, 3)`` decoded from the output, each carried
    one step by the render's motion (frame ``t``'s step from `timeline` moves frame ``t - 1`` onto it)."""
    tensors = [torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None].float() / 255.0 for f in frames]
    steps = [timeline.frame(t).motion.per_frame(fps) for t in range(len(frames))]
    return SeamReport.of(feedback_differences(tensors, steps))


def measure_flow(frames: list[np.ndarray], sources: list[np.ndarray], estimator: object) -> SeamReport:
    """The seam of a flow loop: `frames` decoded from the output, carried along the flow of the looping
    `sources` (``uint8 (H, W, 3)`` at the render size; ``estimator.backward(prev, cur)`` as
    :class:`renderer.flow.FlowEstimator`), the last frame onto the first along the flow from the last
    source frame to the first."""
    from .flow import flow_to_tensor

    tensors = [torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None].float() / 255.0 for f in frames]
    n = len(sources)
    flows = [flow_to_tensor(estimator.backward(sources[t - 1], sources[t])) for t in range(n)]  # t=0: from n-1
    return SeamReport.of(flow_differences(tensors, flows))
