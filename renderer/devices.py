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


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS.

    Every dream step frees and reallocates the same activation buffers (tens of MB); by default glibc
    unmaps them and the next step faults them back in zero-filled: 15-35k page faults and 10-15 % of a
    640x360 step on CPU (measured by benchmarks/dream_step.py). Same as starting Python with
    ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824``.
    Returns False (and changes nothing) off glibc.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False
