"""The seam between two flow-mode spans: a cross-fade of their dreams over the same frames.

Two spans rendered side by side carry different hallucinations; cut from one to the other in a single
frame and that frame's change along the motion is several times a normal frame's (4x on
samples/bunny.mp4). Both spans render the frames just before the boundary (the earlier one as its last
kept frames, the later one as the end of its warm-up); here they are cross-faded in *residual* space
(dream minus source), frame j of n taking a share ``(j + 1) / (n + 1)`` of the later span, and each
blend is scaled back to the strength the two had (two different dreams averaged are fainter than
either: without it the strength dips by about 15 % at mid-fade).

The change from one span's hallucinations to the other's is spread over the cross-fade, so a seam shows
as much as that change per frame stands out against the clip's own change along its motion: a still
camera needs a long cross-fade, a moving one a short one. :func:`seam_blend` chooses the length from the
clip (measured: benchmarks/README.md, "Rendering on a cluster").

Frames travel between workers and driver losslessly (FFV1 in Matroska) and are encoded once, here.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import media, metrics
from ..errors import EncodeError
from ..sources import Source
from .spans import BLEND_FRAMES

#: Cross-faded frames per unit of (dream strength / the source's own warping error). Two spans' dreams
#: differ by about the dream's strength, and a linear cross-fade of n frames adds about 0.55 of
#: that / n to each frame's warping error (measured on vtest and bunny, 12 to 160 frames), against
#: the clip's own 1.1-1.25x the source's: 6.5 brings the addition to about a tenth (vtest: +0.11 of
#: the clip's average over the seam), 8 keeps it under.
BLEND_PER_CALM = 8.0
#: The longest cross-fade, in seconds of the clip: a still shot would need an endless one.
MAX_BLEND_SECONDS = 12.0
#: The motion estimate looks at this many windows spread over the clip, of WINDOW_PAIRS frame pairs each...
MOTION_WINDOWS = 8
WINDOW_PAIRS = 4
#: ...at most this wide (optical flow on larger frames costs more and says the same).
MOTION_WIDTH = 640

#: The lossless format of the frames a seam is made from (FFV1 in Matroska, as GIF renders' segments).
TRANSIT = media.OutputFormat.GIF


def blend_frames(before: np.ndarray, after: np.ndarray, source: np.ndarray | None, share: float) -> np.ndarray:
    """One frame of a cross-fade: a `share` in [0, 1] of `after`, the rest `before`, all ``uint8 (H, W, 3)``.

    With a `source` frame the dreams' residuals are blended and the blend is scaled to the mean
    strength (mean |residual|) the two had at that share; without one, the frames are blended."""
    a, b = before.astype(np.float32), after.astype(np.float32)
    if source is None:
        mixed = (1 - share) * a + share * b
    else:
        s = source.astype(np.float32)
        ra, rb = a - s, b - s
        residual = (1 - share) * ra + share * rb
        held = float(np.abs(residual).mean())
        wanted = (1 - share) * float(np.abs(ra).mean()) + share * float(np.abs(rb).mean())
        mixed = s + residual * (wanted / held if held > 1e-6 else 1.0)
    return np.clip(mixed, 0, 255).round().astype(np.uint8)


def write_seam(source: Source, first: int, before: Path, after: Path, segment: Path, fmt: media.OutputFormat,
               encoding: dict[str, Any]) -> int:
    """Cross-fade the frames in `before` (the earlier span's) into those in `after` (the later span's),
    both lossless files of the frames ``[first - n, first)``, and encode the result into `segment` in
    the output's format, as the spans' own segments are (`encoding`: :func:`renderer.pipeline.segment_encoding`).
    Returns the frames written (n)."""
    with contextlib.ExitStack() as stack:
        frames_a = list(stack.enter_context(media.read_video(before)))
        frames_b = list(stack.enter_context(media.read_video(after)))
        if len(frames_a) != len(frames_b) or not frames_a:
            raise EncodeError(f"the seam before frame {first} has {len(frames_a)} and {len(frames_b)} frames "
                              "from its two spans", hint="run the same command with --resume to render them again")
        n = len(frames_a)
        sources = stack.enter_context(contextlib.closing(source.frames(first - n)))
        writer = stack.enter_context(media.SegmentWriter(segment, source.width, source.height, source.fps, fmt, **encoding))
        for j, (a, b, s) in enumerate(zip(frames_a, frames_b, itertools.chain(sources, itertools.repeat(None)))):
            writer.write(blend_frames(a, b, s, (j + 1) / (n + 1)))
    return n


@dataclass(frozen=True)
class BlendChoice:
    """How long a render's seams cross-fade, and the figures that chose it.

    Attributes:
        frames: cross-faded frames at each seam.
        motion: the source's own warping error per frame ([0,1] units, :func:`source_motion`).
        strength: the dream's strength the render holds (mean |dream - source|, [0,1] units).
    """

    frames: int
    motion: float
    strength: float

    def describe(self) -> str:
        """What chose the length, for the line that describes the split."""
        return f"the clip moves {self.motion:.4f} a frame against a dream of {self.strength:.3f}"


def source_motion(source: Source, windows: int = MOTION_WINDOWS, pairs: int = WINDOW_PAIRS) -> float:
    """The source's own warping error (:func:`renderer.metrics.warping_errors`' denominator: mean |frame
    t - frame t-1 carried along its optical flow| on the pixels that warp well), [0,1] units, averaged
    over `windows` runs of `pairs` consecutive frame pairs spread evenly over the clip (decoded by
    seeking, not from the start); 0.0 for a clip of one frame."""
    n = source.n_frames
    if n < 2:
        return 0.0
    span = min(pairs + 1, n)
    starts = sorted({round(i * (n - span) / max(windows - 1, 1)) for i in range(windows)})
    errors = []
    for start in starts:
        with contextlib.closing(source.frames(start)) as frames:
            window = [_small(f) for f in itertools.islice(frames, span) if f is not None]
        if len(window) >= 2:
            errors.extend(metrics.SourceMotion.of(window).source_errors)
    return float(np.mean(errors)) if errors else 0.0


def _small(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    if width <= MOTION_WIDTH:
        return frame
    return cv2.resize(frame, (MOTION_WIDTH, max(1, round(height * MOTION_WIDTH / width))), interpolation=cv2.INTER_AREA)


def seam_blend(source: Source, strength: float) -> BlendChoice:
    """The cross-fade a flow render of `source` needs for its seams not to show: ``BLEND_PER_CALM``
    times the dream's `strength` over the source's own motion per frame, at least ``BLEND_FRAMES``, at
    most ``MAX_BLEND_SECONDS`` of the clip."""
    motion = source_motion(source)
    longest = max(BLEND_FRAMES, round(MAX_BLEND_SECONDS * source.fps))
    if motion * longest <= BLEND_PER_CALM * strength:  # a still shot (motion 0 included): the longest
        return BlendChoice(longest, motion, strength)
    return BlendChoice(max(math.ceil(BLEND_PER_CALM * strength / motion), BLEND_FRAMES), motion, strength)
