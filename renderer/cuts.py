"""Shot cuts in a source video, found from the optical flow flow mode computes anyway.

At a cut nothing of the frame before can be carried: the flow is noise, and the few pixels that pass
the photometric test by chance would carry fragments of the last shot's dream into the new one. Flow
mode drops the carried dream there and dreams the new shot afresh, as it dreams a render's first frame
(see :meth:`renderer.pipeline.FrameDreamer._flow_group`). Without that, the new shot started from the
carry's few chance matches, dreamed as a revealed region is, and took ten frames to reach the render's
strength (0.025 against 0.043 right after a cut at 320x180).

A frame is a cut when the share of its pixels that the previous frame, carried along the flow, does
not explain is both large (:data:`CUT_CHANGED`) and a jump over the shot so far (:data:`CUT_RATIO`
times the median of the last :data:`CUT_HISTORY` frames). Measured at 320x180 over the first 100
frames of seven clips (benchmarks/README.md, "Shot cuts"): the five cuts change 0.29-0.87 of the frame,
at 6.6-44 times their shot's median; the busiest frame without a cut (wind in a tree) 0.13, at 3.3.
"""

from __future__ import annotations

import statistics
from collections import deque

import cv2
import numpy as np

from .metrics import warp_back

#: A pixel is unexplained when the previous frame carried along the flow differs from it by more than
#: this mean absolute difference over the channels ([0, 1] units; the flow loop's photometric tolerance).
CHANGE_TOLERANCE = 0.1
#: A cut changes at least this share of the frame...
CUT_CHANGED = 0.25
#: ...and at least this many times the median share of the frames before it in the shot...
CUT_RATIO = 4.0
#: ...over this many frames (a frame decides from these alone, so decoding may start this many early).
CUT_HISTORY = 8
#: The median's floor: a still shot changes ~0 % of a frame, and a jump over nothing is no sign of a cut.
QUIET_SHARE = 0.02
#: The median assumed before any frame is seen: a clip may open on a busy shot (so its first frame pair
#: is a cut only if it changes 4 x 0.1 of the frame).
UNSEEN_SHARE = 0.1
#: A frame that changes no more than this share repeats the one before (animation on twos, a variable
#: frame rate filled with copies): it says nothing of the shot's motion and is left out of the median,
#: which would otherwise sit at 0 and make every new drawing a jump (if all the frames before are
#: repeats, :data:`UNSEEN_SHARE` stands in).
REPEAT_SHARE = 0.001


def changed_share(prev: np.ndarray, cur: np.ndarray, flow: np.ndarray) -> float:
    """The share of `cur`'s pixels that `prev`, carried along `flow`, does not explain.

    Args:
        prev: previous frame, ``uint8`` RGB ``(H, W, 3)``.
        cur: current frame, same shape.
        flow: backward flow ``float32`` ``(H, W, 2)`` in pixels, defined on `cur`, pointing into `prev`
            (:meth:`renderer.flow.FlowEstimator.backward`).

    Returns:
        The share in [0, 1] of pixels whose mean absolute difference exceeds :data:`CHANGE_TOLERANCE`.
    """
    difference = cv2.absdiff(warp_back(prev, flow), cur).astype(np.float32).mean(axis=2)
    return float((difference > 255 * CHANGE_TOLERANCE).mean())


class CutDetector:
    """Decides frame by frame whether a frame starts a new shot, from :func:`changed_share` values.

    Feed it every frame pair of a clip in order; the answer for a frame depends on it and the
    :data:`CUT_HISTORY` frames before it only, so a render resumed (or a span started) at frame n gives
    the same answers if it feeds the frames from ``n - CUT_HISTORY`` on.
    """

    def __init__(self) -> None:
        self._shares: deque[float] = deque(maxlen=CUT_HISTORY)

    def observe(self, share: float) -> bool:
        """Whether the frame whose changed share is `share` is a cut; records it for the frames after."""
        moved = [s for s in self._shares if s > REPEAT_SHARE]
        usual = max(statistics.median(moved), QUIET_SHARE) if moved else UNSEEN_SHARE
        self._shares.append(share)
        return share >= CUT_CHANGED and share >= CUT_RATIO * usual
