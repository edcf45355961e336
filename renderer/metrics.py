"""Numbers that judge a dreamed video: temporal stability and dream strength (benchmarks, tests)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .flow import FlowEstimator, consistency_mask, flow_to_tensor, warp
from .frames import to_tensor


def warping_error(frames: Sequence[np.ndarray], source: Sequence[np.ndarray]) -> float:
    """Mean |frame t - frame t-1 carried along the SOURCE's optical flow| over reliable pixels
    (forward-backward consistent), in [0,1] units. Flicker and swimming raise it; a video that moves
    like its source scores like the source itself."""
    estimator = FlowEstimator()
    errors = []
    for t in range(1, min(len(frames), len(source))):
        pair = estimator.forward_backward(source[t - 1], source[t])
        backward, forward = flow_to_tensor(pair.backward), flow_to_tensor(pair.forward)
        mask = consistency_mask(backward, forward)
        warped = warp(to_tensor(frames[t - 1]), backward)
        errors.append(float(((warped - to_tensor(frames[t])).abs() * mask).sum() / (3 * mask.sum().clamp_min(1))))
    return float(np.mean(errors)) if errors else 0.0


def dream_strength(frames: Sequence[np.ndarray], source: Sequence[np.ndarray]) -> np.ndarray:
    """Per frame: mean |dreamed - source| in [0,1] units (how much the dream changed the picture)."""
    return np.array([np.abs(f.astype(np.float32) - s.astype(np.float32)).mean() / 255
                     for f, s in zip(frames, source)])


def sharpness(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (higher = more fine detail)."""
    import cv2

    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


__all__ = ["warping_error", "dream_strength", "sharpness"]
