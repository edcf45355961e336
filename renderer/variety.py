"""Holding the mix of features over long feedback renders.

A feedback zoom re-dreams its own output every frame, and over hundreds of frames one pattern can win
everywhere: fractal-zoom from a photo at 640x360 showed dogs to frame ~430, then ring systems, then one
ribbed, coiled texture over the whole frame from ~700 on (every colour and sharpness figure still passing).
What wins is whatever the dreamed layer answers most strongly, dreamed again at every scale the zoom
magnifies; a drifting zoom centre made it come sooner, so it is not the zoom's fixed point. Over a
video ``motion.follow`` prevents it by keeping the video's layout; a still image or noise has nothing
to follow.

:class:`VarietyController` acts on the cause, in the network: it watches how the dreamed layer's
energy is shared among its channels (:func:`channel_shares`, one forward pass of the output at the
look's working size per keyframe) and, once the render's early keyframes have set the mix it should
keep, weighs each channel's pull on the next keyframe by how far its share has run from that mix
(:func:`channel_gains`): a channel holding twice its early share pulls ``2 ** -variety`` as hard, one
that has faded pulls harder. It is a proportional controller on the feature histogram, as
:mod:`renderer.color` is on colour and :mod:`renderer.detail` on sharpness, and it applies to the
layers the objective dreams whole (``mixed4c``, ``mixed5a*0.6 + mixed5b*0.4``; not a class, channel,
guide or style term). Pure tensor code; the model is only run forward.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

#: Keyframes after the first (the full first dream, left out) over which the mix to keep is learnt; the
#: mean shares of the second half of them are the target, as for :mod:`renderer.detail`.
WARMUP = 24
#: Weight of the newest keyframe in the running shares the gains are computed from (a time constant of
#: about four keyframes): one frame's noise does not make the pull flicker.
SMOOTHING = 0.25
#: Added to every share, as a fraction of the mean share (1 / C), before shares are compared: a channel
#: that was near silent early is not pushed up by large, noisy ratios.
FLOOR = 0.25
#: The gains' range: no channel is silenced, none pulls more than four times its plain weight.
GAIN_RANGE = (0.25, 4.0)


def channel_shares(activations: torch.Tensor) -> torch.Tensor:
    """How a layer's energy is shared among its channels: ``(1, C, h, w)`` activations -> ``(C,)``
    float32 summing to 1, channel c's mean square over the sum of all (what a whole-layer objective,
    a mean square, is made of)."""
    energy = activations.float().pow(2).mean((0, 2, 3))
    return energy / energy.sum().clamp_min(1e-12)


def channel_gains(target: torch.Tensor, recent: torch.Tensor, exponent: float) -> torch.Tensor:
    """Per-channel weights ``(C,)`` of a layer's energy in the objective, from the `target` and `recent`
    shares (both ``(C,)``, summing to 1): ``((target + f) / (recent + f)) ** exponent`` with ``f`` =
    :data:`FLOOR` / C, clamped to :data:`GAIN_RANGE`, then scaled so the layer's energy keeps its total
    weight (``sum(gain * recent) = 1``): only the mix changes, not how hard the layer is dreamed."""
    floor = FLOOR / target.numel()
    gains = ((target + floor) / (recent + floor)).pow(exponent).clamp(*GAIN_RANGE)
    return gains / (gains * recent).sum().clamp_min(1e-12)


@dataclass
class LayerHistory:
    """One layer's record: the summed shares of the settled early keyframes, and the running shares.

    Attributes:
        seen: keyframes observed (the first, the full first dream, is not part of the target).
        early: sum of the shares of keyframes ``WARMUP // 2 + 1 .. WARMUP``, ``(C,)`` (None before).
        recent: running shares, ``(C,)`` (None before the first keyframe).
    """

    seen: int = 0
    early: torch.Tensor | None = None
    recent: torch.Tensor | None = None

    @property
    def target(self) -> torch.Tensor | None:
        """The shares held, once the early keyframes are in."""
        if self.seen <= WARMUP or self.early is None:
            return None
        return self.early / self.early.sum()

    def observe(self, shares: torch.Tensor) -> None:
        shares = shares.detach().cpu()
        self.recent = shares if self.recent is None else torch.lerp(self.recent, shares, SMOOTHING)
        if WARMUP // 2 < self.seen <= WARMUP:
            self.early = shares.clone() if self.early is None else self.early + shares
        self.seen += 1


@dataclass
class VarietyState:
    """The controller's memory, saved in a render's checkpoint so a resumed render continues exactly:
    a :class:`LayerHistory` per dreamed layer (a layer a scheduled objective brings in later learns its
    own mix from its own first keyframes)."""

    layers: dict[str, LayerHistory] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {name: {"seen": h.seen, "early": h.early, "recent": h.recent} for name, h in self.layers.items()}

    @classmethod
    def from_dict(cls, saved: dict | None) -> VarietyState:
        return cls({name: LayerHistory(int(h["seen"]), h["early"], h["recent"]) for name, h in (saved or {}).items()})


class VarietyController:
    """Weighs the dreamed layers' channels so their mix stays at the early keyframes' (module docstring).

    Per keyframe: :meth:`gains` before dreaming (None: nothing to change yet), :meth:`observe` after."""

    def gains(self, state: VarietyState, layers: Collection[str], exponent: float,
              device: torch.device) -> dict[str, torch.Tensor] | None:
        """``{layer: (C,) gain}`` for the layers of `layers` whose target is learnt; None when none is
        or `exponent` (``dream.variety``) is 0."""
        if exponent <= 0.0:
            return None
        gains = {}
        for name in layers:
            history = state.layers.get(name)
            target = None if history is None else history.target
            if target is not None:
                gains[name] = channel_gains(target, history.recent, exponent).to(device)
        return gains or None

    def observe(self, frame: torch.Tensor, model: nn.Module, layers: Collection[str], working_size: int,
                state: VarietyState, dtype: torch.dtype | None = None) -> None:
        """Record the channel shares of the output keyframe ``(1, 3, H, W)`` at `layers`, measured with the
        short side at `working_size` (the look's scale; 0: the frame's own), the network run in the
        dream's arithmetic (`dtype`: its autocast dtype, None for fp32)."""
        if not layers:
            return
        short = min(frame.shape[-2:])
        if working_size > 0 and working_size != short:
            frame = F.interpolate(frame, scale_factor=working_size / short, mode="bilinear", antialias=True,
                                  align_corners=False)
        with torch.no_grad(), torch.autocast(frame.device.type, dtype=dtype or torch.float32,
                                             enabled=dtype is not None):
            acts = model(frame, layers)
        for name in layers:
            state.layers.setdefault(name, LayerHistory()).observe(channel_shares(acts[name]))


__all__ = ["FLOOR", "GAIN_RANGE", "SMOOTHING", "WARMUP", "LayerHistory", "VarietyController", "VarietyState",
           "channel_gains", "channel_shares"]
