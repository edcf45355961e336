"""Numbers that judge a dreamed video: temporal stability, dream strength, and holes behind movers.

Every function here takes frames as numpy ``uint8`` ``(H, W, 3)`` RGB, as decoded from the *encoded*
files (so compression counts), and works in ``[0, 1]`` intensity units. Flows are numpy ``float32``
``(H, W, 2)`` in pixels, **backward**: ``flow[y, x] = (dx, dy)`` says that pixel ``(x, y)`` of frame t
came from ``(x + dx, y + dy)`` in frame t-1 (pixel centres at integer coordinates).

The metrics deliberately do not call :mod:`renderer.flow`: the yardstick must not move when the
renderer's own flow, warping or masks change. It uses OpenCV directly (DIS preset MEDIUM, bilinear
``remap``), which is what issue 9 specifies.

- **Warping error** (:func:`warping_error`, :func:`warping_error_ratio`): frame t against frame t-1
  carried along the *source's* optical flow (DIS MEDIUM, estimated from t to t-1, bilinear warping),
  mean absolute difference over channels and over the pixels where the *source itself* warps well
  (its own residual, mean over channels, below 0.05), averaged over frames. The ratio divides the
  output's figure by the source's: 1.0 means "moves exactly like the source", flicker and swimming
  raise it. Compute the source's flows once with :class:`SourceMotion` when judging several renders
  of the same clip.
- **Strength** (:func:`dream_strength`, :func:`strength_quarters`): mean ``|dream - source|`` per
  frame, and its mean over each quarter of the clip. A dream that piles up grows quarter by quarter;
  ``quarters[3] / quarters[1]`` (last over second: the first quarter holds the fully dreamed first
  frame) says whether the strength has reached a steady state.
- **Holes** (:func:`visible_age`, :func:`hole_profile`): how strongly newly revealed regions are
  dreamed, as a function of how many frames ago they were revealed. See :func:`hole_profile`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

#: A pixel takes part in the warping error where the source's own warp residual (mean |.| over the
#: three channels, [0,1] units) is below this: it excludes occlusions and flow failures *of the source*.
RELIABLE_RESIDUAL = 0.05
#: Pixels visible for at least this many frames (or since the first frame) count as "steady" for
#: the holes measure: a carried dream that keeps a share ``carry`` per frame reaches within
#: ``carry ** age`` of its steady strength (0.85 ** 16 = 7 %, flow-dream's carry).
STEADY_AGE = 16
#: Age of the pixels of the first frame: it is dreamed in full, so they count as steady from the start.
FIRST_FRAME_AGE = np.iinfo(np.int32).max // 2


def _float(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
    return frame.astype(np.float32) / 255


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))


def warp_back(image: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Carry frame t-1 onto frame t along a backward flow: ``out[y, x] = image[y + dy, x + dx]``.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array (any dtype ``cv2.remap`` takes), frame t-1.
        flow: ``float32`` ``(H, W, 2)`` backward flow of frame t, pixels.
        interpolation: ``cv2.INTER_LINEAR`` (bilinear, the metric's) or ``cv2.INTER_NEAREST`` (labels).

    Returns:
        Same shape and dtype as ``image``; outside the frame the border pixels are repeated.
    """
    xs, ys = _pixel_grid(*flow.shape[:2])
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE)


def _residual(cur: np.ndarray, prev: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``(H, W)`` float32: mean over channels of |cur - prev warped along flow|, [0,1] units."""
    return np.abs(_float(cur) - warp_back(_float(prev), flow)).mean(axis=2)


@dataclass(frozen=True)
class SourceMotion:
    """The source clip's optical flow and reliable pixels, computed once per clip.

    Attributes:
        flows: ``float32`` ``(N-1, H, W, 2)``: ``flows[t-1]`` is the backward flow of frame t into
            frame t-1 (DIS MEDIUM at full resolution, on grey frames).
        reliable: ``bool`` ``(N-1, H, W)``: where the source's own warp residual is below
            :data:`RELIABLE_RESIDUAL` at frame t.
        source_errors: ``(N-1,)``: the source's own warping error at each frame t >= 1.
    """

    flows: np.ndarray
    reliable: np.ndarray
    source_errors: np.ndarray

    @classmethod
    def of(cls, source: Sequence[np.ndarray]) -> SourceMotion:
        """Estimate the flows of a clip of ``uint8 (H, W, 3)`` RGB frames (at least two)."""
        if len(source) < 2:
            raise ValueError(f"need at least 2 source frames, got {len(source)}")
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flows, reliable, errors = [], [], []
        gray_prev = _gray(source[0])
        for t in range(1, len(source)):
            gray = _gray(source[t])
            # DIS calc(I0, I1) gives w with I0(x) ~ I1(x + w): I0 = frame t, I1 = frame t-1 is backward.
            flow = dis.calc(gray, gray_prev, None).astype(np.float32)
            residual = _residual(source[t], source[t - 1], flow)
            mask = residual < RELIABLE_RESIDUAL
            flows.append(flow)
            reliable.append(mask)
            errors.append(float(residual[mask].mean()) if mask.any() else 0.0)
            gray_prev = gray
        return cls(np.stack(flows), np.stack(reliable), np.array(errors))

    def __len__(self) -> int:
        """Frames of the clip (one more than flows)."""
        return len(self.flows) + 1

    @property
    def source_error(self) -> float:
        """The source clip's own warping error (mean over frames t >= 1)."""
        return float(self.source_errors.mean())


def _motion(source: Sequence[np.ndarray] | SourceMotion) -> SourceMotion:
    return source if isinstance(source, SourceMotion) else SourceMotion.of(source)


def warping_errors(frames: Sequence[np.ndarray], source: Sequence[np.ndarray] | SourceMotion) -> np.ndarray:
    """Per frame t >= 1: mean |frame t - frame t-1 carried along the source's flow| on the pixels where
    the source warps well; ``(min(len(frames), len(source)) - 1,)`` in [0,1] units.

    Args:
        frames: the video to judge, ``uint8 (H, W, 3)`` RGB, the source's size.
        source: the source clip's frames, or its :class:`SourceMotion` (faster for several videos).
    """
    motion = _motion(source)
    n = min(len(frames), len(motion))
    errors = np.zeros(max(n - 1, 0))
    for t in range(1, n):
        mask = motion.reliable[t - 1]
        if frames[t].shape[:2] != mask.shape:
            raise ValueError(f"frame {t} is {frames[t].shape[:2]}, the source {mask.shape} (H, W)")
        if mask.any():
            errors[t - 1] = _residual(frames[t], frames[t - 1], motion.flows[t - 1])[mask].mean()
    return errors


def warping_error(frames: Sequence[np.ndarray], source: Sequence[np.ndarray] | SourceMotion) -> float:
    """The mean of :func:`warping_errors` over frames ([0,1] units); 0.0 for fewer than 2 frames.

    Flicker and swimming raise it; a video that moves like its source scores like the source itself.
    """
    errors = warping_errors(frames, source)
    return float(errors.mean()) if len(errors) else 0.0


def warping_error_ratio(frames: Sequence[np.ndarray], source: Sequence[np.ndarray] | SourceMotion,
                        first: int | None = None) -> float:
    """The output's warping error divided by the source clip's own, over the same frames (issue 9).

    1.0: the video moves exactly like its source; 2.0: twice the source's frame-to-frame change
    along its motion (flicker, swimming). ``first``: only the first ``first`` frames (e.g. 12).
    """
    motion = _motion(source)
    errors = warping_errors(frames, motion)
    if first is not None:
        errors = errors[:max(first - 1, 0)]
    if not len(errors):
        raise ValueError("need at least 2 frames for a warping error")
    own = motion.source_errors[:len(errors)].mean()
    return float(errors.mean() / own) if own > 0 else float("inf")


def dream_strength(frames: Sequence[np.ndarray], source: Sequence[np.ndarray]) -> np.ndarray:
    """Per frame: mean |dreamed - source| in [0,1] units (how much the dream changed the picture)."""
    return np.array([np.abs(f.astype(np.float32) - s.astype(np.float32)).mean() / 255
                     for f, s in zip(frames, source)])


def strength_quarters(frames: Sequence[np.ndarray], source: Sequence[np.ndarray]) -> np.ndarray:
    """``(4,)``: mean dream strength over each quarter of the clip (frame 0 included in the first).

    ``q[3] / q[1]`` near 1 means a steady state; above ~1.25 the dream piles up.
    """
    strength = dream_strength(frames, source)
    if len(strength) < 4:
        raise ValueError(f"need at least 4 frames for quarters, got {len(strength)}")
    return np.array([q.mean() for q in np.array_split(strength, 4)])


def sharpness(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (higher = more fine detail)."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def centre_seam(frame: np.ndarray, centre: tuple[float, float] = (0.5, 0.5)) -> float:
    """How much a feedback zoom's centre lines stand out: the edge energy across the column and the row
    through `centre` (fractions of width and height), over the frame's median across any column or row.

    Per column boundary, the mean ``|grey[y, x+1] - grey[y, x]|`` (8-bit units) over the rows outside the
    middle quarter of the height (the zoom's middle may differ as a whole; a seam runs through the whole
    frame); the largest of the 4 boundaries nearest the centre column over the median of all of them.
    Likewise for rows; the larger of the two. Meant for frames deep into a zoom, where everything has
    moved through the centre: 1.0-1.6 there on healthy renders (deep-objects at frame 931: 1.6; the same
    figure at any column reaches 1.2-1.9 in 5 % of them), 3.5-4.7 for the cross noise-genesis drew before
    :mod:`renderer.phase`. A still picture scores whatever edge happens to cross its middle (chelsea: 2.4).
    """
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    worst = 0.0
    for image, at in ((grey, centre[0]), (grey.T, centre[1])):  # columns, then rows (as columns of the transpose)
        height, width = image.shape
        outer = np.r_[0:height * 3 // 8, height * 5 // 8:height]
        energy = np.abs(np.diff(image[outer], axis=1)).mean(0)  # (W - 1,) per boundary
        boundary = round(at * width) - 1  # the boundary left of the centre pixel edge
        near = energy[max(0, boundary - 1):boundary + 3]
        worst = max(worst, float(near.max() / max(float(np.median(energy)), 1e-6)))
    return worst


# ----------------------------------------------------------------------------------- holes


def occlusions_from_flow(source: Sequence[np.ndarray], motion: SourceMotion | None = None,
                         tolerance: float = 0.5) -> np.ndarray:
    """Estimated disocclusions when no ground truth is known: ``bool (N, H, W)``, True where pixel
    ``(x, y)`` of frame t was not visible in frame t-1 (frame 0: all False).

    A pixel is disoccluded when its backward flow points outside frame t-1, or when the forward
    flow read where it points does not bring it back (forward-backward check, Sundaram et al. 2010:
    ``|w + ŵ|² > 0.01 (|w|² + |ŵ|²) + tolerance`` px²). The forward flows are estimated here with
    the same DIS MEDIUM settings; ``motion`` (the clip's :class:`SourceMotion`) saves the backward ones.
    """
    motion = motion or SourceMotion.of(source)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    height, width = motion.flows.shape[1:3]
    xs, ys = _pixel_grid(height, width)
    out = np.zeros((len(motion), height, width), dtype=bool)
    for t in range(1, len(motion)):
        backward = motion.flows[t - 1]
        forward = dis.calc(_gray(source[t - 1]), _gray(source[t]), None).astype(np.float32)
        back_fwd = warp_back(forward, backward)
        mismatch = np.square(backward + back_fwd).sum(2)
        limit = 0.01 * (np.square(backward).sum(2) + np.square(back_fwd).sum(2)) + tolerance
        px, py = xs + backward[..., 0], ys + backward[..., 1]
        outside = (px < -0.5) | (px > width - 0.5) | (py < -0.5) | (py > height - 0.5)
        out[t] = (mismatch > limit) | outside
    return out


def visible_age(flows: np.ndarray, occluded: np.ndarray) -> np.ndarray:
    """For every pixel of every frame, how many frames it has been visible: ``int32 (N, H, W)``.

    ``age = 0`` at the frame where a pixel is revealed (``occluded[t]``), and otherwise the age of the
    point it came from in frame t-1 (read along the backward flow, nearest pixel) plus one. Pixels
    of frame 0 get :data:`FIRST_FRAME_AGE` (the first frame is dreamed in full: they are steady).

    Args:
        flows: ``float32 (N, H, W, 2)`` backward flows (frame 0's is ignored), or ``(N-1, H, W, 2)``
            for frames 1..N-1 as :class:`SourceMotion` holds them.
        occluded: ``bool (N, H, W)``: True where frame t's pixel was not visible in frame t-1.
    """
    n = len(occluded)
    if len(flows) == n - 1:
        flows = np.concatenate([np.zeros_like(flows[:1]), flows])
    ages = np.empty(occluded.shape, dtype=np.int32)
    ages[0] = FIRST_FRAME_AGE
    for t in range(1, n):
        carried = warp_back(ages[t - 1].astype(np.float32), flows[t], cv2.INTER_NEAREST).astype(np.int64) + 1
        ages[t] = np.where(occluded[t], 0, np.minimum(carried, FIRST_FRAME_AGE))
    return ages


@dataclass(frozen=True)
class HoleProfile:
    """Dream strength in revealed regions by frames since reveal, relative to steady regions.

    Attributes:
        relative: ``(max_age + 1,)``: ``relative[k]`` = mean |dream - source| over the pixels revealed
            exactly k frames ago, divided by the same over steady pixels (visible for at least
            :data:`STEADY_AGE` frames, or since frame 0) of the same frames; NaN where no pixel had age k.
        pixels: ``(max_age + 1,)``: how many pixels (over all frames) had each age.
        steady_strength: mean |dream - source| of the steady pixels (over the frames that had revealed pixels).
    """

    relative: np.ndarray
    pixels: np.ndarray
    steady_strength: float

    def catch_up(self, level: float = 0.8) -> int | None:
        """First age k (frames after reveal) from which the revealed pixels are dreamed to at least
        ``level`` of the steady strength for every later measured age; None if never."""
        ok = np.nan_to_num(self.relative, nan=1.0) >= level
        for k in range(len(ok)):
            if ok[k:].all():
                return k
        return None


def hole_profile(frames: Sequence[np.ndarray], source: Sequence[np.ndarray], occluded: np.ndarray,
                 flows: np.ndarray, max_age: int = 12) -> HoleProfile:
    """How strongly newly revealed regions are dreamed, k frames after they appear (issue 9's "holes").

    Each pixel's age (:func:`visible_age`) says how many frames ago it was revealed: uncovered behind
    a moving object, or brought in at the frame's edge. For each age k <= ``max_age``, the dream
    strength (mean over channels of |dream - source|) of the pixels of that age is averaged over the
    whole clip and divided by the strength of the *steady* pixels (age >= :data:`STEADY_AGE`) of the
    same frames, each frame weighted by its count of age-k pixels, so both sides come from the same
    frames. ``relative[0]`` is the frame of reveal itself; a renderer without holes reaches ~1 within
    a few frames (``catch_up()`` small), one that leaves undreamed video behind movers stays low.

    Caveat: the dream is stronger on textured content, so revealed regions that differ in texture
    from the rest read slightly above or below 1 even when dreamed fully; compare renders on the
    same clip (e.g. against dreaming each frame from scratch, which has no holes by construction).

    Args:
        frames: dreamed video, ``uint8 (H, W, 3)`` RGB.
        source: its source frames, same shape.
        occluded: ``bool (N, H, W)``: ground truth (:class:`renderer.scenes.Scene`) or
            :func:`occlusions_from_flow`.
        flows: backward flows, ``(N, H, W, 2)`` or ``(N-1, H, W, 2)`` (see :func:`visible_age`).
        max_age: the oldest age reported.
    """
    n = min(len(frames), len(source), len(occluded))
    ages = visible_age(flows[:n] if len(flows) == len(occluded) else flows[:n - 1], occluded[:n])
    sums, counts, steady_weighted = np.zeros(max_age + 1), np.zeros(max_age + 1), np.zeros(max_age + 1)
    steady_total, steady_frames = 0.0, 0
    for t in range(1, n):
        strength = np.abs(_float(frames[t]) - _float(source[t])).mean(axis=2)
        steady = ages[t] >= STEADY_AGE
        if not steady.any():
            continue
        steady_mean = float(strength[steady].mean())
        young = ages[t] <= max_age
        if not young.any():
            continue
        by_age = np.bincount(ages[t][young], weights=strength[young], minlength=max_age + 1)
        count = np.bincount(ages[t][young], minlength=max_age + 1)
        sums += by_age
        counts += count
        steady_weighted += count * steady_mean
        steady_total += steady_mean
        steady_frames += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(counts > 0, sums / steady_weighted, np.nan)
    return HoleProfile(relative, counts.astype(np.int64), steady_total / steady_frames if steady_frames else float("nan"))


__all__ = [
    "RELIABLE_RESIDUAL", "STEADY_AGE", "HoleProfile", "SourceMotion", "dream_strength", "hole_profile",
    "occlusions_from_flow", "sharpness", "strength_quarters", "visible_age", "warp_back", "warping_error",
    "warping_error_ratio", "warping_errors",
]
