"""Conversions between the I/O edge (numpy uint8 (H,W,3) RGB) and the pipeline's frames
(float tensors (1,3,H,W), RGB in [0,1], on the working device)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import media


def to_tensor(frame: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (H,W,3) -> float32 (1,3,H,W) in [0,1] on `device` (converted on the device: 4x less to copy)."""
    t = torch.from_numpy(np.ascontiguousarray(frame)).to(device, non_blocking=True)
    return t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def load_frame(path: str | Path, device: torch.device | str = "cpu") -> torch.Tensor:
    """An image file as a frame (1,3,H,W) in [0,1] on `device` (start images, guide images)."""
    return to_tensor(media.load_image(path), device)


def to_uint8(frame: torch.Tensor) -> np.ndarray:
    """float (1,3,H,W) in [0,1] -> uint8 (H,W,3), rounded (not truncated, which would darken by 0.5 LSB)."""
    return frame[0].mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def noise_frame(height: int, width: int, generator: torch.Generator, device: torch.device | str = "cpu",
                amplitude: float = 0.15, grain: int = 8) -> torch.Tensor:
    """Mid-grey with smooth Gaussian noise, (1,3,H,W): the start for dreaming from nothing.

    The noise is drawn at 1/`grain` of the size and upsampled: pixel-level noise would survive every
    octave and speckle the result, while blobs give the coarse octaves something to grow from.
    """
    small = torch.randn(1, 3, max(1, height // grain), max(1, width // grain), generator=generator)
    noise = F.interpolate(small, size=(height, width), mode="bicubic", align_corners=False)
    return (0.5 + amplitude * noise).clamp_(0.0, 1.0).to(device)
