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

from .flow import Interpolation, flow_to_tensor, photometric_mask, warp
from .frames import to_tensor, to_uint8

#: ``flow(index, earlier, later)``: the flow on source frame `index` (`earlier`) pointing into the next
#: one (`later`), numpy ``(H, W, 2)`` (``uint8`` frames).
FlowBack = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


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


@dataclass
class _Path:
    """Where each pixel of a held frame is in a later one: the flows between them composed.

    Attributes:
        flow: ``(1, 2, H, W)`` on the held frame, pointing into frame `end` (pixels).
        valid: ``(1, 1, H, W)`` in [0, 1]: the source arrived intact at every step of the way.
        end: the index of the frame the path reaches.
    """

    flow: torch.Tensor
    valid: torch.Tensor
    end: int


class Lookahead:
    """Holds up to `lag` dreamed frames and releases each filled from the newest one of its shot.

    Each held frame keeps its path to the newest frame: the flows between consecutive frames composed
    as they arrive (a two-channel resampling a frame), and where the source arrived intact at every step
    (the renderer's photometric check). At release the newest frame's dream is resampled once along it,
    so the fill costs one flow, one check and one carry a frame, whatever the lag, and the dream it brings
    back is not softened by a resampling at every step.

    Args:
        lag: frames each output waits (0: released at once, unfilled).
        held: the frames waiting (a render's saved state; the list is updated in place).
        flow_back: the flow on a frame pointing into the next one (see :data:`FlowBack`).
        tolerance: the photometric check's threshold (:func:`renderer.flow.photometric_mask`).
        device: where the fill is computed.
    """

    def __init__(self, lag: int, held: list[Held], flow_back: FlowBack, tolerance: float,
                 device: torch.device) -> None:
        self.lag, self.held = lag, held
        self.flow_back, self.tolerance, self.device = flow_back, tolerance, device
        self._paths: dict[int, _Path] = {}  # by the held frame's index
        for earlier, later in zip(held, held[1:]):  # a resumed render: the paths as they were built
            self._extend(earlier, later)

    def push(self, frames: list[Held]) -> list[Held]:
        """Add dreamed frames (in order); returns those whose wait is over, filled, in order."""
        released = []
        for frame in frames:
            if self.held:
                self._extend(self.held[-1], frame)
            self.held.append(frame)
            while len(self.held) > self.lag:
                released.append(self._release())
        return released

    def flush(self) -> list[Held]:
        """Release every frame held (the render's last ones: filled from the last frame there is)."""
        return [self._release() for _ in range(len(self.held))]

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        return to_tensor(image, self.device)

    def _extend(self, newest: Held, new: Held) -> None:
        """Extend the paths that reach `newest` to the frame after it, `new` (not across a cut)."""
        if new.cut or new.source is None or newest.source is None:
            return
        step = flow_to_tensor(self.flow_back(newest.index, newest.source, new.source), self.device)
        later, earlier = self._tensor(new.source), self._tensor(newest.source)
        arrived = warp(torch.cat([later, torch.ones_like(later[:, :1])], 1), step, padding_mode="zeros")
        intact = photometric_mask(arrived[:, :3], earlier, threshold=self.tolerance) * arrived[:, 3:].clamp(0, 1)
        for path in self._paths.values():
            if path.end == newest.index:
                path.valid = path.valid * warp(intact, path.flow, padding_mode="zeros")
                path.flow = path.flow + warp(step, path.flow)
                path.end = new.index
        self._paths[newest.index] = _Path(step, intact, new.index)

    def _release(self) -> Held:
        oldest = self.held.pop(0)
        path = self._paths.pop(oldest.index, None)
        if path is None or oldest.young is None or not oldest.young.any():
            return oldest
        target = next(h for h in self.held if h.index == path.end)
        # the target's dream where it has caught up (where it is young itself it is no better than the
        # oldest frame's own), premultiplied by that share, carried back in one resampling
        mature = self._mature(target)
        dream = (self._tensor(target.frame) - self._tensor(target.source)) * mature
        carried = warp(torch.cat([dream, mature], 1), path.flow, interpolation=Interpolation.KEYS,
                       padding_mode="zeros")
        residual, valid = carried[:, :3] * path.valid, carried[:, 3:].clamp(0, 1) * path.valid
        source = self._tensor(oldest.source)
        young = 1 - self._mature(oldest)
        own = self._tensor(oldest.frame) - source
        # `residual` is premultiplied by `valid`: where the way back failed the frame keeps its own dream
        frame = source + own * (1 - young * valid) + young * residual
        return Held(oldest.index, oldest.source, to_uint8(frame.clamp_(0.0, 1.0)), oldest.young, oldest.cut)

    def _mature(self, held: Held) -> torch.Tensor:
        """``(1, 1, H, W)`` float: how far `held`'s dream has caught up (1 - young)."""
        height, width = held.frame.shape[:2]
        if held.young is None:
            return torch.ones(1, 1, height, width, device=self.device)
        return 1 - torch.from_numpy(held.young).to(self.device, torch.float32)[None, None] / 255
