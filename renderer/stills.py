"""Dreaming a single image (``dreamvid still``): load, dream or visualise, save.

Two methods:

* **dream** (DeepDream, :func:`renderer.dream.dream`): amplify what an image holds, octave by octave.
* **visualise** (feature visualisation, :func:`renderer.dream.featurevis.visualise`): make an image from
  nothing that the network sees the objective in — a class people recognise.

``auto`` picks *visualise* for noise with an objective that holds a class term, *dream* otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

import torch

from . import media
from .devices import pick_device
from .dream import DEFAULTS, DreamSettings, Objective, Precision, dream, parse_objective
from .dream.featurevis import VIS_DEFAULTS, VisSettings, visualise
from .errors import InputError
from .frames import load_frame, noise_frame, to_uint8
from .models import load_backbone
from .sources import NOISE, NOISE_SIZE


class Method(Enum):
    """How a still is made."""

    AUTO = "auto"            # visualise for noise + a class term, else dream
    DREAM = "dream"          # DeepDream: normalised gradient steps on the pixels, octaves
    VISUALISE = "visualise"  # feature visualisation: Fourier/colour parameterisation, random views, Adam


@dataclass(frozen=True)
class StillOptions:
    """What the user set for a still; None = the chosen method's default (one definition each:
    :data:`renderer.dream.DEFAULTS` for dream, :data:`renderer.dream.featurevis.VIS_DEFAULTS` for visualise).

    ``step_size`` is the mean pixel change per step for dream and Adam's learning rate for visualise;
    ``jitter`` the maximum random shift in pixels for both.
    """

    steps: int | None = None
    step_size: float | None = None
    octaves: int | None = None
    octave_scale: float | None = None
    jitter: int | None = None
    tile: int = DEFAULTS.tile
    precision: Precision = DEFAULTS.precision

    def dream_settings(self) -> DreamSettings:
        pick = lambda value, default: default if value is None else value  # noqa: E731
        return DreamSettings(steps=pick(self.steps, DEFAULTS.steps), step_size=pick(self.step_size, DEFAULTS.step_size),
                             octaves=pick(self.octaves, DEFAULTS.octaves),
                             octave_scale=pick(self.octave_scale, DEFAULTS.octave_scale),
                             jitter=pick(self.jitter, DEFAULTS.jitter), tile=self.tile, precision=self.precision)

    def vis_settings(self) -> VisSettings:
        pick = lambda value, default: default if value is None else value  # noqa: E731
        d = VIS_DEFAULTS
        return replace(d, steps=pick(self.steps, d.steps), learning_rate=pick(self.step_size, d.learning_rate),
                       octaves=pick(self.octaves, d.octaves), octave_scale=pick(self.octave_scale, d.octave_scale),
                       transforms=replace(d.transforms, jitter=pick(self.jitter, d.transforms.jitter)),
                       precision=self.precision)


def choose_method(method: Method, source: str, objective: Objective) -> Method:
    """`method`, with AUTO resolved: visualise for noise and a class term, dream otherwise."""
    if method is not Method.AUTO:
        return method
    return Method.VISUALISE if source == NOISE and "class" in objective.kinds else Method.DREAM


def dream_still(source: str, output: Path, *, objective: str | None, options: StillOptions | DreamSettings = StillOptions(),
                method: Method = Method.AUTO, seed: int = 0, size: tuple[int, int] | None = None,
                model: str = "inception5h", weights: str | None = None, device: str = "auto",
                overwrite: bool = False, progress: Callable[[int, int], None] | None = None) -> Path:
    """Dream `source` (an image path or 'noise') into the image file `output`; returns `output`.

    `size` is (width, height); the default is the input's size (NOISE_SIZE for noise). `options` may be
    full :class:`DreamSettings` (then the dream method's settings are exactly those). `progress(done,
    total)` is called after each step of the visualise method.
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise InputError(f"{output} exists", hint="pass --overwrite to replace it")
    if output.suffix.lower() not in media.IMAGE_EXTENSIONS:
        raise InputError(f"cannot write an image as {output.name!r}",
                         hint=f"use one of: {', '.join(sorted(media.IMAGE_EXTENSIONS))}")
    dev = pick_device(device)
    generator = torch.Generator().manual_seed(seed)
    start = None if source == NOISE else load_frame(source, dev)
    net = load_backbone(model, weights, dev)
    objective_fn = parse_objective(objective or net.default_layer, net, lambda path: load_frame(path, dev))
    chosen = choose_method(method, source, objective_fn)
    if start is None:
        width, height = size or NOISE_SIZE
    elif size is not None:
        width, height = size
    else:
        height, width = start.shape[-2:]
    if chosen is Method.VISUALISE:
        settings = options.vis_settings() if isinstance(options, StillOptions) else VIS_DEFAULTS
        report = None if progress is None else (lambda done, total, _score: progress(done, total))
        result = visualise(net, objective_fn, (height, width), settings, generator, init=start, progress=report)
    else:
        settings = options.dream_settings() if isinstance(options, StillOptions) else options
        if start is None:
            image = noise_frame(height, width, generator, dev)
        else:
            from .dream.engine import resize

            image = resize(start, (height, width))
        result = dream(image, net, objective_fn, settings, generator)
    media.save_image(output, to_uint8(result))
    return output
