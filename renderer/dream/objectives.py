"""Dream objectives: what gradient ascent on the image maximises.

An :class:`Objective` is a small callable over a dict of activations ``{layer: tensor}`` returning a
scalar tensor (bigger = more dream). Objectives compose with ``+``, ``-`` and scalar ``*``, and
:func:`parse_objective` builds them from strings (lucent's style):

    mixed4c                      whole layer: mean of squared activations (the classic "L2" DeepDream)
    mixed4d:97                   one channel: its mean activation
    mixed4c*0.6 + mixed5a*0.4    weighted blends (weights are relative to each term's natural scale)
    class:banana  class:954      a class's log-probability (name matched against the class names)
    guide:photo.jpg[@layer]      guided dreaming: at each position, the best dot product with any
                                 feature of the guide image (Mordvintsev); layer defaults to the model's

Subtraction needs a space before ``-`` when the term before it is a class or guide (names and paths
may contain hyphens): ``class:banana - mixed3a``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError

Activations = Mapping[str, torch.Tensor]


class Objective:
    """A differentiable score of activations. ``layers`` are the layers it reads (the model is
    truncated after the deepest). ``fn(acts) -> (B,)`` per-image scores; calling returns their sum."""

    def __init__(self, fn: Callable[[Activations], torch.Tensor], layers: frozenset[str], description: str):
        self.fn = fn
        self.layers = layers
        self.description = description

    def __call__(self, acts: Activations) -> torch.Tensor:
        return self.fn(acts).sum()

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(lambda a: self.fn(a) + other.fn(a), self.layers | other.layers,
                         f"{self.description} + {other.description}")

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-1.0) * other

    def __mul__(self, weight: float) -> "Objective":
        weight = float(weight)
        return Objective(lambda a: weight * self.fn(a), self.layers, f"{weight:g}*{self.description}")

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return -1.0 * self

    def __repr__(self) -> str:
        return f"Objective({self.description})"


def layer(name: str) -> Objective:
    """The whole layer: mean of squared activations (the gradient is the activation itself)."""
    return Objective(lambda a: a[name].pow(2).flatten(1).mean(1), frozenset([name]), name)


def channel(name: str, index: int) -> Objective:
    """One channel's mean activation."""
    return Objective(lambda a: a[name][:, index].flatten(1).mean(1), frozenset([name]), f"{name}:{index}")


def class_logit(logits_layer: str, index: int, label: str) -> Objective:
    """A class's log-probability (log-softmax of the logits). Raising the bare logit also raises every
    other class's and often leaves the image ambiguous; the log-probability makes it *that* class."""
    return Objective(lambda a: a[logits_layer].log_softmax(-1)[:, index], frozenset([logits_layer]),
                     f"class:{label}")


def guide(name: str, features: torch.Tensor, label: str) -> Objective:
    """Guided dreaming. `features` (C, N): the guide image's activations at layer `name`, one column per
    position. Each dream position is pulled toward the guide feature it already matches best."""

    def score(acts: Activations) -> torch.Tensor:
        x = acts[name].flatten(2).transpose(1, 2)              # (B, hw, C)
        best = (x @ features.to(x.dtype)).amax(dim=2)            # (B, hw)
        return best.mean(1)

    return Objective(score, frozenset([name]), f"guide:{label}@{name}")


# ----------------------------------------------------------------------------------------------------
# Parsing

_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_END_OF_VALUE = rf"(?=\s*(?:\+|\s-\s|\*\s*{_NUMBER}\s*(?:[-+]|$))|\s*$)"
_TERM = re.compile(
    rf"\s*(?P<sign>[-+])?\s*(?:(?P<w1>{_NUMBER})\s*\*\s*)?"
    rf"(?:(?P<kind>class|guide):\s*(?P<value>.+?){_END_OF_VALUE}|(?P<layer>[A-Za-z_][\w.]*)(?::(?P<ch>\d+))?)"
    rf"(?:\s*\*\s*(?P<w2>{_NUMBER}))?\s*"
)

ImageLoader = Callable[[str], torch.Tensor]


def _class_index(model: nn.Module, value: str) -> tuple[int, str]:
    names: Sequence[str] = model.class_names()
    if value.isdigit():
        index = int(value)
        if not 0 <= index < len(names):
            raise ModelError(f"class index {index} out of range", hint=f"use 0..{len(names) - 1} for {model.name}")
        return index, names[index].split(",")[0]
    wanted = value.strip().lower()
    for index, entry in enumerate(names):
        if wanted in (s.strip().lower() for s in entry.split(",")):
            return index, entry.split(",")[0]
    close = [n.split(",")[0] for n in names if wanted in n.lower()][:5]
    raise ModelError(f"unknown class {value!r} for {model.name}",
                     hint=f"did you mean: {', '.join(close)}" if close else "use a class name or index (0-based logit index)")


def _check_layer(model: nn.Module, name: str) -> None:
    if name not in model.layer_names():
        main = [n for n in model.layer_names() if "_pre_relu" not in n]
        raise ModelError(f"unknown layer {name!r} for {model.name}",
                         hint=f"valid layers: {', '.join(main)}" + (" (and *_pre_relu branch layers)"
                                                                    if len(main) < len(model.layer_names()) else ""))


def _guide_features(model: nn.Module, image: torch.Tensor, name: str, max_side: int = 512) -> torch.Tensor:
    """(1,3,H,W) guide image -> (C, N) features at `name`, computed once without grad."""
    scale = min(1.0, max_side / max(image.shape[-2:]))
    if scale < 1.0:
        image = F.interpolate(image, scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        return model(image, [name])[name][0].flatten(1)


def parse_objective(text: str, model: nn.Module, load_image: ImageLoader | None = None) -> Objective:
    """Parse an objective string (grammar in the module docstring) for `model`.

    Args:
        load_image: reads a guide image path into (1,3,H,W) RGB [0,1]; needed only for ``guide:``.
    Raises:
        ModelError naming the bad part (unknown layer/class, malformed string).
    """
    text = text.strip()
    if not text:
        raise ModelError("empty objective", hint="e.g. --objective mixed4c or mixed4d:97 or class:banana")
    pos, total = 0, None
    while pos < len(text):
        match = _TERM.match(text, pos)
        if match is None or match.end() == pos or (total is not None and not match["sign"]):
            raise ModelError(f"malformed objective {text!r} at character {pos + 1} ({text[pos:pos + 12]!r})",
                             hint="write terms like mixed4c, mixed4d:97, class:banana, guide:img.jpg joined by + or -,"
                                  " each optionally times a number")
        term = _build_term(match, model, load_image)
        for w in (match["w1"], match["w2"]):
            if w is not None:
                term = float(w) * term
        if match["sign"] == "-":
            term = -term
        total = term if total is None else total + term
        pos = match.end()
    return total


def _build_term(match: re.Match, model: nn.Module, load_image: ImageLoader | None) -> Objective:
    kind, value = match["kind"], (match["value"] or "").strip()
    if kind == "class":
        index, label = _class_index(model, value)
        return class_logit(model.logits_layer, index, label)
    if kind == "guide":
        path, _, name = value.partition("@")
        name = name.strip() or model.default_layer
        _check_layer(model, name)
        if load_image is None:
            raise ModelError("guide objectives need an image loader")
        return guide(name, _guide_features(model, load_image(path.strip()), name), path.strip())
    name = match["layer"]
    _check_layer(model, name)
    if match["ch"] is None:
        return layer(name)
    index = int(match["ch"])
    with torch.no_grad():
        probe = torch.zeros(1, 3, 224, 224, device=next(model.parameters()).device)
        channels = model(probe, [name])[name].shape[1]
    if index >= channels:
        raise ModelError(f"channel {index} out of range for {name}", hint=f"{name} has channels 0..{channels - 1}")
    return channel(name, index)
