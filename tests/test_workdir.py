"""The work folder: checkpoints hold only segments that read back complete, and everything a resumed
render needs to give the same frames (the tile size fixed at the start among it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from renderer import media
from renderer.errors import InputError, PresetError
from renderer.lookahead import Held
from renderer.workdir import LoopState, WorkDir


def _segment(work: WorkDir, index: int, frames: int) -> Path:
    path = work.segment(index)
    rng = np.random.default_rng(index)
    with media.SegmentWriter(path, 32, 24, 12.0, work.fmt) as writer:
        for _ in range(frames):
            writer.write(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    return path


def _held(index: int, young: bool) -> Held:
    rng = np.random.default_rng(index)
    image = (lambda *shape: rng.integers(0, 256, shape, dtype=np.uint8))
    return Held(index, image(24, 32, 3), image(24, 32, 3), image(24, 32) if young else None, cut=young)


def test_state_round_trip_keeps_what_resume_needs(tmp_path):
    work = WorkDir(tmp_path / "out.mp4", media.OutputFormat.MP4)
    work.create()
    state = LoopState(next_frame=0, previous=torch.rand(1, 3, 24, 32), rng=torch.Generator().manual_seed(3).get_state(),
                      tile=384, strength=0.047, maturity=torch.rand(1, 1, 24, 32), reference=torch.rand(1, 3, 24, 32),
                      drifts=[0.0, 0.013], settling=5, held=[_held(7, young=True), _held(8, young=False)])
    _segment(work, 0, 5)
    assert work.commit_segment(state, 0, 5, "abc")
    loaded = work.load("abc", torch.device("cpu"))
    assert (loaded.segment_frames, loaded.tile, loaded.strength, loaded.finished) == ([5], 384, 0.047, False)
    assert torch.equal(loaded.previous, state.previous) and torch.equal(loaded.rng, state.rng)
    # flow mode's carry: what the dream was made on and how much of it has been dropped lately
    assert torch.equal(loaded.maturity, state.maturity) and torch.equal(loaded.reference, state.reference)
    assert (loaded.drifts, loaded.settling) == ([0.0, 0.013], 5)
    # flow mode's frames dreamed and waiting for their fill (renderer.lookahead), exactly
    assert [(h.index, h.cut, h.young is None) for h in loaded.held] == [(7, True, False), (8, False, True)]
    for a, b in zip(loaded.held, state.held):
        assert np.array_equal(a.source, b.source) and np.array_equal(a.frame, b.frame)
    assert np.array_equal(loaded.held[0].young, state.held[0].young)
    with pytest.raises(PresetError, match="different settings"):
        work.load("other", torch.device("cpu"))


def test_a_segment_that_does_not_read_back_complete_is_not_counted(tmp_path):
    """An encoder that died (or a full disk) leaves fewer frames than were written: the checkpoint stays
    at the previous segment and the broken file goes."""
    work = WorkDir(tmp_path / "out.mp4", media.OutputFormat.MP4)
    work.create()
    state = LoopState()
    _segment(work, 0, 4)
    assert work.commit_segment(state, 0, 4, "abc")
    broken = _segment(work, 1, 3)
    assert not work.commit_segment(state, 1, 5, "abc")  # 5 frames were sent, 3 arrived
    assert not broken.exists() and state.segment_frames == [4]
    assert work.load("abc", torch.device("cpu")).segment_frames == [4]


def test_leftover_segments_are_removed_and_a_damaged_one_is_refused(tmp_path):
    work = WorkDir(tmp_path / "frames", media.OutputFormat.PNG_FOLDER)
    work.create()
    state = LoopState()
    _segment(work, 0, 3)
    assert work.commit_segment(state, 0, 3, "abc")
    leftover = _segment(work, 1, 2)  # written after the checkpoint, then the process was killed
    assert work.load("abc", torch.device("cpu")).segment_frames == [3] and not leftover.exists()
    next(work.segment(0).iterdir()).unlink()
    with pytest.raises(InputError, match="damaged"):
        work.load("abc", torch.device("cpu"))
