"""Dreaming a single image (``dreamvid still``): load, dream, save."""

from __future__ import annotations

from pathlib import Path

import torch

from . import media
from .devices import pick_device
from .dream import DreamSettings, dream, parse_objective
from .errors import InputError
from .frames import load_frame, noise_frame, to_uint8
from .models import load_backbone
from .sources import NOISE, NOISE_SIZE


def dream_still(source: str, output: Path, *, objective: str | None, settings: DreamSettings, seed: int = 0,
                size: tuple[int, int] | None = None, model: str = "inception5h", weights: str | None = None,
                device: str = "auto", overwrite: bool = False) -> Path:
    """Dream `source` (an image path or 'noise') into the image file `output`; returns `output`.

    `size` is (width, height); the default is the input's size (NOISE_SIZE for noise).
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise InputError(f"{output} exists", hint="pass --overwrite to replace it")
    if output.suffix.lower() not in media.IMAGE_EXTENSIONS:
        raise InputError(f"cannot write an image as {output.name!r}",
                         hint=f"use one of: {', '.join(sorted(media.IMAGE_EXTENSIONS))}")
    dev = pick_device(device)
    generator = torch.Generator().manual_seed(seed)
    if source == NOISE:
        width, height = size or NOISE_SIZE
        image = noise_frame(height, width, generator, dev)
    else:
        image = load_frame(source, dev)
        if size is not None:
            from .dream.engine import resize

            image = resize(image, (size[1], size[0]))
    net = load_backbone(model, weights, dev)
    objective_fn = parse_objective(objective or net.default_layer, net, lambda path: load_frame(path, dev))
    result = dream(image, net, objective_fn, settings, generator)
    media.save_image(output, to_uint8(result))
    return output
