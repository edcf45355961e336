"""Flow mode's fixed-lag fill: each output frame waits ``flow.lookahead`` frames before it is written,
and where its dream is young (a region the carry dropped, revealed or renewed, still catching up with
the dream around it) it shows the dream that region has by then, carried back along the flow.

A dropped region is dreamed again over ``flow.catch_up`` keyframes, so its dream grows in front of the
viewer: a weaker patch behind a mover that firms up frame by frame, which is change the source does not
have. Filled from a few frames later, the patch shows its caught-up dream from the start. Only the
output changes: the dream carried from frame to frame (and so the state a render resumes from) is the
one dreamed, so the fill never feeds back into itself.

The frames waiting are part of a render's saved state (:class:`Held`, ``uint8`` so that a render resumed
from a checkpoint fills exactly as the uninterrupted one does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .frames import to_tensor, to_uint8

#: ``carry(residual, valid, before, after, flow) -> (residual, valid)``: a dream residual ``(1, 3, H, W)``
#: premultiplied by its coverage ``valid`` ``(1, 1, H, W)``, carried from source frame `before` to
#: `after` (``(1, 3, H, W)``) along `flow` (numpy ``(H, W, 2)``, on `after`, pointing into `before`),
#: dropped where the source does not arrive intact.
CarryBack = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray],
                     tuple[torch.Tensor, torch.Tensor]]
#: ``flow(later, earlier)``: the flow on source frame `earlier` pointing into `later` (``uint8`` frames).
FlowBack = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Held:
    """A dreamed frame waiting to be filled and written.

    Attributes:
        index: the frame's index in the render.
        source: ``uint8 (H, W, 3)`` source frame (None: no source, noise).
        frame: ``uint8 (H, W, 3)`` the dreamed output frame.
        young: ``uint8 (H, W)``: 255 x how far each pixel's dream is from caught up (1 - maturity);
            None: caught up everywhere.
        cut: the frame starts a new shot; nothing carries back across it.
    """

    index: int
    source: np.ndarray | None
    frame: np.ndarray
    young: np.ndarray | None
    cut: bool = False

    def to_dict(self) -> dict:
        """Tensors and plain values only (a render's state is loaded with ``weights_only``)."""
        tensor = (lambda a: None if a is None else torch.from_numpy(a))
        return {"index": self.index, "source": tensor(self.source), "frame": tensor(self.frame),
                "young": tensor(self.young), "cut": self.cut}

    @classmethod
    def from_dict(cls, saved: dict) -> Held:
        array = (lambda t: None if t is None else t.numpy())
        return cls(int(saved["index"]), array(saved["source"]), array(saved["frame"]), array(saved["young"]),
                   bool(saved["cut"]))


def young_map(maturity: torch.Tensor | None) -> np.ndarray | None:
    """``uint8 (H, W)`` 255 x (1 - `maturity`) from a ``(1, 1, H, W)`` maturity (None: all mature)."""
    if maturity is None:
        return None
    return (255 * (1 - maturity[0, 0].clamp(0, 1))).round().to(torch.uint8).cpu().numpy()


class Lookahead:
    """Holds up to `lag` dreamed frames and releases each filled from the newest one held.

    Args:
        lag: frames each output waits (0: released at once, unfilled).
        held: the frames waiting (a render's saved state; the list is updated in place).
        carry_back: carries a residual from one source frame to the frame before (see :data:`CarryBack`).
        flow_back: the flow on a frame pointing into the next one (see :data:`FlowBack`).
        device: where the fill is computed.
    """

    def __init__(self, lag: int, held: list[Held], carry_back: CarryBack, flow_back: FlowBack,
                 device: torch.device) -> None:
        self.lag, self.held = lag, held
        self.carry_back, self.flow_back, self.device = carry_back, flow_back, device
        self._flows: dict[int, np.ndarray] = {}  # index j -> flow on frame j into frame j+1

    def push(self, frames: list[Held]) -> list[Held]:
        """Add dreamed frames (in order); returns those whose wait is over, filled, in order."""
        self.held.extend(frames)
        released = []
        while len(self.held) > self.lag:
            released.append(self._release())
        return released

    def flush(self) -> list[Held]:
        """Release every frame held (the render's last ones: filled from the last frame there is)."""
        return [self._release() for _ in range(len(self.held))]

    def _release(self) -> Held:
        oldest = self.held[0]
        filled = self._filled(self.held)
        self.held.pop(0)
        self._flows.pop(oldest.index, None)
        return filled

    @staticmethod
    def _mature(held: Held, device: torch.device) -> torch.Tensor:
        """``(1, 1, H, W)`` float: how far `held`'s dream has caught up (1 - young)."""
        height, width = held.frame.shape[:2]
        if held.young is None:
            return torch.ones(1, 1, height, width, device=device)
        return 1 - torch.from_numpy(held.young).to(device, torch.float32)[None, None] / 255

    def _filled(self, held: list[Held]) -> Held:
        """``held[0]`` with its young pixels showing the dream of the last frame held before any cut,
        carried back to it."""
        cut = next((k for k in range(1, len(held)) if held[k].cut), len(held))
        held = held[:cut]  # the shot after a cut has another dream
        oldest, newest = held[0], held[-1]
        if len(held) == 1 or oldest.young is None or not oldest.young.any():
            return oldest
        to = (lambda image: to_tensor(image, self.device))
        # Carried back: the newest frame's dream where it has caught up (where it is young itself, it is no
        # better than the oldest frame's own), premultiplied by that share.
        valid = self._mature(newest, self.device)
        residual = (to(newest.frame) - to(newest.source)) * valid
        for later, earlier in zip(held[:0:-1], held[-2::-1]):
            flow = self._flows.get(earlier.index)
            if flow is None:
                flow = self._flows[earlier.index] = self.flow_back(later.source, earlier.source)
            residual, valid = self.carry_back(residual, valid, to(later.source), to(earlier.source), flow)
        source = to(oldest.source)
        young = 1 - self._mature(oldest, self.device)
        own = to(oldest.frame) - source
        # `residual` is premultiplied by `valid`: where the carry back failed the frame keeps its own dream
        frame = source + own * (1 - young * valid) + young * residual
        return Held(oldest.index, oldest.source, to_uint8(frame.clamp_(0.0, 1.0)), oldest.young, oldest.cut)
