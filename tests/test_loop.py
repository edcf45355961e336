"""Perfect loops (`--loop`, `--loop-bars`): real renders at 96x64, the seam measured on the decoded output."""

from __future__ import annotations

import dataclasses

from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLES, audio_seconds, dreamvid, ffmpeg
from renderer import media
from renderer.errors import InputError
from renderer.flow import FlowEstimator, FlowMethod
from renderer.loop import LoopSpec, bars_to_frames, loop_spec, measure_feedback, measure_flow, pull_weight, dissolve_field
from renderer.pipeline import RenderInterrupted, loop_segments, render
from renderer.plan import RenderRequest, plan_render

FPS = 12
FAST = ("dream.working_size=0", "dream.steps=1", "dream.octaves=1", "dream.first_steps=2", "dream.first_octaves=1",
        "dream.objective=mixed3b")


def request(input: str | Path, output: Path, preset: str = "fractal-zoom", **kw) -> RenderRequest:
    """A loop render at 96x64. The encoder is lossless (--crf 0, yuv420p): at this size and one dream step
    a frame, the restart of its prediction at the file's first frame would otherwise outweigh the dream's
    own frame-to-frame change (benchmarks/loops.py measures the default quality at 320x180)."""
    return RenderRequest(str(input), output, preset, FAST, crf=0, fps=kw.pop("fps", FPS), size=kw.pop("size", (96, 64)),
                         loop=kw.pop("loop", True), **kw)


def decoded(path: Path) -> list[np.ndarray]:
    with media.read_video(path) as frames:
        return list(frames)


@pytest.fixture(scope="module")
def looping_clip(tmp_path_factory) -> Path:
    """Two seconds of a photo scrolling sideways 4 px a frame and wrapping round: the source loops
    (frame 24 would be frame 0), as a folder of numbered PNG frames."""
    folder = tmp_path_factory.mktemp("loop") / "scroll"
    folder.mkdir()
    photo = media.load_image(SAMPLES / "chelsea.jpg")[::4, ::4][:64, 10:106]
    for t in range(2 * FPS):
        media.save_image(folder / f"frame_{t:04d}.png", np.roll(photo, 4 * t, axis=1))
    return folder


# ------------------------------------------------------------------------------------------ pure parts

def test_closure_length_and_bars():
    assert loop_spec(48, 24, 0, 0).head == 24 and loop_spec(200, 24, 0, 0).head == 36  # 1.5 s, at most half
    assert loop_spec(200, 24, 10, 0).head == 10
    assert bars_to_frames(2, 120, 24) == 96  # 8 beats at 120 bpm = 4 s
    with pytest.raises(Exception, match="at least 2 frames"):
        loop_spec(1, 24, 0, 0)


def test_dissolve_switches_each_pixel_at_its_own_time():
    field = dissolve_field(64, 96, seed=1)
    assert float(pull_weight(0.0, field).max()) == 0.0 and float(pull_weight(1.0, field).min()) == 1.0
    half = pull_weight(0.5, field)
    # Most pixels are one dream or the other at mid-closure (a dissolve), not a half-and-half blend.
    assert float(((half < 0.05) | (half > 0.95)).float().mean()) > 0.5


def test_segments_play_the_wrap_first_without_the_head():
    segments = [Path(f"s{i}") for i in range(4)]
    assert loop_segments(segments, [6, 12, 6, 6], LoopSpec(24, 6)) == [Path("s3"), Path("s1"), Path("s2")]


def test_a_loop_needs_its_length(tmp_path):
    with pytest.raises(InputError, match="needs its length"):
        plan_render(request("noise", tmp_path / "o.mp4"))
    with pytest.raises(InputError, match="tempo"):
        plan_render(request("noise", tmp_path / "o.mp4", loop_bars=1, no_audio=True))


# --------------------------------------------------------------------------------------------- renders

@pytest.mark.slow
def test_feedback_loop_closes_on_its_first_frame(tmp_path):
    out = tmp_path / "zoom.mp4"
    plan = plan_render(request(SAMPLES / "chelsea.jpg", out, "spiral-zoom", frames=24))
    render(plan)
    frames = decoded(out)
    assert len(frames) == 24
    report = measure_feedback(frames, plan.timeline, FPS)
    assert report.ok, report


def test_a_loop_closes_at_the_default_quality(tmp_path):
    """At the default crf a GOP stream restarts its prediction at the file's first frame, so the seam was
    the one pair of frames with unrelated compression noise (here 1.4-1.5x the median change); a loop is
    written with every frame a keyframe, so the seam is like any other pair."""
    out = tmp_path / "zoom.mp4"
    plan = plan_render(dataclasses.replace(request(SAMPLES / "chelsea.jpg", out, "spiral-zoom", frames=24), crf=None))
    render(plan)
    report = measure_feedback(decoded(out), plan.timeline, FPS)
    assert report.ok, report


@pytest.mark.slow
def test_flow_loop_closes_on_its_first_frame(tmp_path, looping_clip):
    out = tmp_path / "flow.mp4"
    # Cadence 1: at one dream step a frame, a tweened frame between keyframes changes less than a dreamed
    # one, so the median step (the seam's yardstick) would measure the tweens, not the dream.
    loop = request(looping_clip, out, "flow-dream", size=None)
    plan = plan_render(dataclasses.replace(loop, overrides=(*loop.overrides, "flow.cadence=1")))
    render(plan)
    frames = decoded(out)
    sources = [media.load_image(p) for p in media.list_frame_folder(looping_clip)]
    assert len(frames) == len(sources) == 24
    report = measure_flow(frames, sources, FlowEstimator(FlowMethod.DIS))
    assert report.ok, report


@pytest.mark.slow
def test_loop_bars_set_the_length_and_cut_the_sound(capsys, monkeypatch, tmp_path):
    beats = tmp_path / "beats.wav"  # clicks at 120 bpm: one bar = 2 s
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=1000:duration=8", "-af",
           "volume='if(lt(mod(t,0.5),0.03),1,0)':eval=frame", str(beats))
    out = tmp_path / "bars.mp4"
    code, _, err = dreamvid(capsys, monkeypatch, "render", "noise", "--size", "96x64", "--fps", FPS, "--audio", beats,
                            "--loop-bars", 1, "-o", out, "--quiet", *[a for kv in FAST for a in ("--set", kv)])
    assert code == 0, err
    frames, _ = media.count_frames_and_secs(out)
    assert frames == 2 * FPS
    assert abs(audio_seconds(out) - 2.0) <= 1 / FPS
    assert media.probe(out).has_audio


@pytest.mark.slow
def test_an_interrupted_loop_resumes_to_the_same_frames(tmp_path):
    whole = tmp_path / "whole"
    render(plan_render(request("noise", Path(f"{whole}/"), frames=16)))

    def stop(done: int, total: int) -> None:
        if done >= 18:  # inside the wrap, after the head and the first pass were checkpointed
            raise KeyboardInterrupt

    cut = tmp_path / "cut"
    with pytest.raises(RenderInterrupted):
        render(plan_render(request("noise", Path(f"{cut}/"), frames=16)), stop)
    render(plan_render(request("noise", Path(f"{cut}/"), frames=16, resume=True)))
    first, second = media.list_frame_folder(whole), media.list_frame_folder(cut)
    assert len(first) == len(second) == 16
    for a, b in zip(first, second):
        assert np.array_equal(media.load_image(a), media.load_image(b)), a.name
