"""Render farms (issue 13): seams, throughput with 1 and 2 Ray workers, warm-up share, an 8-GPU estimate.

    python benchmarks/cluster.py                  # 160x90, bunny + two generated scenes, 1 vs 2 workers
    python benchmarks/cluster.py --quick          # fewer frames, cheaper dream (plumbing check)

1. **Seams** (no Ray: spans rendered one after the other here, which gives the same frames). Each clip is
   rendered as one span (a local render) and split for 2 and 3 workers as ``dreamvid render --workers N``
   splits it (the cross-fade chosen from the clip; ``--blend`` fixes it), to PNG frames (segment joins in
   a video add a one-frame compression jump of their own, local renders' too: see README). At each seam the frames from
   ``first - blend - 1`` to ``first`` are compared with the clip: warping error (:func:`metrics.warping_errors`,
   on the source's flow) over the seam zone and at its worst frame, and dream strength
   (:func:`metrics.dream_strength`), each divided by the clip's average; and the same zone of the local render.
2. **Throughput**: the same flow render on a private Ray instance with 1 worker, then 2 (one thread each):
   frames dreamed per second of each span's wall time (model loading included), per worker.
3. **Warm-up share**: warm-up frames over kept frames for a few clip lengths and worker counts.
4. **8 GPUs at 1080p**, on paper: per-frame cost at 1080p scaled from the measured cost by the pixels
   dreamed per frame (all octaves, working size included),
   divided by a GPU speed-up that is an assumption (``--gpu-speedup``), with the warm-up share for 8 workers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from renderer import cluster, media, metrics
from renderer.cluster.driver import ClusterRender
from renderer.cluster.worker import SpanResult
from renderer.config import Mode, load_preset
from renderer.dream.engine import octave_sizes
from renderer.plan import RenderRequest, plan_render
from renderer.scenes import make_scene
from renderer.timeline import build_timeline

ROOT = Path(__file__).resolve().parents[1]
QUICK = ("dream.steps=1", "dream.octaves=1", "dream.first_steps=3", "dream.first_octaves=2")


class Recorded(ClusterRender):
    """A cluster render that keeps every span result's timing."""

    results: list[SpanResult]

    def keep(self, result: SpanResult) -> None:
        self.__dict__.setdefault("results", []).append(result)
        super().keep(result)


def frames_of(folder: Path) -> list[np.ndarray]:
    return [media.load_image(path) for path in media.list_frame_folder(folder)]


def request(clip: Path, out: Path, size: tuple[int, int], overrides: tuple[str, ...], frames: int | None) -> RenderRequest:
    return RenderRequest(str(clip), out, ("flow-dream",), overrides, frames=frames, size=size, overwrite=True)


def seams(clip: Path, folder: Path, size, overrides, frames, workers_list=(2, 3), blend: int | None = None
          ) -> list[dict]:
    rows = []
    for row in _seams(clip, folder, size, overrides, frames, workers_list, blend):
        print(f"{row['clip']} | {row['workers']} | {row['seam']} | {row['we_zone']:.2f} | {row['we_max']:.2f} | "
              f"{row['local_zone']:.2f}, {row['local_max']:.2f} | {row['st_min']:.2f}..{row['st_max']:.2f} | "
              f"{row['local_st_min']:.2f}..{row['local_st_max']:.2f}", flush=True)
        rows.append(row)
    return rows


def _seams(clip: Path, folder: Path, size, overrides, frames, workers_list, blend: int):
    """Seam figures of `clip` split for each worker count, against its local (one-span) render."""
    local = folder / f"{clip.stem}-local"  # PNG frames: the seams without the codec (see README)
    cluster.run_renders(cluster.whole([plan_render(request(clip, local, size, overrides, frames))]), cluster.LocalExecutor())
    plan = plan_render(request(clip, folder / "probe.mp4", size, overrides, frames))
    source = list(plan.source.frames())
    motion = metrics.SourceMotion.of(source)
    base = frames_of(local)
    base_we, base_st = metrics.warping_errors(base, motion), metrics.dream_strength(base, source)
    for workers in workers_list:
        out = folder / f"{clip.stem}-{workers}"
        split_plan = plan_render(request(clip, out, size, overrides, frames))
        if blend is None:  # as `dreamvid render --workers N` splits it: the cross-fade chosen from the clip
            render = cluster.split(split_plan, workers)
            print(f"  {clip.name}, {workers} workers: {render.describe(workers)}", flush=True)
        else:
            spans = cluster.plan_spans(Mode.FLOW, split_plan.source.n_frames, workers, split_plan.timeline, blend=blend)
            render = ClusterRender(0, split_plan, spans, "auto")
        if len(render.spans.spans) < 2:
            print(f"{clip.name}: too short to split for {workers} workers")
            continue
        cluster.run_renders([render], cluster.LocalExecutor())
        frames_out = frames_of(out)
        we, st = metrics.warping_errors(frames_out, motion), metrics.dream_strength(frames_out, source)
        for span in render.spans.spans[1:]:
            zone = slice(span.first - render.spans.blend - 1, span.first)  # errors index t-1: frames first-blend..first
            yield (dict(clip=clip.stem, workers=workers, seam=span.first, n=len(frames_out),
                             we_zone=we[zone].mean() / we.mean(), we_max=we[zone].max() / we.mean(),
                             local_zone=base_we[zone].mean() / base_we.mean(), local_max=base_we[zone].max() / base_we.mean(),
                             st_min=st[zone.start + 1:span.first + 1].min() / st.mean(),
                             st_max=st[zone.start + 1:span.first + 1].max() / st.mean(),
                             local_st_min=base_st[zone.start + 1:span.first + 1].min() / base_st.mean(),
                             local_st_max=base_st[zone.start + 1:span.first + 1].max() / base_st.mean(),
                             we_clip=we.mean(), we_local=base_we.mean(), st_clip=st.mean(), st_local=base_st.mean()))


def throughput(clip: Path, folder: Path, size, overrides, frames) -> dict[int, list[SpanResult]]:
    """Span results of the same render on 1 and on 2 single-threaded Ray workers."""
    from renderer.cluster.ray_backend import RayExecutor

    found = {}
    for workers in (1, 2):
        plan = plan_render(request(clip, folder / f"ray-{workers}.mp4", size, overrides, frames))
        with RayExecutor(None, workers) as executor:
            spans = cluster.plan_spans(Mode.FLOW, plan.source.n_frames, workers, plan.timeline)
            render = Recorded(0, plan, spans, "cpu")
            began = time.perf_counter()
            cluster.run_renders([render], executor)
            wall = time.perf_counter() - began
        found[workers] = render.results
        for r in render.results:
            print(f"  {workers} worker(s): span {r.span + 1} on {r.worker}: {r.frames} frames in {r.seconds:.1f} s "
                  f"= {r.frames / r.seconds:.2f} frames/s")
        print(f"  {workers} worker(s): wall {wall:.1f} s for {plan.source.n_frames} frames (Ray started before the clock)")
    return found


def dreamed_pixels(timeline, size: tuple[int, int]) -> int:
    """Pixels a dream step of frame 1's settings (frame 0 is dreamed in full) covers at frame size
    (w, h), summed over its octaves: what a frame's dreaming costs, in proportion (a frame under the
    working size is dreamed at it)."""
    dream = timeline.frame(1).dream
    width, height = size
    return sum(h * w for h, w in octave_sizes(height, width, dream.octaves, dream.octave_scale, dream.working_size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="160x90")
    parser.add_argument("--frames", type=int, default=120, help="frames of each generated scene (bunny: all 132)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-seams", action="store_true")
    parser.add_argument("--scenes", default="crossing,street", help="generated scenes besides bunny ('' for none)")
    parser.add_argument("--splits", default="2,3", help="worker counts to split for in the seam measure")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--real", type=Path, action="append", default=[],
                        help="a real clip to measure seams on as well (its first --frames frames)")
    parser.add_argument("--no-bunny", action="store_true", help="leave samples/bunny.mp4 out of the seam measure")
    parser.add_argument("--blend", type=int, default=None,
                        help="frames cross-faded at each seam (default: chosen from each clip, as renders do)")
    parser.add_argument("--gpu-speedup", type=float, default=40.0,
                        help="assumed GPU speed-up over this 2-core CPU per frame (an assumption, see README)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = tuple(int(v) for v in args.size.split("x"))
    overrides = QUICK if args.quick else ()
    frames = 60 if args.quick else args.frames
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; size {args.size}; "
          f"{'quick dream' if args.quick else 'flow-dream as shipped'}")
    with tempfile.TemporaryDirectory(prefix="dreamvid-cluster-bench-") as tmp:
        folder = Path(tmp)
        clips = [ROOT / "samples" / "bunny.mp4"] + list(args.real)
        args.splits = [int(v) for v in args.splits.split(",")]
        for name in filter(None, args.scenes.split(",")):
            scene = make_scene(name, size, frames, seed=1, fps=25.0)
            clips.append(scene.write(folder / f"{name}.mp4"))
        if not args.skip_seams:
            print("\n1. seams (warping error and strength over each seam's cross-fade, / the clip's average)")
            print("clip | workers | seam at | WE zone | WE worst | local render's WE zone, worst | strength min..max | "
                  "local render's strength min..max")
            rows = []
            for clip in clips[1:] if args.no_bunny else clips:
                rows += seams(clip, folder, size, overrides, None if clip.stem == "bunny" else frames, args.splits,
                              args.blend)
            if rows:
                print(f"over {len(rows)} seams: WE zone mean {np.mean([r['we_zone'] for r in rows]):.2f} "
                      f"(local render, same frames: {np.mean([r['local_zone'] for r in rows]):.2f}); strength "
                      f"{min(r['st_min'] for r in rows):.2f}..{max(r['st_max'] for r in rows):.2f}; clip WE split/local "
                      f"{np.mean([r['we_clip'] / r['we_local'] for r in rows]):.3f}, strength split/local "
                      f"{np.mean([r['st_clip'] / r['st_local'] for r in rows]):.3f}")
        per_frame = None
        if not args.skip_ray:
            print("\n2. throughput: 1 vs 2 single-threaded Ray workers (bunny)")
            found = throughput(clips[0], folder, size, overrides, None)
            single = sum(r.frames for r in found[1]) / sum(r.seconds for r in found[1])
            each = [r.frames / r.seconds for r in found[2]]
            print(f"  1 worker: {single:.2f} frames/s; 2 workers: {', '.join(f'{x:.2f}' for x in each)} frames/s each "
                  f"= {100 * np.mean(each) / single:.0f} % of the single worker per worker, "
                  f"{sum(each) / single:.2f}x in all")
            per_frame = 1 / single
    print("\n3. warm-up share (warm-up frames / frames kept)")
    timeline = build_timeline(load_preset("flow-dream"), 100000, 25.0)
    for blend in (12, 25, 50, 100):  # a moving camera at 25 fps ~25, a still one ~100 (seams.seam_blend)
        for n, workers in ((132, 2), (600, 2), (600, 8), (1500, 8), (4500, 8), (4500, 16)):
            plan = cluster.plan_spans(Mode.FLOW, n, workers, timeline, blend=blend)
            print(f"  cross-fade {blend}, {n} frames, {workers} workers: {len(plan.spans)} spans, blend {plan.blend}, "
                  f"{100 * plan.overhead:.1f} %")
    print("\n4. 8 GPUs at 1080p, on paper")
    if per_frame is not None:
        dreamed = dreamed_pixels(timeline, size)
        cpu_1080 = per_frame * dreamed_pixels(timeline, (1920, 1080)) / dreamed
        gpu = cpu_1080 / args.gpu_speedup
        # A moving camera at 25 fps (seam_blend: ~25 frames); a still one would take up to 100.
        share = cluster.plan_spans(Mode.FLOW, 4500, 8, timeline, blend=25).overhead
        print(f"  measured here: {1000 * per_frame:.0f} ms/frame at {args.size} on one thread -> {cpu_1080:.1f} s/frame at "
              f"1080p by the pixels dreamed per frame (the octaves at the working size and the detail octaves: "
              f"{dreamed_pixels(timeline, (1920, 1080)) / dreamed:.1f}x); a GPU {args.gpu_speedup:g}x faster: "
              f"{1000 * gpu:.0f} ms/frame")
        print(f"  8 GPUs, 3-minute clip (4500 frames at 25 fps, a moving camera: 25-frame cross-fades), warm-up {100 * share:.1f} %: "
              f"{8 / (gpu * (1 + share)):.1f} frames/s, the clip in {4500 * gpu * (1 + share) / 8 / 60:.1f} min "
              f"(one GPU: {4500 * gpu / 60:.1f} min)")


if __name__ == "__main__":
    main()
