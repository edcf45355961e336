"""Keeping colours steady over long renders (feedback loops drift, saturate or wash out)."""

from __future__ import annotations

import torch


def channel_stats(frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of (1,3,H,W), each (1,3,1,1)."""
    return frame.mean((2, 3), keepdim=True), frame.std((2, 3), keepdim=True)


def match_color(frame: torch.Tensor, reference: tuple[torch.Tensor, torch.Tensor], strength: float) -> torch.Tensor:
    """Move each channel's mean and spread of `frame` (1,3,H,W) toward `reference` stats by `strength`
    (0 = unchanged, 1 = exactly the reference's); clamped to [0,1]."""
    if strength <= 0.0:
        return frame
    mean, std = channel_stats(frame)
    ref_mean, ref_std = reference
    matched = (frame - mean) * (ref_std / std.clamp_min(1e-4)) + ref_mean
    return torch.lerp(frame, matched, strength).clamp_(0.0, 1.0)
