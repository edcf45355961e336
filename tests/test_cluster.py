"""Render farms: spans with warm-up and blended seams, resume by spans, and Ray (slow tier): a worker
killed mid-span, a driver interrupted and resumed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLES, dreamvid
from renderer import cluster, media, metrics
from renderer.cluster.driver import ClusterRender
from renderer.config import Mode, load_preset
from renderer.pipeline import RenderInterrupted
from renderer.plan import RenderRequest, plan_render
from renderer.timeline import build_timeline

FAST = ("dream.working_size=0", "dream.steps=1", "dream.octaves=1", "dream.first_steps=2", "dream.first_octaves=1", "dream.objective=mixed3b")
BUNNY = SAMPLES / "bunny.mp4"


def flow_plan(output: Path, frames: int, resume: bool = False, **kw):
    return plan_render(RenderRequest(str(BUNNY), output, ("flow-dream",), FAST, frames=frames, size=(64, 36),
                                     resume=resume, **kw))


# ---------------------------------------------------------------------------------------- planning

@pytest.mark.parametrize("cadence", [1, 3])
def test_spans_cover_the_render_once_and_start_on_keyframes(cadence):
    timeline = build_timeline(load_preset("flow-dream", [f"flow.cadence={cadence}"]), 1000, 25.0)
    plan = cluster.plan_spans(Mode.FLOW, 1000, 4, timeline)
    keys = set(cluster.spans.keyframes(timeline, 1000))
    spans = plan.spans
    assert len(spans) == 4 and plan.warmup == cluster.spans.SETTLE_FRAMES + cluster.spans.BLEND_FRAMES
    assert spans[0].first == 0 and spans[-1].stop is None
    for before, after in zip(spans, spans[1:]):
        assert before.stop == after.first and after.first - 1 in keys and after.start in keys
        assert after.warmup >= plan.warmup and after.blend_in == before.blend_out == plan.blend
    lengths = [(s.stop or 1000) - s.start for s in spans]  # equal work, warm-up included
    assert max(lengths) - min(lengths) <= 2 * cadence + 1
    assert 0.05 < plan.overhead < 0.1
    # Long renders get several spans per worker; feedback mode and short clips are one span.
    assert len(cluster.plan_spans(Mode.FLOW, 5000, 4, timeline).spans) == 12
    assert len(cluster.plan_spans(Mode.FEEDBACK, 1000, 4, timeline).spans) == 1
    assert len(cluster.plan_spans(Mode.FLOW, 60, 4, timeline).spans) == 1


def test_a_cross_fade_too_long_for_the_clip_is_shortened_to_fit_and_said():
    timeline = build_timeline(load_preset("flow-dream"), 1000, 25.0)
    roomy = cluster.plan_spans(Mode.FLOW, 1000, 2, timeline, blend=100)
    assert roomy.blend == 100 and roomy.warmup == cluster.spans.SETTLE_FRAMES + 100
    assert "may show" not in roomy.describe(2)
    tight = cluster.plan_spans(Mode.FLOW, 300, 2, timeline, blend=100)  # spans of 3 warm-ups: 300 // 6 - 8 = 42
    assert len(tight.spans) == 2 and tight.blend == 42 and tight.spans[1].blend_in == 42
    assert "asks for 100, so the seams may show" in tight.describe(2)
    nearly = cluster.plan_spans(Mode.FLOW, 700, 2, timeline, blend=109)  # 700 // 6 - 8 = 108: close enough
    assert nearly.blend == 108 and "may show" not in nearly.describe(2)
    # Not even the shortest cross-fade fits: one span, no seam.
    assert len(cluster.plan_spans(Mode.FLOW, 110, 2, timeline, blend=100).spans) == 1


def test_the_cross_fade_is_chosen_from_the_clip_s_motion(tmp_path):
    """A still shot needs a long cross-fade (every frame-to-frame change shows against its stillness), a
    moving one a short one; the motion estimate from a few windows matches the whole clip's."""
    from renderer.cluster.seams import MAX_BLEND_SECONDS, seam_blend, source_motion
    from renderer.scenes import make_scene, write_video

    moving = make_scene("crossing", (96, 54), 60, seed=2, fps=25.0)
    moving_clip = moving.write(tmp_path / "moving.mp4", audio=False)
    still = [media.load_image(SAMPLES / "chelsea.jpg")[:54 * 4:4, :96 * 4:4]] * 60
    still_clip = write_video(still, tmp_path / "still.mp4", 25.0, audio=False)

    def source(clip):
        return plan_render(RenderRequest(str(clip), tmp_path / "out.mp4", ("flow-dream",), FAST)).source

    everything = metrics.SourceMotion.of(list(source(moving_clip).frames())).source_error
    assert source_motion(source(moving_clip)) == pytest.approx(everything, rel=0.25)
    fast, calm = seam_blend(source(moving_clip), 0.04), seam_blend(source(still_clip), 0.04)
    assert cluster.spans.BLEND_FRAMES <= fast.frames < 60 and fast.motion > 0.003
    assert calm.frames == round(MAX_BLEND_SECONDS * 25.0) and calm.motion < 0.001


def test_a_split_render_says_how_its_cross_fade_was_chosen(tmp_path):
    render = cluster.split(flow_plan(tmp_path / "out.mp4", 132), 2, "cpu")
    assert len(render.spans.spans) == 2 and render.strength and render.blend
    line = render.describe(2)
    assert f"the clip moves {render.blend.motion:.4f} a frame against a dream of {render.strength:.3f}" in line
    # samples/bunny.mp4 is too short for the cross-fade its motion asks for: the longest that fits, said.
    assert render.spans.blend < render.blend.frames and f"asks for {render.blend.frames}, so the seams may show" in line


# ------------------------------------------------------------------------------- spans, in-process

def test_one_span_gives_the_frames_of_a_local_render(tmp_path):
    """A render on one worker (feedback: always) is the local render, bit for bit (PNG frames)."""
    request = RenderRequest("noise", tmp_path / "local", ("fractal-zoom",), FAST, frames=5, size=(48, 32))
    from renderer.pipeline import render

    render(plan_render(request))
    cluster.run_renders(cluster.whole([plan_render(RenderRequest(**{**vars(request), "output": tmp_path / "farm"}))]),
                        cluster.LocalExecutor())
    local, farm = sorted((tmp_path / "local").glob("*.png")), sorted((tmp_path / "farm").glob("*.png"))
    assert len(farm) == 5 and (tmp_path / "farm.toml").exists()
    for a, b in zip(local, farm, strict=True):
        assert np.array_equal(media.load_image(a), media.load_image(b))


def test_a_span_opens_at_the_strength_the_render_has_there(tmp_path):
    """A span that starts mid-render opens at the render's strength, so across the seam the split
    render's dream stays within 6 % of the whole render's at the same frames (1.6 % measured; the clip
    itself moves 9 % there, keyframe to tween). Before the span opening was scaled and the strength hold
    made two-sided, the split render ran at 0.87..1.02 of the clip's average: the render faded, the span
    did not."""
    def strength(out: Path, split: bool) -> tuple[np.ndarray, cluster.SpanPlan]:
        plan = plan_render(RenderRequest(str(BUNNY), out, ("flow-dream",), ("dream.working_size=0",), frames=64,
                                         size=(96, 54)))  # the preset's own dreaming, at the frame's size
        spans = cluster.plan_spans(Mode.FLOW, 64, 2 if split else 1, plan.timeline, blend=6, settle=4)
        cluster.run_renders([ClusterRender(0, plan, spans, "cpu")], cluster.LocalExecutor())
        return metrics.dream_strength([media.load_image(p) for p in media.list_frame_folder(out)],
                                      list(plan.source.frames())), spans

    split, spans = strength(tmp_path / "split", True)  # PNG frames: the seam without the codec
    whole, _ = strength(tmp_path / "whole", False)
    assert len(spans.spans) == 2
    first = spans.spans[1].first
    around = split[first - spans.blend:first + 8] / whole[first - spans.blend:first + 8]
    assert abs(around - 1).max() < 0.06, around


def test_progress_ends_full_at_the_frames_made_when_the_header_promised_more(tmp_path):
    """samples/bunny.mp4's header promises 133 frames and its stream holds 132: the progress of a local
    render and of a split one ends at what was made, not one short of 100 %."""
    from renderer.pipeline import render

    def plan(name):
        return plan_render(RenderRequest(str(BUNNY), tmp_path / name, ("flow-dream",), FAST, size=(32, 18)))

    local = plan("local.mp4")
    assert local.source.n_frames == 133
    calls: list[tuple[int, int]] = []
    render(local, lambda done, total: calls.append((done, total)))
    assert calls[-1] == (132, 132) and media.count_frames(tmp_path / "local.mp4") == 132
    snapshots = []
    cluster.run_renders([cluster.split(plan("split.mp4"), 2, "cpu")], cluster.LocalExecutor(), snapshots.append)
    assert snapshots[-1].done == snapshots[-1].total and media.count_frames(tmp_path / "split.mp4") == 132


def test_flow_spans_resume_after_ctrl_c_and_join_every_frame(tmp_path):
    """Two spans rendered one after the other here; Ctrl-C in the second keeps the first for --resume,
    and the joined output has every frame, the seam cross-faded."""
    out = tmp_path / "out.mp4"
    small = dict(blend=2, settle=1)

    def split(plan):
        return ClusterRender(0, plan, cluster.plan_spans(Mode.FLOW, plan.source.n_frames, 2, plan.timeline, **small), "cpu")

    def interrupt(snapshot):
        if any(w.label.endswith("span 2/2") and w.frames > 2 for w in snapshot.workers):
            raise KeyboardInterrupt

    render = split(flow_plan(out, 24))
    first, second = render.spans.spans
    assert (first.start, first.first, second.stop) == (0, 0, None) and second.first == first.stop
    assert second.start == second.first - 3 and first.blend_out == second.blend_in == 2
    with pytest.raises(RenderInterrupted, match="1 of 2 spans done"):
        cluster.run_renders([render], cluster.LocalExecutor(), interrupt)
    assert not out.exists()
    with pytest.raises(Exception, match="--resume"):
        flow_plan(out, 24)
    resumed = split(flow_plan(out, 24, resume=True))
    assert list(resumed.done) == [0] and [j.span.index for j in resumed.jobs()] == [1]
    said: list[str] = []
    cluster.run_renders([resumed], cluster.LocalExecutor(), announce=said.append)
    assert said == ["resuming: 1 of 2 spans done"]
    assert media.count_frames(out) == 24 and media.probe(out).has_audio
    assert not resumed.work.path.exists()


def test_without_ray_the_cluster_options_say_how_to_install_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    for command in (["render", "noise", "--workers", "2"], ["batch", tmp_path / "jobs.toml", "--cluster", "auto"]):
        code, _, err = dreamvid(capsys, monkeypatch, *command)
        assert code == 2 and "pip install 'dreamvid[cluster]'" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------ Ray (slow)

@pytest.fixture
def ray_tmp(monkeypatch):
    """A private Ray temp folder; every Ray process whose command line names it is ended afterwards."""
    folder = f"/tmp/dvr-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RAY_TMPDIR", folder)
    yield folder
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if folder.encode() in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_a_worker_killed_mid_span_is_replaced_and_the_output_is_complete(tmp_path, ray_tmp):
    out = tmp_path / "out.mp4"
    plan = flow_plan(out, 132)
    killed: list[int] = []
    pids: set[int] = set()
    said: list[str] = []

    def kill_one(snapshot):
        pids.update(w.pid for w in snapshot.workers if w.pid)
        busy = [w for w in snapshot.workers if w.frames >= 4 and w.pid]
        if busy and not killed:
            killed.append(busy[0].pid)
            os.kill(busy[0].pid, signal.SIGKILL)

    result = cluster.render_on_cluster(plan, None, 2, device="cpu", progress=kill_one, announce=said.append)
    assert killed and result == out and "2 spans" in said[0]
    assert media.count_frames(out) == 132 and media.probe(out).has_audio
    # The killed span ran again elsewhere: in a fresh worker process, or in the surviving one once its own
    # span was done (Ray picks either; counting a fresh process made this test fail now and then).
    assert pids - set(killed)


@pytest.mark.slow
def test_a_batch_on_ray_interrupted_resumes_with_the_jobs_done(tmp_path, ray_tmp):
    jobs = tmp_path / "jobs.toml"
    overrides = "[" + ", ".join(f'"{o}"' for o in FAST) + "]"
    jobs.write_text("".join(f'[[job]]\ninput = "noise"\noutput = "z{i}.mp4"\nframes = {8 + i}\nsize = "48x32"\n'
                            f"seed = {i}\nset = {overrides}\n" for i in range(3)))
    args = [sys.executable, "-m", "renderer.cli", "batch", str(jobs), "--workers", "1", "--quiet"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    record = tmp_path / "z0.mp4.dreamvid-partial" / "spans.json"
    deadline = time.time() + 600
    while time.time() < deadline and not (record.exists() and '"0": {' in record.read_text()):
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "--resume" in err
    done = subprocess.run([*args[:-1], "--resume"], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "resuming: 1 of 3 spans done" in done.stderr or "resuming: 2 of 3 spans done" in done.stderr
    assert "Token authentication" not in done.stderr  # Ray's notice about the private instance it starts
    for i in range(3):
        assert media.count_frames(tmp_path / f"z{i}.mp4") == 8 + i
    assert not list(tmp_path.glob("*.dreamvid-partial"))
