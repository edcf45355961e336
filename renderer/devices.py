"""Choosing the compute device."""

from __future__ import annotations

import torch

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU; 'cuda:1' style names are accepted."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise InputError(f"unknown device {name!r}", hint=f"use one of: {', '.join(DEVICE_CHOICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA is not available on this machine", hint="use --device cpu or --device auto")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise InputError("Apple MPS is not available on this machine", hint="use --device cpu or --device auto")
    return torch.device(name)
