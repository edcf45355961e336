"""The per-frame loop of a render, for each mode, with resumable state.

    decode (+ optical flow, flow mode)  ──prefetch thread──►  init ► dream ► colour ► encode
                                                               ▲
                                     previous dreamed frame ───┘

* feedback: init = transform(previous output) [mixed with the source frame by ``motion.mix``, its layout
            pulled to the source's by ``motion.follow``]
* flow:     init = source + carry * mask * warp(previous dream - previous source, flow)
            (the hallucination residual rides the source motion; where the source itself does not
            arrive intact along the flow, i.e. revealed or changed, the mask drops it), held at the
            first frame's strength (faded, or gently amplified), then dreamed with per-pixel step weights:
            ``flow.refine`` (small) where the carry is mature, ``flow.refresh`` where it was dropped, easing
            from one to the other over a few keyframes as a revealed region catches up

The first frame is dreamed fully (``dream.first_steps``/``first_octaves``), and so is the first keyframe
of each new shot in flow mode (after a cut, :mod:`renderer.cuts`, or a dissolve: ``flow.drift``), held at
the render's strength. Frames are written to segment files in a work folder beside the output; after
every segment the state needed to continue (last dream, RNG state, next frame, settings digest) is
saved, so Ctrl-C or a crash loses nothing and ``resume=True`` continues to the same result as an
uninterrupted render.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import queue
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import media
from .color import ColorController, ColorTargets
from .detail import DetailController, gaussian_blur
from .config import Mode, dump_toml
from .cuts import CUT_HISTORY, CutDetector, changed_share
from .dream import Objective, dream
from .dream.engine import compute_dtype
from .errors import DreamvidError, EncodeError, InputError
from .flow import FlowEstimator, FlowMethod, Interpolation, drift_mask, flow_to_tensor, photometric_mask, warp
from .frames import noise_frame, to_tensor, to_uint8
from .lookahead import Held, Lookahead, young_map
from .loop import LoopSpec, dissolve_field, pull, pull_weight, quantize, target_frame
from .motion import compose, resample
from .plan import RenderPlan
from .sources import Source, SourceKind
from .variety import VarietyController
from .workdir import SEGMENT_FRAMES, LoopState

Progress = Callable[[int, int], None]

#: Flow mode drops the carried dream where the previous source frame, carried along the flow, differs
#: from the current one by more than this (mean absolute difference of RGB in [0, 1]): revealed or
#: changed content. 0.05 also dropped a quarter of every frame of textured footage (grass, foliage,
#: motion blur: bunny 27 %, bikes 31 % a frame, where true disocclusions are a few per cent), which was
#: then re-dreamed weaker: the strength faded (bunny 0.042 -> 0.027 in 48 frames). At 0.1: 13 % and 20 %.
PHOTOMETRIC_TOLERANCE = 0.1
#: The drift test (``flow.drift``, :func:`renderer.flow.drift_mask`) compares blocks of 1/60 of the
#: frame's short side (3 px at 180): fine enough for the shapes a dream grows on, coarse enough that the
#: carried reference's resampling blur and compression noise average out.
DRIFT_SIDE = 60
#: When the drift test has dropped this share of the frame over the last ``DISSOLVE_FRAMES`` frames, the
#: picture is turning into another (a dissolve, a fade through black) and the frame is treated as a cut.
#: Without it the dream dropped pixel by pixel was dreamed again on a picture half way through the change,
#: and where both pictures share a colour the old dream stayed. Measured at 320x180 with ``flow.drift =
#: 0.12``: a 10-frame dissolve drops up to 0.16 of the frame a frame, a 22-frame one 0.05, a fade through
#: black 0.12; the busiest frames of bunny, vtest and the street shot 0.003-0.004 (0.03 over 8 frames).
DISSOLVE_SHARE = 0.25
DISSOLVE_FRAMES = 8
#: For ``DISSOLVE_FRAMES`` frames after a dissolve has opened a new dream, the drift test drops what has
#: changed by this share of ``flow.drift``: the dissolve goes on after it is recognised, and what is left
#: of the old picture fades under the new dream. At the full tolerance a dog dreamed on the rabbit's
#: fading outline (opened when a fifth of it was left) stayed on the grass to the end; at 0.4 of it the
#: rest of the dissolve is dreamed again as it clears.
SETTLE_DRIFT = 0.4
#: ``motion.follow`` compares layouts at this many pixels on the short side, blurred by one: a Gaussian
#: of about 1/60 of the frame's short side at any size (6 px at 360).
LAYOUT_SIDE = 60


class RenderInterrupted(DreamvidError):
    """Ctrl-C during a render: the state is saved and the render can be resumed."""

    exit_code = 130


# ----------------------------------------------------------------------------------------- frame steps

@dataclass
class FrameInput:
    """One decoded source frame and, in flow mode, its backward flow into the previous source frame."""

    index: int
    image: np.ndarray | None                   # uint8 (H,W,3), None for noise
    flow: np.ndarray | None = None  # (H,W,2) pixels: where each pixel of this frame was in the previous one
    previous_image: np.ndarray | None = None
    cut: bool = False  # flow mode: this frame starts a new shot (renderer.cuts), nothing of the last carries


@dataclass
class Carried:
    """A dream residual carried along the motion, premultiplied by how much of it arrived.

    Attributes:
        residual: ``(1, 3, H, W)`` dream minus source, already multiplied by `valid`.
        valid: ``(1, 1, H, W)`` in [0, 1]: the share of each pixel that was carried intact.
        maturity: ``(1, 1, H, W)`` in [0, 1]: how much of a full dream each pixel's residual has had
            (1 = the first frame's; a revealed pixel starts at 0 and gains ``1 / flow.catch_up``
            per keyframe dreamed), carried and masked with it.
        reference: ``(1, 3, H, W)``: the source frame each pixel's residual was dreamed on, carried with
            it (where the carry was dropped, the frame it is on), for :func:`renderer.flow.drift_mask`.
        drifted: the share of the frame the drift test dropped in the step that carried it here.
    """

    residual: torch.Tensor
    valid: torch.Tensor
    maturity: torch.Tensor
    reference: torch.Tensor
    drifted: float = 0.0

    @classmethod
    def start(cls, dream: torch.Tensor, source: torch.Tensor, maturity: torch.Tensor | None = None,
              reference: torch.Tensor | None = None) -> Carried:
        """The residual of keyframe `dream` over its `source`, all of it valid; `maturity` None: full;
        `reference` None: dreamed on `source`."""
        valid = torch.ones_like(source[:, :1])
        return cls(dream - source, valid, valid if maturity is None else maturity,
                   source if reference is None else reference)

    def dropped(self, on: torch.Tensor) -> Carried:
        """Nothing of it arrives on source frame `on` (a shot cut), which is what will be dreamed on there."""
        return Carried(torch.zeros_like(self.residual), torch.zeros_like(self.valid),
                       torch.zeros_like(self.maturity), on)


def at_strength(frame: torch.Tensor, source: torch.Tensor, strength: float) -> torch.Tensor:
    """`frame` with its dream (``frame - source``) scaled to mean absolute `strength` ([0, 1] units)."""
    residual = frame - source
    held = float(residual.abs().mean())
    return frame if held <= 0.0 else (source + residual * (strength / held)).clamp_(0.0, 1.0)


def tween(before: Carried, after: Carried, t: float) -> torch.Tensor:
    """The residual of a frame between two keyframes, a share `t` of the way to the second: the
    carries blended by `t` and by where each arrived, so a region one of them lost (revealed since
    the first keyframe, hidden by the second) takes the other's dream at full strength."""
    weight = (1 - t) * before.valid + t * after.valid
    return ((1 - t) * before.residual + t * after.residual) / weight.clamp_min(0.2)


class FrameDreamer:
    """Dreams a render's frames group by group: each group ends on a keyframe, which is dreamed; the
    frames before it (``cadence`` > 1) are tweened between the previous keyframe and this one, both
    carried along the motion (Deforum's "cadence"; k = 1 dreams every frame)."""

    def __init__(self, plan: RenderPlan, tile: int) -> None:
        self.plan, self.tile = plan, tile
        self.source = plan.source
        self.device = plan.device
        self.mode = plan.preset.mode
        self.timeline = plan.timeline
        # A still image would sit unzoomed on top of the zoom: only moving sources are mixed in.
        self.mixes_source = plan.source.kind in (SourceKind.VIDEO, SourceKind.FOLDER)
        # Tweening needs the flow the other way (frame j into frame j+1); a second estimator, since the
        # prefetch thread owns the first.
        self.estimator = FlowEstimator(plan.preset.flow.method) if self.mode is Mode.FLOW else None
        self.loop = plan.loop
        self.dissolve = None if self.loop is None else dissolve_field(self.source.height, self.source.width,
                                                                      self.loop.seed, self.device)
        color = plan.preset.color
        self.color = ColorController(color.coherence, color.space, color.knee, self.mixes_source)
        self.detail = DetailController()
        self.variety = VarietyController()
        #: flow mode: how far from caught up each frame of the last group is, for :mod:`renderer.lookahead`
        self.young: list[np.ndarray | None] = []
        self.lookahead = plan.preset.flow.lookahead if self.mode is Mode.FLOW and self.loop is None else 0
        # flows on frame j into frame j+1 that the tweens computed, kept for the lookahead (by j)
        self._flows_to_next: dict[int, np.ndarray] = {}

    def is_keyframe(self, index: int, state: LoopState) -> bool:
        """Whether frame `index` ends the group that starts after the last keyframe (``next_frame - 1``)."""
        if state.previous is None:
            return True
        if self.loop is not None and (index >= self.loop.period - 1 or index == self.loop.head - 1):
            return True  # the wrap dreams every frame; the head and the first pass end on keyframes
        last = state.next_frame - 1
        return index >= last + self.timeline.frame(last).cadence

    def objective(self, weights: list[tuple[str, float]]) -> Objective:
        parts = [self.plan.objectives[text] if w == 1.0 else w * self.plan.objectives[text] for text, w in weights]
        return sum(parts[1:], parts[0])

    def group(self, items: list[FrameInput], state: LoopState, generator: torch.Generator) -> list[torch.Tensor]:
        """Output frames for `items` (consecutive; the last is a keyframe), each ``(1, 3, H, W)`` in [0, 1]."""
        frames = self._group(items, state, generator)
        return frames if self.loop is None else self._loop_settle(items, frames, state)

    def _group(self, items: list[FrameInput], state: LoopState, generator: torch.Generator) -> list[torch.Tensor]:
        self.young = [None] * len(items)
        if state.previous is None:
            (item,) = items
            source = self._source(item)
            init = source if source is not None else noise_frame(self.source.height, self.source.width,
                                                                 generator, self.device)
            frame = self._dream(item.index, init, None, source, state, generator, opening=True)
            if self.mode is Mode.FLOW and item.index > 0:
                frame = self._open_span(frame, source, state)
            return [frame]
        if self.mode is Mode.FLOW:
            return self._flow_group(items, state, generator)
        return self._feedback_group(items, state, generator)

    def _source(self, item: FrameInput) -> torch.Tensor | None:
        return None if item.image is None else to_tensor(item.image, self.device)

    def _dream(self, index: int, init: torch.Tensor, weight: torch.Tensor | None, source: torch.Tensor | None,
               state: LoopState, generator: torch.Generator, opening: bool = False) -> torch.Tensor:
        """Dream keyframe `index` from `init` (per-pixel step `weight`), its layers' channels weighed to hold
        their early mix, then hold its sharpness and colours to their targets (the variety, detail and
        colour controllers, whose states ride in `state.variety`, `state.detail`, `state.color`; detail
        first, since sharpening also adds a little contrast).

        `opening`: the frame starts a dream (a render's or span's first frame, a new shot) and is dreamed
        in full, with ``dream.first_steps`` and ``first_octaves`` (and the frame's own objective and step
        size). A span's opening used to be dreamed as a region whose carry failed is: without the coarse
        octaves that dream was finer, the carry wore it down faster (5 % a keyframe against 3 % for the
        render's own on the crossing scene), and the span ran at 0.65 of the render's strength."""
        init = self._loop_pull(index, init, state)
        settings = self.timeline.frame(index)
        dream_settings = dataclasses.replace(settings.dream, tile=self.tile)
        if opening:
            first = self.plan.preset.dream
            dream_settings = dataclasses.replace(dream_settings, steps=first.first_steps, octaves=first.first_octaves)
        objective = self.objective(settings.objective)
        gains = self.variety.gains(state.variety, objective.whole, settings.variety, self.device)
        if gains is not None:
            objective = objective.with_gains(gains)
        frame = dream(init, self.plan.model, objective, dream_settings, generator, weight)
        if state.strength is None and source is not None:
            state.strength = float((frame - source).abs().mean())  # what flow mode holds the dream to
        targets = ColorTargets(settings.color_match, settings.color_brightness, settings.color_contrast,
                               settings.color_saturation)
        frame = self.detail(frame, settings.color_detail, state.detail)
        frame = self.color(frame, source, targets, state.color)
        if settings.variety > 0.0:
            self.variety.observe(frame, self.plan.model, objective.whole, settings.dream.working_size, state.variety,
                                 compute_dtype(settings.dream.precision, self.device))
        return frame

    # ------------------------------------------------------------------------------------------ loop

    def _loop_pull(self, index: int, init: torch.Tensor, state: LoopState) -> torch.Tensor:
        """Before dreaming wrap frame `index`: dissolve its init toward the first pass's frame of the same
        index (see :mod:`renderer.loop`); other frames are left as they are."""
        if self.loop is None or not self.loop.is_wrap(index):
            return init
        target = target_frame(state.loop_head, index - self.loop.period, self.device)
        return pull(init, target, pull_weight(self.loop.progress(index), self.dissolve))

    def _loop_settle(self, items: list[FrameInput], frames: list[torch.Tensor], state: LoopState) -> list[torch.Tensor]:
        """Keep the first pass's head frames as the closure's targets; settle a dreamed wrap frame onto its
        target where the dissolve has passed (all of it on the last, which hands over to the first pass)."""
        loop = self.loop
        for item, frame in zip(items, frames):
            if item.index < loop.head:
                if state.loop_head is None:
                    state.loop_head = torch.zeros(loop.head, *frame.shape[2:], 3, dtype=torch.uint8)
                state.loop_head[item.index] = quantize(frame)
        if not loop.is_wrap(items[-1].index):
            return frames
        (item,), (frame,) = items, frames  # the wrap dreams every frame
        target = target_frame(state.loop_head, item.index - loop.period, self.device)
        return [pull(frame, target, pull_weight(loop.progress(item.index), self.dissolve) ** 3)]

    # -------------------------------------------------------------------------------------- feedback

    def _feedback_group(self, items: list[FrameInput], state: LoopState,
                        generator: torch.Generator) -> list[torch.Tensor]:
        height, width = self.source.height, self.source.width
        steps = [self.timeline.frame(item.index).motion.per_frame(self.source.fps) for item in items]
        sources = [self._source(item) for item in items]
        # The source frame of the last keyframe: its share of that frame rides the zoom with the dream
        # and is swapped for the current source frame (see _mix).
        mixing = self.mixes_source and items[0].previous_image is not None
        last_source = to_tensor(items[0].previous_image, self.device) if mixing else None
        key_index = items[-1].index
        whole = compose(steps, height, width, device=self.device)
        # Evened out: fed back frame after frame, the zoom's centre lines would otherwise pile up detail. The
        # source's share rides along in the same resampling (one grid, one evening).
        moved = resample(state.previous if not mixing else torch.cat([state.previous, last_source], 1), whole,
                         even=True)[0]
        init, carried_source = (moved[:, :3], moved[:, 3:]) if mixing else (moved, None)
        key = self._dream(key_index, self._mix(init, carried_source, sources[-1], key_index), None, sources[-1],
                          state, generator)
        frames = []
        for j, item in enumerate(items[:-1]):
            # Frame j is the last keyframe moved j+1 steps on, and this keyframe moved back the rest.
            forward = compose(steps[:j + 1], height, width, device=self.device)
            backward = torch.linalg.inv(compose(steps[j + 1:], height, width, device=self.device))
            t = (j + 1) / len(items)
            blend = _between(state.previous, key, forward, backward, t)
            carried_source = _between(last_source, sources[-1], forward, backward, t) if mixing else None
            frames.append(self._mix(blend, carried_source, sources[j], item.index))
        return frames + [key]

    def _mix(self, frame: torch.Tensor, carried_source: torch.Tensor | None, source: torch.Tensor | None,
             index: int) -> torch.Tensor:
        """Show the current source frame through the zoom at ``motion.mix`` and pull the frame's layout
        toward it by ``motion.follow`` (moving sources only).

        Every frame holds the source at that share, moved along with the dream; it is swapped for the
        current source frame (``frame + mix * (source - carried_source)``) rather than blended on top,
        which would keep zoomed copies of every earlier source frame (a ghost: with mix 0.15 the frame
        before last stayed at 0.13, the one before at 0.11, ...). Only the first frame after the start
        has no carried source, and blends. The swap alone does not hold the source in the picture: the
        dream re-dreams that share too, and over hundreds of frames of a zoom the picture loses the
        video and settles into one texture grown from the zoom's centre (see :func:`follow_layout`)."""
        settings = self.timeline.frame(index)
        if source is None or not self.mixes_source:
            return frame
        if settings.mix > 0.0:
            frame = (torch.lerp(frame, source, settings.mix) if carried_source is None
                     else (frame + settings.mix * (source - carried_source)).clamp_(0.0, 1.0))
        share = follow_share(settings.follow, self.source.fps)
        if share <= 0.0:
            return frame
        return follow_layout(frame, source, carried_source, settings.mix, share)

    # ------------------------------------------------------------------------------------------ flow

    def _carry(self, carried: Carried, before: torch.Tensor, after: torch.Tensor, flow: np.ndarray,
               share: float, settling: bool = False) -> Carried:
        """Carry a residual from source frame `before` to `after` along `flow` (defined on `after`,
        pointing into `before`), keeping `share` of it; where the source itself does not arrive intact
        (revealed, changed: ``flow.consistency``), or has drifted from what the dream was made on
        (``flow.drift``, ``SETTLE_DRIFT`` of it while `settling` after a dissolve), the carry is dropped."""
        flow_t = flow_to_tensor(flow, self.device)
        # One resampling for residual, coverage and the source frame the consistency test compares.
        # Zeros outside the frame: what enters at an edge (a pan's new side) arrives with no coverage and
        # is dreamed afresh. Border padding stretched the edge column's dream across it in streaks that
        # the consistency test missed wherever the entering picture was smooth (a blurred background).
        warped = warp(torch.cat([carried.residual, carried.valid, carried.maturity, before, carried.reference], 1),
                      flow_t, interpolation=Interpolation.KEYS, padding_mode="zeros")
        residual, valid, maturity = warped[:, :3], warped[:, 3:4].clamp(0.0, 1.0), warped[:, 4:5].clamp(0.0, 1.0)
        # where nothing arrived (entering at an edge, dropped earlier in this group) the pixel will be
        # dreamed on this frame: its reference is this frame (the zeros from outside would read as drift
        # over the whole block beside the edge)
        reference = torch.lerp(after, warped[:, 8:], valid)
        drifted = 0.0
        if self.plan.preset.flow.consistency:
            mask = photometric_mask(warped[:, 5:8], after, threshold=PHOTOMETRIC_TOLERANCE)
            if self.plan.preset.flow.drift > 0.0:
                tolerance = self.plan.preset.flow.drift * (SETTLE_DRIFT if settling else 1.0)
                drift = drift_mask(reference, after, threshold=tolerance, side=DRIFT_SIDE)
                drifted = float((mask * (1.0 - drift) * valid).mean())  # of the dream that arrived
                mask = mask * drift
            residual, valid, maturity = residual * mask, valid * mask, maturity * mask
            reference = torch.lerp(after, reference, mask)  # a dropped pixel will be dreamed on this frame
        return Carried(share * residual, valid, maturity * valid, reference, drifted)  # premultiplied

    def flow_to_next(self, index: int, earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
        """The flow on source frame `index` (`earlier`) pointing into the next one (`later`), for the
        tweens' backward carry; kept for the lookahead, which needs the same pair once more."""
        flow = self.estimator.backward(later, earlier)
        if self.lookahead:
            self._flows_to_next[index] = flow
        return flow

    def flow_back(self, index: int, earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
        """:meth:`flow_to_next` for the lookahead (:data:`renderer.lookahead.FlowBack`): the tweens' own
        where they computed it (every pair inside a group), else computed here."""
        for old in [j for j in self._flows_to_next if j < index]:  # pairs the lookahead has passed
            del self._flows_to_next[old]
        flow = self._flows_to_next.pop(index, None)
        return self.estimator.backward(later, earlier) if flow is None else flow

    def _open_span(self, frame: torch.Tensor, source: torch.Tensor, state: LoopState) -> torch.Tensor:
        """The opening keyframe of a span that starts mid-render (dreamed in full, as frame 0 is): it
        starts at the render's strength rather than climbing to it by ``flow.hold`` a keyframe, since
        nothing is shown yet that a jump could disturb (these are warm-up frames), and catches up as a
        revealed region does (maturity ``1 / flow.catch_up``): the render it joins has refined its dream
        for many keyframes, and so does the warm-up, harder."""
        state.maturity = torch.full_like(frame[:, :1], 1.0 / self.plan.preset.flow.catch_up)
        state.reference, state.drifts, state.settling = None, [], 0
        return at_strength(frame, source, state.strength)

    def _flow_group(self, items: list[FrameInput], state: LoopState, generator: torch.Generator) -> list[torch.Tensor]:
        sources = [self._source(item) for item in items]
        befores = [to_tensor(items[0].previous_image, self.device)] + sources[:-1]
        cuts = [item.cut and self.plan.preset.flow.cuts for item in items]
        carried = Carried.start(state.previous, befores[0], state.maturity, state.reference)
        forward = []
        drifts, settling = list(state.drifts), state.settling
        for j, (item, before, after) in enumerate(zip(items, befores, sources)):
            if cuts[j]:
                settling = 0
            else:
                carried = self._carry(carried, before, after, item.flow, self.timeline.frame(item.index).carry,
                                      settling > 0)
                settling = max(settling - 1, 0)
                # a picture turning into another over a few frames (a dissolve) ends in a new shot too
                drifts = (drifts + [carried.drifted])[-DISSOLVE_FRAMES:]
                cuts[j] = self.plan.preset.flow.cuts and sum(drifts) >= DISSOLVE_SHARE
                if cuts[j]:
                    settling = DISSOLVE_FRAMES
            if cuts[j]:
                carried, drifts = carried.dropped(after), []
            forward.append(carried)
        key_item, key_source = items[-1], sources[-1]
        if any(cuts):
            # A new shot (a cut, renderer.cuts, or a dissolve into it): its dream starts afresh, as a
            # render's first frame does, at the render's strength. Frames before the cut keep the last
            # shot's dream carried forward, those after it this one's carried back; a frame between two
            # cuts of one group (a one-frame flash, cadence > 1) has neither and shows its source.
            key = self._dream(key_item.index, key_source, None, key_source, state, generator, opening=True)
            key, maturity, reference = at_strength(key, key_source, state.strength), None, None
        else:
            key, maturity = self._refined_key(key_item.index, key_source, carried, state, generator)
            # what is dreamed hard now is dreamed on this frame; the mature dream keeps its own
            reference = torch.lerp(key_source, carried.reference, carried.maturity)
        # how far from caught up each frame's dream is; a new shot's is dreamed in full
        first_cut = cuts.index(True) if any(cuts) else len(items)
        self.young = [young_map(forward[j].maturity) if j < first_cut else None for j in range(len(items))]
        frames = [key]
        backward = Carried.start(key, key_source)
        for j in range(len(items) - 2, -1, -1):
            if cuts[j + 1]:
                backward = backward.dropped(sources[j])
            else:
                flow = self.flow_to_next(items[j].index, items[j].image, items[j + 1].image)
                backward = self._carry(backward, sources[j + 1], sources[j], flow, 1.0)
            t = (j + 1) / len(items)
            frames.append((sources[j] + tween(forward[j], backward, t)).clamp_(0.0, 1.0))
        # Last, with the group complete: Ctrl-C inside it saves the state of the group before, whole.
        state.maturity, state.reference, state.drifts, state.settling = maturity, reference, drifts, settling
        return frames[::-1]

    def _refined_key(self, index: int, source: torch.Tensor, carried: Carried, state: LoopState,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Keyframe `index` of a shot: the `carried` dream over its `source`, dreamed again where the carry
        is young; returns it and the maturity its pixels will have had."""
        settings = self.timeline.frame(index)
        # Dream steps are weighted per pixel: lightly where the carried dream is mature (re-dreaming it
        # every frame is what makes flow renders flicker), hard where it is young: a revealed region is
        # dreamed at ``refresh`` and eased toward ``refine`` over ``flow.catch_up`` keyframes, so it
        # reaches the strength around it instead of staying a weaker patch behind the mover.
        maturity = carried.maturity
        weight = settings.refine * maturity + settings.refresh * (1.0 - maturity)
        # Hold the strength at the target: refining adds a little dream every keyframe, and the carry
        # loses some (resampling softens it, dropped regions restart weaker). Fade the carry when it is
        # above the target and amplify it by at most ``flow.hold`` a keyframe when below: a global,
        # temporally smooth change of contrast, but still a change of every pixel (where the carry wears
        # fast, a street shot, it is the largest part of the warping error: benchmarks/README.md).
        residual = carried.residual
        held = float(residual.abs().mean())
        if held > 0.0:
            residual = residual * min(state.strength / held, 1.0 + self.plan.preset.flow.hold)
        key = self._dream(index, (source + residual).clamp_(0.0, 1.0), weight, source, state, generator)
        return key, (maturity + 1.0 / self.plan.preset.flow.catch_up).clamp_(max=1.0)


def follow_share(lag: float, fps: float) -> float:
    """The share of the layout pulled to the source each frame for ``motion.follow`` = `lag` seconds at
    `fps`: ``1 - exp(-1 / (lag * fps))``, a first-order lag with that time constant (0 for lag 0: off).
    0.4 s at 24 fps pulls 0.099 a frame."""
    return 0.0 if lag <= 0.0 else 1.0 - math.exp(-1.0 / (lag * fps))


def layout(frame: torch.Tensor) -> torch.Tensor:
    """The broad layout of ``(1, 3, H, W)`` `frame`, ``(1, 3, h, w)`` with :data:`LAYOUT_SIDE` pixels on
    the short side: shrunk (area filter) and blurred by one pixel there, what is left of a scene's shapes,
    light and colour without its texture (a Gaussian of about 1/60 of the short side: 6 px at 360)."""
    height, width = frame.shape[-2:]
    scale = LAYOUT_SIDE / min(height, width)
    small = (max(1, round(height * scale)), max(1, round(width * scale)))
    return gaussian_blur(F.interpolate(frame, size=small, mode="area"), 1.0)


def follow_layout(frame: torch.Tensor, source: torch.Tensor, carried_source: torch.Tensor | None, mix: float,
                  share: float) -> torch.Tensor:
    """Give `frame` the current `source` frame's broad layout and fade what the dream added at that
    scale by `share` (``motion.follow``); all ``(1, 3, H, W)`` in [0, 1]; the texture above the layout
    (the dream's detail, the source's at ``mix``) is left alone.

    `frame` holds ``carried_source`` (the previous source frame, moved along with it) at `mix` in every
    band (see ``FrameDreamer._mix``, which has already swapped that share for the current frame). Here
    the rest of its layout is swapped too, ``(1 - mix) * (layout(source) - layout(carried_source))``, so
    the layout is always the current frame's: no lagging copy of an earlier one, no ghost. Then the gap
    between the frame's layout and the source's, which is the dream's own broad shading, shrinks by
    `share`. Without `carried_source` (the first frame after the start) the layout is pulled by `share`.

    Why: in a feedback zoom the zoom's centre never leaves the frame, so whatever grows there is dreamed
    again every frame and spreads outward (fractal-zoom on a video at 640x360 had filled the frame with
    rings and coils grown from the centre after about 500 frames, the video gone; with follow 0.4 s it
    still shows dogs over the video's scene at frame 700)."""
    height, width = frame.shape[-2:]

    def up(small: torch.Tensor) -> torch.Tensor:
        return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)

    target = layout(source)
    if carried_source is not None:
        frame = frame + (1.0 - mix) * up(target - layout(carried_source))
    return (frame + share * up(target - layout(frame))).clamp_(0.0, 1.0)


def _between(before: torch.Tensor, after: torch.Tensor, forward: torch.Tensor, backward: torch.Tensor,
             t: float) -> torch.Tensor:
    """A frame a share `t` of the way between two feedback keyframes: `before` moved on by the ``(3, 3)``
    theta `forward`, `after` moved back by `backward`, blended by `t` and by where each covers the frame
    (a zoomed-in keyframe moved back covers only the middle; its edge is feathered)."""
    moved_before, cover_before = resample(before, forward)
    moved_after, cover_after = resample(after, backward)
    weight_before, weight_after = (1 - t) * cover_before, t * cover_after
    total = weight_before + weight_after
    blend = (weight_before * moved_before + weight_after * moved_after) / total.clamp_min(1e-3)
    return torch.where(total > 1e-3, blend, moved_before)


# ------------------------------------------------------------------------------------------- inputs

def loop_inputs(source: Source, mode: Mode, method: FlowMethod, first: int, loop: LoopSpec) -> Iterator[FrameInput]:
    """:func:`frame_inputs` round a loop, from virtual frame `first` on: the source's frames, then its
    first ``loop.head`` frames again as frames ``period ..`` (in flow mode the first of them flows from
    the source's last frame).

    Raises:
        InputError: the video holds fewer frames than its header promised (a loop needs the count exactly).
    """
    last = None  # the image of frame period - 1, which frame period (source 0) flows from
    if first < loop.period:
        count = first
        with contextlib.closing(frame_inputs(source, mode, method, first)) as items:
            for item in items:
                yield item
                count, last = item.index + 1, item.image
        if count != loop.period:
            raise InputError(f"{source.path} gave {count} frames, not the {loop.period} its header promised, so "
                             "the loop cannot close", hint=f"pass --frames {count}")
    start = max(first - loop.period, 0)
    if mode is Mode.FLOW and start == 0 and last is None:
        with contextlib.closing(source.frames(loop.period - 1)) as frames:
            last = next(frames)
    with contextlib.closing(frame_inputs(source, mode, method, start)) as items:
        for item in items:
            if item.index >= loop.head:
                break
            if item.index == 0 and mode is Mode.FLOW:
                item = FrameInput(0, item.image, FlowEstimator(method).backward(last, item.image), last)
            yield dataclasses.replace(item, index=item.index + loop.period)


def loop_segments(segments: list[Path], counts: list[int], loop: LoopSpec) -> list[Path]:
    """The segments of a finished loop in playing order: the wrap's, then the first pass's after its
    head (the head's segments, only targets, are left out). Segments break at the head and the wrap."""
    starts = np.cumsum([0] + counts[:-1])
    wrap = [s for s, start in zip(segments, starts) if start >= loop.period]
    middle = [s for s, start in zip(segments, starts) if loop.head <= start < loop.period]
    return wrap + middle


def frame_inputs(source: Source, mode: Mode, method: FlowMethod, first: int) -> Iterator[FrameInput]:
    """Decoded frames (and in flow mode backward flows and shot cuts) from frame `first` on, each with its
    predecessor's image. The decoder seeks one frame before `first`, since frame `first` needs its
    predecessor; in flow mode ``CUT_HISTORY`` frames earlier still, so that the cuts found from `first` on
    are those a render from frame 0 finds (resumed renders and spans dream the same groups)."""
    estimator = FlowEstimator(method) if mode is Mode.FLOW else None
    cuts = CutDetector() if mode is Mode.FLOW else None
    start = max(first - 1 - (CUT_HISTORY if cuts else 0), 0)
    previous = None
    # closing(): the decoder (an ffmpeg process) is reaped when this generator is closed, not by GC.
    with contextlib.closing(source.frames(start)) as frames:
        for index, image in enumerate(frames, start):
            flow, cut = None, False
            if estimator is not None and previous is not None:
                flow = estimator.backward(previous, image)
                cut = cuts.observe(changed_share(previous, image, flow))
            if index >= first:
                yield FrameInput(index, image, flow, previous, cut)
            previous = image


class Prefetch(Iterator):
    """Runs an iterator on a background thread, `depth` items ahead (decoding and optical flow
    overlap with dreaming; OpenCV and ffmpeg release the GIL). Errors surface in the consumer.
    Use as a context manager: leaving it stops the thread, which closes the iterator (a generator
    can only be closed by the thread that runs it)."""

    _END = object()
    JOIN_S = 30.0

    def __init__(self, items: Iterator, depth: int = 4) -> None:
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._items = items
        self._thread = threading.Thread(target=self._run, daemon=True, name="dreamvid-prefetch")
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    break
            self._put(self._END)
        except BaseException as exc:  # handed to the consumer
            self._put(exc)
        finally:
            close = getattr(self._items, "close", None)
            if close:
                close()

    def _put(self, item: object) -> bool:
        """Queue `item`, waiting for room; False when the consumer closed the prefetch."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __next__(self):
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the thread and wait for it to close the iterator (and reap its decoder)."""
        self._stop.set()
        self._thread.join(timeout=self.JOIN_S)
        if self._thread.is_alive():  # a decoder stuck in a read: say so rather than hang or hide it
            warnings.warn(f"the decoding thread did not stop within {self.JOIN_S:g} s; it is left to exit with the program")


# ------------------------------------------------------------------------------------------- render

def dreamed_groups(dreamer: FrameDreamer, inputs: Iterator[FrameInput], state: LoopState,
                   generator: torch.Generator, stop: int | None = None) -> Iterator[list[Held]]:
    """Dream `inputs` group by group (each group ends on a keyframe; the source's last frame ends the
    last group), advancing `state` (``previous``, ``next_frame``, ``rng``) past each group, and yield the
    output frames ready to be written, in order: in flow mode they wait ``flow.lookahead`` frames in
    ``state.held`` (see :mod:`renderer.lookahead`), the last ones until the end. Frames from index `stop`
    on are not dreamed (None: to the end of the source)."""
    pending: list[FrameInput] = []  # frames up to the next keyframe
    lookahead = Lookahead(dreamer.lookahead, state.held, dreamer.flow_back, PHOTOMETRIC_TOLERANCE, dreamer.device)

    def dreamed() -> list[Held]:
        frames = dreamer.group(pending, state, generator)
        state.previous, state.next_frame, state.rng = frames[-1], pending[-1].index + 1, generator.get_state()
        ready = lookahead.push([Held(item.index, item.image, to_uint8(frame), young, item.cut)
                                for item, frame, young in zip(pending, frames, dreamer.young)])
        pending.clear()
        return ready

    for item in inputs:
        if stop is not None and item.index >= stop:
            break
        pending.append(item)
        if dreamer.is_keyframe(item.index, state):
            yield dreamed()
    if pending:  # the source ended between keyframes: its last frame is one
        yield dreamed()
    yield lookahead.flush()


def segment_encoding(plan: RenderPlan) -> dict[str, Any]:
    """How `plan`'s segments are encoded, as :class:`renderer.media.SegmentWriter` keywords: the quality
    (``crf``, None: the format's default) and, in flow mode, x264's psychovisual optimisations off (they
    give a carried dream a new grain in every frame: :func:`renderer.media.encode._video_args`)."""
    return {"crf": plan.preset.output.crf if plan.preset.output.crf >= 0 else None,
            "psy": plan.preset.mode is not Mode.FLOW}


def render(plan: RenderPlan, progress: Progress | None = None) -> Path:
    """Run `plan` (see :func:`renderer.plan.plan_render`); returns the output path.

    Creates the work folder (or continues the one saved, with ``plan.resume``), dreams and encodes
    the frames segment by segment, checkpointing after each verified segment, then joins the segments
    with the soundtrack into the output (atomically), saves the settings beside it and removes the
    work folder.

    Raises:
        RenderInterrupted: on Ctrl-C, after saving the state (resume with ``--resume``).
        DreamvidError: decoding, encoding or disk problems (one-line messages); the state stays resumable.
    """
    preset, work, digest = plan.preset, plan.work, plan.digest()
    if plan.resume:
        state = work.load(digest, plan.device)
    else:
        work.create()
        state = LoopState(rng=torch.Generator().manual_seed(preset.output.seed).get_state(), tile=plan.tile)
        work.save(state, digest)
    if not state.finished:
        _render_frames(plan, state, digest, progress)
    segments, n_frames = work.segments(state), state.next_frame
    if plan.loop is not None:  # the wrap plays first, then the first pass after its head
        segments, n_frames = loop_segments(segments, state.segment_frames, plan.loop), plan.loop.period
    return finish_render(plan, segments, n_frames)


def finish_render(plan: RenderPlan, segments: list[Path], n_frames: int) -> Path:
    """Join `segments` (`n_frames` frames in all) with the soundtrack into the output, atomically, save
    the settings beside it and remove the work folder; returns the output path."""
    source = plan.source
    if n_frames == 0:
        raise InputError(f"{source.path} gave no frames to render", hint="check the input and --start/--end")
    # The sound spans exactly the frames rendered (a video's frame count is only estimated up front).
    audio = source.audio and dataclasses.replace(source.audio, duration=n_frames / source.fps)
    # With resume, an existing output is this render's own, renamed into place before a crash.
    result = media.finalize(segments, plan.output, plan.format, source.fps, audio=audio,
                            overwrite=plan.overwrite or plan.resume)
    header = [f"dreamvid settings for {result.name} ({n_frames} frames at {source.fps:g} fps, "
              f"{source.width}x{source.height}, input {source.path or 'noise'})", "render again with --preset THIS_FILE"]
    with media.atomic_path(plan.settings_file) as tmp:
        tmp.write_text(dump_toml(plan.preset, header))
    plan.work.remove()
    if not plan.format.is_folder:  # frames have no preview file (and a folder's name may hold a dot)
        media.preview_path(plan.output).unlink(missing_ok=True)
    return result


def _render_frames(plan: RenderPlan, state: LoopState, digest: str, progress: Progress | None) -> None:
    """Dream frames from ``state.next_frame`` to the end of the source into segments."""
    source, preset, work = plan.source, plan.preset, plan.work
    dreamer = FrameDreamer(plan, state.tile)
    generator = torch.Generator()
    generator.set_state(state.rng)
    writer: media.SegmentWriter | None = None

    inputs = (frame_inputs(source, preset.mode, preset.flow.method, state.next_frame) if plan.loop is None
              else loop_inputs(source, preset.mode, preset.flow.method, state.next_frame, plan.loop))
    with Prefetch(inputs) as inputs:
        try:
            for frames in dreamed_groups(dreamer, inputs, state, generator):
                if writer is None:
                    writer = media.SegmentWriter(work.segment(len(state.segment_frames)), source.width,
                                                 source.height, source.fps, plan.format, **segment_encoding(plan),
                                                 intra_only=plan.loop is not None).__enter__()
                for frame in frames:
                    writer.write(frame.frame)
                if progress:
                    progress(state.next_frame, source.n_frames)
                loop_cut = plan.loop is not None and state.next_frame in (plan.loop.head, plan.loop.period)
                if writer.frames_written >= SEGMENT_FRAMES or loop_cut:  # on keyframes, where the state is whole
                    writer, closing = None, writer
                    _close_segment(closing, plan, state, digest, None)
        except BaseException as exc:
            _close_segment(writer, plan, state, digest, exc)
            if isinstance(exc, KeyboardInterrupt):
                preview = media.partial_preview(work.segments(state), plan.output, plan.format, source.fps)
                shown = f"; partial video: {preview}" if preview else ""
                raise RenderInterrupted(f"interrupted after {state.next_frame} of {source.n_frames} frames{shown}",
                                        hint="run the same command with --resume to continue") from None
            if isinstance(exc, DreamvidError):  # what was rendered is kept: say how to continue
                done = sum(state.segment_frames)
                raise type(exc)(exc.message, hint=f"{exc.hint + '; ' if exc.hint else ''}the first {done} frames "
                                f"are saved: fix this, then run the same command with --resume") from exc
            raise
        _close_segment(writer, plan, state, digest, None)
        state.finished = True
        work.save(state, digest)
    if progress:  # a header may promise a frame more than the stream holds: end the bar at what was made
        progress(state.next_frame, state.next_frame)


def _close_segment(writer: media.SegmentWriter | None, plan: RenderPlan, state: LoopState, digest: str,
                   error: BaseException | None) -> None:
    """Close the open segment and checkpoint it if it reads back complete. Without an error in flight
    a segment that does not (an encoder that died, a full disk) is an error; with one, the state
    simply stays at the last good checkpoint."""
    if writer is None:
        return
    # The frames the state accounts for: an interrupt in the middle of a group leaves more in the file,
    # which then fails the read-back check and is dropped rather than miscounted.
    frames, index = state.next_frame - len(state.held) - sum(state.segment_frames), len(state.segment_frames)
    try:
        writer.__exit__(type(error) if error else None, error, None)
    except EncodeError:
        if error is None:
            raise
    if frames and not plan.work.commit_segment(state, index, frames, digest) and error is None:
        raise EncodeError(f"segment {writer.path} was not written completely",
                          hint="check free disk space, then run the same command with --resume")


# -------------------------------------------------------------------------------------------- spans

def span_seed(seed: int, start: int) -> int:
    """The random seed of a span that starts at frame `start` (the render's own seed for frame 0)."""
    return seed if start == 0 else (seed * 1_000_003 + start) % 2**63


@dataclass(frozen=True)
class SpanOutput:
    """Where frames ``[first, stop)`` of a span are written: one segment file (or PNG folder) of `format`
    (``stop=None``: to the end of the span)."""

    first: int
    stop: int | None
    path: Path
    format: media.OutputFormat

    def holds(self, index: int) -> bool:
        return self.first <= index and (self.stop is None or index < self.stop)


def opening_strength(plan: RenderPlan) -> float | None:
    """The dream strength (mean |dream - source|, [0, 1] units) of the render's fully dreamed first frame,
    which flow mode holds the whole render to; None in feedback mode. Dreams that one frame."""
    if plan.preset.mode is not Mode.FLOW:
        return None
    with contextlib.closing(plan.source.frames(0)) as frames:
        image = next(frames)
    state = LoopState(tile=plan.tile)
    FrameDreamer(plan, plan.tile).group([FrameInput(0, image)], state,
                                        torch.Generator().manual_seed(plan.preset.output.seed))
    return state.strength


def render_span(plan: RenderPlan, start: int, stop: int | None, outputs: list[SpanOutput],
                progress: Callable[[int], None] | None = None, strength: float | None = None) -> list[int]:
    """Render frames ``[start, stop)`` of `plan` as a render that begins at frame `start` (its first frame
    dreamed in full, see :meth:`FrameDreamer._open_span`; a fresh state seeded by :func:`span_seed`), writing each frame into the `outputs` that
    hold its index; a frame no output holds is dreamed and discarded (a warm-up). `start` must be a
    keyframe of the whole render, so that every later group of the span is one of the whole render.
    ``stop=None``: to the end of the source; otherwise ``stop - 1`` should be a keyframe.

    With ``start == 0`` the frames are those of :func:`render`, bit for bit; a span that starts later
    carries a different dream (the same look, not the same pixels). Flow mode holds a span to
    `strength` (:func:`opening_strength`: the render's own) when given, else to its first frame's.
    Returns the frames written to each output; `progress` receives the frames rendered so far, warm-up
    included.
    """
    source, preset = plan.source, plan.preset
    state = LoopState(next_frame=start, tile=plan.tile, strength=strength)
    generator = torch.Generator().manual_seed(span_seed(preset.output.seed, start))
    dreamer = FrameDreamer(plan, plan.tile)
    with contextlib.ExitStack() as stack:
        inputs = stack.enter_context(Prefetch(frame_inputs(source, preset.mode, preset.flow.method, start)))
        writers = [stack.enter_context(media.SegmentWriter(out.path, source.width, source.height, source.fps,
                                                           out.format, **segment_encoding(plan))) for out in outputs]
        for frames in dreamed_groups(dreamer, inputs, state, generator, stop):
            for frame in frames:
                for out, writer in zip(outputs, writers):
                    if out.holds(frame.index):
                        writer.write(frame.frame)
            if progress:
                progress(state.next_frame - start)
    return [writer.frames_written for writer in writers]
