"""Backbones that can be dreamed with, behind one interface.

A backbone is an ``nn.Module`` whose ``forward(x, layers)`` takes frames (B,3,H,W) RGB in [0,1],
converts them to its own input normalisation, runs only as deep as the deepest requested layer and
returns ``{layer: activation}``. Its parameters never require grad. It also exposes
``layer_names()`` (depth order), ``default_layer``, ``logits_layer`` and ``class_names()``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from . import weights as W
from .inception5h import LOGITS, Inception5h
from .torchvision_nets import TORCHVISION_MODELS, load_torchvision

INCEPTION5H_FILES = ("inception5h.safetensors", "inception5h.pth")
DEFAULT_MODEL = "inception5h"
RANDOM_WEIGHTS = "random"


def available_models() -> tuple[str, ...]:
    return (DEFAULT_MODEL, *TORCHVISION_MODELS)


def _inception5h_state(weights: str | Path | None) -> dict[str, torch.Tensor]:
    """inception5h's tensors from the lookup in :mod:`renderer.models.weights`; the package ships a copy,
    so nothing is downloaded. The packaged file is checked by sha256, any other by its values."""
    path = W.find_weights(INCEPTION5H_FILES, weights)
    if path is None:  # only when the packaged copy was left out of the install
        raise ModelError(f"inception5h weights not found (looked in {W.searched_places(INCEPTION5H_FILES)})",
                         hint="reinstall dreamvid (it ships inception5h.safetensors), or pass --weights FILE")
    verified = W.verified_by_hash(path)
    state = W.read_state_dict(path)
    if not verified:
        W.verify_fingerprint(state, W.load_fingerprint("inception5h"), path)
    return state


def load_backbone(name: str = DEFAULT_MODEL, weights: str | Path | None = None,
                  device: torch.device | str = "cpu") -> nn.Module:
    """Build a backbone with its weights, in eval mode, frozen, on `device`.

    Args:
        name: one of :func:`available_models`.
        weights: an explicit weight file, ``"random"`` (untrained, for tests and experiments), or None
            for the lookup described in :mod:`renderer.models.weights`.
    """
    if name == DEFAULT_MODEL:
        model = Inception5h()
        if weights != RANDOM_WEIGHTS:
            model.load_weights(_inception5h_state(weights))
    elif name in TORCHVISION_MODELS:
        model = load_torchvision(name, None if weights == RANDOM_WEIGHTS else weights,
                                 random=weights == RANDOM_WEIGHTS)
    else:
        raise ModelError(f"unknown model {name!r}", hint=f"choose one of: {', '.join(available_models())}")
    model.requires_grad_(False)
    return model.eval().to(device, memory_format=preferred_memory_format(torch.device(device)))


def preferred_memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last where the convolution libraries are fastest with it (oneDNN on CPU, cuDNN tensor
    cores on CUDA with mixed precision); dream() feeds images in the same format as the weights."""
    return torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format


__all__ = ["available_models", "load_backbone", "preferred_memory_format", "DEFAULT_MODEL", "LOGITS", "RANDOM_WEIGHTS"]
