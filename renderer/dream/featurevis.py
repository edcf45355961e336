"""Feature visualisation: an image made from nothing so that a network sees an objective in it.

DeepDream (:mod:`renderer.dream.engine`) amplifies what an image already holds, with normalised
pixel steps; from noise toward a class, that gives high-frequency static the network calls "banana"
and a person does not. This is the method of lucid/lucent (Olah et al., "Feature Visualization",
Distill 2017), which gives objects people recognise:

* the image is parameterised by its decorrelated, 1/f-scaled spectrum (:mod:`renderer.dream.param`);
* each step the network sees a random view of it — shifted, zoomed, turned, and for large images a
  random crop (:mod:`renderer.dream.transforms`) — so only shapes that survive all views pay;
* Adam ascends the objective through those views (the parameterisation makes its steps "natural");
* optionally the image grows through octaves (coarse first), and a total-variation penalty smooths it.

Images are (1,3,H,W) RGB in [0,1] on the model's device. Pure tensor code: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..models import preferred_memory_format
from .engine import Precision, compute_dtype, resize
from .objectives import Objective
from .param import FourierImage
from .transforms import ViewSettings, random_view


@dataclass(frozen=True)
class VisSettings:
    """How a feature visualisation is optimised.

    Attributes:
        steps: Adam steps per octave.
        learning_rate: Adam's step in the parameterisation's units.
        octaves: number of sizes, coarse to fine, each ``octave_scale`` times the previous.
        octave_scale: size ratio between octaves (> 1).
        view: shorter side of the view the network sees, pixels (inception5h was trained at 224); an
            image larger than this is seen through random crops (see ``ViewSettings.crop``) resized to it.
        views: views per step (a batch: steadier gradients, proportionally slower).
        decay: the spectrum's 1/f exponent (0 would be plain pixels).
        contrast: hold the image's contrast at this multiple of a photograph's (None: unbounded; see
            :class:`~renderer.dream.param.FourierImage`).
        tv: weight of the total-variation penalty (0 = none); in objective units per mean |pixel step|.
        transforms: the random view (jitter, zoom, rotation, crop, border).
        precision: network arithmetic (see :class:`~renderer.dream.engine.Precision`).
    """

    # Three octaves from half the size up, 128 steps each: the coarse octave lays out one large object
    # (the network sees the whole picture small), the finer ones add its detail. One octave of 96 steps
    # tiled the picture with parts and textures of the class (benchmarks/classes.py, README).
    steps: int = 128
    learning_rate: float = 0.05
    octaves: int = 3
    octave_scale: float = 1.4
    view: int = 224
    views: int = 1
    decay: float = 1.5
    contrast: float | None = 1.0
    tv: float = 0.0
    transforms: ViewSettings = field(default_factory=ViewSettings)
    precision: Precision = Precision.AUTO


#: The one definition of the feature-visualisation defaults (``dreamvid still noise --objective class:...``).
VIS_DEFAULTS = VisSettings()

Progress = Callable[[int, int, float], None]


def _view_size(height: int, width: int, view: int) -> tuple[int, int]:
    """The view's (h, w): the image's aspect, shorter side `view` (never larger than the image)."""
    scale = min(1.0, view / min(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _total_variation(image: torch.Tensor) -> torch.Tensor:
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., :, 1:] - image[..., :, :-1]).abs().mean()


def _crop_range(height: int, width: int, settings: VisSettings) -> tuple[float, float]:
    """Crops for images larger than the view: from the whole image down to about twice the view
    (so each view sees the object at a scale between the whole picture and its detail)."""
    low, high = settings.transforms.crop
    if (low, high) != (1.0, 1.0):
        return low, high
    side = min(height, width)
    if side <= 1.5 * settings.view:
        return 1.0, 1.0
    return max(0.35, 1.5 * settings.view / side), 1.0


def visualise(model: nn.Module, objective: Objective, size: tuple[int, int], settings: VisSettings,
              generator: torch.Generator, init: torch.Tensor | None = None,
              progress: Progress | None = None) -> torch.Tensor:
    """Optimise an image of `size` (h, w) to maximise `objective`; returns (1,3,h,w) in [0,1].

    Args:
        generator: CPU generator for the initial spectrum and every view (same seed, same image).
        init: optional (1,3,H,W) starting image in [0,1] (any size: resized); default: near-grey noise.
        progress: called as ``progress(step, total_steps, score)`` after each step.
    """
    device = next(model.parameters()).device
    dtype = compute_dtype(settings.precision, device)
    height, width = size
    sizes = [(max(16, round(height / settings.octave_scale ** i)), max(16, round(width / settings.octave_scale ** i)))
             for i in reversed(range(settings.octaves))]
    image = init
    memory_format = preferred_memory_format(device)  # as the weights (dream() does the same)
    total, done = settings.steps * len(sizes), 0
    for h, w in sizes:
        param = FourierImage(h, w, decay=settings.decay, contrast=settings.contrast, generator=generator, device=device)
        if image is not None:
            param.set_image(resize(image.detach(), (h, w)))
        optimiser = torch.optim.Adam(param.parameters(), lr=settings.learning_rate)
        view_size = _view_size(h, w, settings.view)
        transforms = ViewSettings(**{**settings.transforms.__dict__, "crop": _crop_range(h, w, settings)})
        for _ in range(settings.steps):
            optimiser.zero_grad(set_to_none=True)
            image = param()
            views = torch.cat([random_view(image, view_size, transforms, generator) for _ in range(settings.views)])
            views = views.contiguous(memory_format=memory_format)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                acts = model(views, objective.layers)
            score = objective({name: a.float() for name, a in acts.items()}) / settings.views
            loss = -score
            if settings.tv > 0:
                loss = loss + settings.tv * _total_variation(image)
            loss.backward()
            optimiser.step()
            done += 1
            if progress is not None:
                progress(done, total, float(score.detach()))
        with torch.no_grad():
            image = param()
    return image.detach()
