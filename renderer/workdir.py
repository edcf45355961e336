"""The work folder of a render: its layout, its checkpointed state, its segments.

``OUT.dreamvid-partial/`` beside the output holds numbered segment files (or PNG folders) and
``state.pt``: what the next frame needs (the last dreamed frame, the RNG state, the colour controller's state),
the settings digest, the tile size fixed when the render started, and the frame count of every
segment that was closed *and read back*. The state is replaced atomically, and only after the segment
it counts has been verified, so at every instant (``kill -9`` included) the folder describes a valid
prefix of the render: segments on disk that the state does not count are leftovers and are removed on
resume.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import media
from .color import ColorState
from .detail import DetailState
from .lookahead import Held
from .variety import VarietyState
from .media.files import remove
from .errors import EncodeError, InputError, PresetError

STATE_FILE = "state.pt"
PARTIAL_SUFFIX = ".dreamvid-partial"
#: Frames per segment file: the most a crash (not Ctrl-C, which closes the open segment) can lose.
SEGMENT_FRAMES = 48
NEVER_TILE = -1


@dataclass
class LoopState:
    """What frame n+1 needs from frame n, and what of the render is safely on disk.

    Attributes:
        next_frame: the first frame not yet rendered (0-based).
        segment_frames: frames in each verified segment, in order (they sum to ``next_frame``, less
            the frames `held`).
        previous: the last output frame (1,3,H,W) in [0,1], or None before the first.
        color: the colour controller's state (first-frame targets, integrals): :class:`renderer.color.ColorState`.
        rng: the CPU generator state after ``next_frame - 1``.
        tile: the gradient tile side in px fixed at the render's start (``NEVER_TILE``: whole frames).
        finished: every frame is rendered; only joining the segments into the output remains.
        strength: flow mode's target dream strength (mean |dream - source| of the first frame), or None.
        detail: the sharpness controller's state (early sharpness, integral): :class:`renderer.detail.DetailState`.
        variety: the feature-mix controller's state (early and running channel shares):
            :class:`renderer.variety.VarietyState`.
        maturity: flow mode's ``(1, 1, H, W)`` share of a full dream each pixel of `previous` has had
            (see :class:`renderer.pipeline.Carried`), or None (full everywhere).
        reference: flow mode's ``(1, 3, H, W)`` source each pixel of `previous` was dreamed on (see
            :class:`renderer.pipeline.Carried`), or None (the source frame of `previous`).
        drifts: flow mode's shares of the frame the drift test dropped, one per frame, over the last
            ``DISSOLVE_FRAMES`` frames of the shot (see :data:`renderer.pipeline.DISSOLVE_SHARE`).
        settling: flow mode's frames left in which the drift test looks closer after a dissolve
            (:data:`renderer.pipeline.SETTLE_DRIFT`).
        held: flow mode's output frames dreamed but not yet written, waiting for their fill
            (:mod:`renderer.lookahead`); the segments sum to ``next_frame - len(held)``.
        loop_head: a loop's closure targets, the first pass's frames ``0 .. head-1`` as ``uint8
            (head, H, W, 3)`` on the CPU (see :mod:`renderer.loop`), or None.
    """

    next_frame: int = 0
    segment_frames: list[int] = field(default_factory=list)
    previous: torch.Tensor | None = None
    color: ColorState = field(default_factory=ColorState)
    rng: torch.Tensor = field(default_factory=lambda: torch.Generator().get_state())
    tile: int = NEVER_TILE
    finished: bool = False
    strength: float | None = None
    loop_head: torch.Tensor | None = None
    detail: DetailState = field(default_factory=DetailState)
    maturity: torch.Tensor | None = None
    reference: torch.Tensor | None = None
    drifts: list[float] = field(default_factory=list)
    settling: int = 0
    variety: VarietyState = field(default_factory=VarietyState)
    held: list[Held] = field(default_factory=list)


class WorkDir:
    """The work folder of a render to `output` (not created until :meth:`create`)."""

    def __init__(self, output: Path, fmt: media.OutputFormat) -> None:
        self.output = output
        self.fmt = fmt
        self.path = output.with_name(output.name + PARTIAL_SUFFIX)

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def has_state(self) -> bool:
        return self.state_file.is_file()

    def segment(self, index: int) -> Path:
        """Path of segment `index` (0-based); names sort in render order."""
        return self.path / f"segment_{index:05d}{self.fmt.segment_suffix}"

    def segments(self, state: LoopState) -> list[Path]:
        """The verified segments of `state`, in order."""
        return [self.segment(i) for i in range(len(state.segment_frames))]

    def create(self) -> None:
        """Make the folder (replacing an old one, which the plan allowed)."""
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir()

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    # ------------------------------------------------------------------------------------- state

    def saved_digest(self) -> str:
        """The settings digest of the saved state (to refuse resuming a different render)."""
        return str(self._read()["digest"])

    def check_resumable(self, digest: str) -> None:
        """Raise a one-line error when the saved render differs from `digest` or is damaged."""
        if self.saved_digest() != digest:
            raise PresetError(f"the unfinished render in {self.path} used different settings or input",
                              hint="run the same command as before with --resume, or pass --overwrite to start over")

    def save(self, state: LoopState, digest: str) -> None:
        """Replace the saved state atomically (a crash leaves the old one or the new one)."""
        cpu = (lambda t: None if t is None else t.detach().cpu())
        try:
            with media.atomic_path(self.state_file) as tmp:
                torch.save({"digest": digest, "next_frame": state.next_frame,
                            "segment_frames": list(state.segment_frames), "previous": cpu(state.previous),
                            "color": state.color.to_dict(),
                            "rng": state.rng, "tile": state.tile, "finished": state.finished,
                            "strength": state.strength, "loop_head": state.loop_head,
                            "detail": state.detail.to_dict(), "maturity": cpu(state.maturity),
                            "reference": cpu(state.reference), "drifts": list(state.drifts),
                            "settling": state.settling,
                            "variety": state.variety.to_dict(), "held": [h.to_dict() for h in state.held]}, tmp)
                with open(tmp, "rb") as f:  # on disk before the rename makes it the state
                    os.fsync(f.fileno())
        except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
            raise EncodeError(f"cannot save the render state in {self.path}: {str(exc).splitlines()[0]}",
                              hint="check free disk space, then run the same command with --resume") from None

    def finished(self) -> bool:
        """Whether the saved render had rendered every frame (only the joining was left)."""
        return self.has_state() and bool(self._read().get("finished", False))

    def load(self, digest: str, device: torch.device) -> LoopState:
        """The saved state, after checking the digest and every counted segment; segments written
        after the last checkpoint are removed (the render continues from the checkpoint)."""
        self.check_resumable(digest)
        saved = self._read()
        if "color" not in saved:  # saved before the colour controller: its colour state cannot be rebuilt
            raise InputError(f"the unfinished render in {self.path} was saved by an older dreamvid (no colour "
                             "controller state)", hint="pass --overwrite to start over")
        counts = [int(n) for n in saved["segment_frames"]]
        for index, expected in enumerate(counts):
            path = self.segment(index)
            found = media.count_frames(path) if path.exists() else 0
            if found != expected:
                raise InputError(f"the unfinished render in {self.path} is damaged: {path.name} has {found} of "
                                 f"{expected} frames", hint="pass --overwrite to start over")
        counted = {self.segment(i).name for i in range(len(counts))}
        for stale in self.path.glob("segment_*"):
            if stale.name not in counted:
                remove(stale)
        to = (lambda t: None if t is None else t.to(device))
        return LoopState(int(saved["next_frame"]), counts, to(saved["previous"]),
                         ColorState.from_dict(saved["color"]), saved["rng"],
                         int(saved["tile"]), bool(saved["finished"]), saved["strength"],
                         loop_head=saved.get("loop_head"), detail=DetailState.from_dict(saved.get("detail")),
                         maturity=to(saved.get("maturity")), reference=to(saved.get("reference")),
                         drifts=list(saved.get("drifts", [])),
                         settling=int(saved.get("settling", 0)), variety=VarietyState.from_dict(saved.get("variety")),
                         held=[Held.from_dict(h) for h in saved.get("held", [])])

    def commit_segment(self, state: LoopState, index: int, frames: int, digest: str) -> bool:
        """Count segment `index` into `state` and save it, if the file holds exactly `frames` frames
        (an encoder that died, or a full disk, leaves fewer: then the segment is dropped and the state
        stays at the previous checkpoint). Returns whether it was counted."""
        path = self.segment(index)
        try:
            good = frames > 0 and path.exists() and media.count_frames(path) == frames
        except EncodeError:
            good = False
        if not good:
            remove(path)
            return False
        state.segment_frames.append(frames)
        self.save(state, digest)
        return True

    def _read(self) -> dict:
        try:
            return torch.load(self.state_file, weights_only=True)
        except Exception as exc:  # truncated or foreign file: the folder cannot be trusted
            raise InputError(f"the unfinished render in {self.path} cannot be read ({type(exc).__name__})",
                             hint="pass --overwrite to start over") from exc
