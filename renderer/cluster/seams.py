"""The seam between two flow-mode spans: a cross-fade of their dreams over the same frames.

Two spans rendered side by side carry different hallucinations; cut from one to the other in a single
frame and that frame's change along the motion is several times a normal frame's (4x on
samples/bunny.mp4). Both spans render the frames just before the boundary (the earlier one as its last
kept frames, the later one as the end of its warm-up); here they are cross-faded in *residual* space
(dream minus source), frame j of n taking a share ``(j + 1) / (n + 1)`` of the later span, and each
blend is scaled back to the strength the two had (two different dreams averaged are fainter than
either: without it the strength dips by about 15 % at mid-fade).

Frames travel between workers and driver losslessly (FFV1 in Matroska) and are encoded once, here.
"""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path

import numpy as np

from .. import media
from ..errors import EncodeError
from ..sources import Source

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
               crf: int | None) -> int:
    """Cross-fade the frames in `before` (the earlier span's) into those in `after` (the later span's),
    both lossless files of the frames ``[first - n, first)``, and encode the result into `segment` in
    the output's format. Returns the frames written (n)."""
    with contextlib.ExitStack() as stack:
        frames_a = list(stack.enter_context(media.read_video(before)))
        frames_b = list(stack.enter_context(media.read_video(after)))
        if len(frames_a) != len(frames_b) or not frames_a:
            raise EncodeError(f"the seam before frame {first} has {len(frames_a)} and {len(frames_b)} frames "
                              "from its two spans", hint="run the same command with --resume to render them again")
        n = len(frames_a)
        sources = stack.enter_context(contextlib.closing(source.frames(first - n)))
        writer = stack.enter_context(media.SegmentWriter(segment, source.width, source.height, source.fps, fmt, crf))
        for j, (a, b, s) in enumerate(zip(frames_a, frames_b, itertools.chain(sources, itertools.repeat(None)))):
            writer.write(blend_frames(a, b, s, (j + 1) / (n + 1)))
    return n
