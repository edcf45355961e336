"""Perfect loops: the seam of every feedback preset and of flow-dream, against the ordinary frame-to-frame
change, measured on the encoded output (issue 11).

    python benchmarks/loops.py                          # 320x180, 4 s at 12 fps per render
    python benchmarks/loops.py --presets fractal-zoom --seconds 3 --size 160x90

For each feedback preset: a ``--loop`` render of samples/chelsea.jpg and the same render without
``--loop`` (its last frame carried onto its first is what a plain render's seam looks like). For
flow-dream: samples/bunny.mp4 (which does not loop: its own seam is a cut, printed as the source's) and
the same clip played forward then backward (a looping source). The seam is frame N-1 carried one step
by the motion (the zoom step, or the source's flow from its last frame to its first) against frame 0;
each consecutive pair is measured the same way; "ghost" is the lowest sharpness (variance of the
Laplacian) of the closure frames over the median of the others: a cross-fade of two dreams halves it.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from renderer import media
from renderer.config import Mode, load_preset, preset_names
from renderer.flow import FlowEstimator
from renderer.loop import SeamReport, measure_feedback, measure_flow
from renderer.pipeline import render
from renderer.plan import RenderRequest, plan_render

ROOT = Path(__file__).resolve().parents[1]


def decoded(path: Path) -> list[np.ndarray]:
    with media.read_video(path) as frames:
        return list(frames)


def ghost(frames: list[np.ndarray], head: int) -> float:
    """Lowest sharpness of the closure frames (the first `head` of the output) over the others' median."""
    sharp = np.array([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F).var()
                      for f in frames])
    return float(sharp[:head].min() / np.median(sharp[head:]))


def run(input: Path | str, out: Path, preset: str, loop: bool, args: argparse.Namespace, **kw) -> tuple:
    plan = plan_render(RenderRequest(str(input), out, preset, fps=args.fps, size=args.size, loop=loop,
                                     crf=args.crf, overwrite=True, **kw))
    started = time.perf_counter()
    render(plan)
    return plan, decoded(out), time.perf_counter() - started


def row(name: str, report: SeamReport, extra: str = "") -> None:
    verdict = "closes" if report.ok else "JUMPS"
    print(f"{name:34} seam {report.seam:.4f}  median {report.median:.4f}  ratio {report.seam / report.median:5.2f}"
          f"  largest {report.largest:.4f}  {verdict}{extra}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=lambda s: tuple(map(int, s.split("x"))), default=(320, 180))
    parser.add_argument("--fps", type=float, default=12.0)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--crf", type=int, default=None, help="encoder quality (default: the format's)")
    parser.add_argument("--presets", nargs="*", help="default: every feedback preset, then flow-dream")
    args = parser.parse_args()
    names = args.presets or [n for n in preset_names() if load_preset(n).mode is Mode.FEEDBACK] + ["flow-dream"]
    frames = round(args.seconds * args.fps)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in names:
            if load_preset(name).mode is Mode.FLOW:
                bunny = ROOT / "samples" / "bunny.mp4"
                pingpong = work / "pingpong.mp4"  # forward then backward: the source loops
                # Frames 0..h forward, then h-1..1 back, at the render's frame rate and losslessly: every
                # step of the loop, the one from its last frame to its first included, is an ordinary
                # step of the clip's motion (a lossy ping-pong, or one that repeats its turning frames,
                # has a seam of its own: 3x its neighbouring steps in an earlier version of this script).
                half = round(args.seconds * args.fps / 2)
                subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-i", str(bunny), "-filter_complex",
                                f"[0:v]fps={args.fps},trim=start_frame=0:end_frame={half + 1},setpts=PTS-STARTPTS,"
                                f"split[a][b];[b]trim=start_frame=1:end_frame={half},setpts=PTS-STARTPTS,reverse[r];"
                                "[a][r]concat=n=2:v=1", "-an", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p",
                                str(pingpong)], check=True)
                for label, clip, seconds in (("bunny.mp4", bunny, args.seconds), ("bunny ping-pong", pingpong, None)):
                    plan, out, spent = run(clip, work / "flow.mp4", name, True, args, seconds=seconds)
                    sources = list(plan.source.frames())
                    estimator = FlowEstimator(plan.preset.flow.method)
                    source_report = measure_flow(sources, sources, estimator)
                    row(f"{name} {label} --loop", measure_flow(out, sources, estimator),
                        f"  ghost {ghost(out, plan.loop.head):.2f}  source seam/median {source_report.seam / source_report.median:.2f}"
                        f"  {spent / len(out):.2f} s/frame")
                continue
            image = ROOT / "samples" / "chelsea.jpg"
            plan, out, spent = run(image, work / "zoom.mp4", name, True, args, frames=frames)
            row(f"{name} --loop", measure_feedback(out, plan.timeline, args.fps),
                f"  ghost {ghost(out, plan.loop.head):.2f}  {spent / len(out):.2f} s/frame")
            plain, out, _ = run(image, work / "plain.mp4", name, False, args, frames=frames)
            row(f"{name} (no --loop)", measure_feedback(out, plain.timeline, args.fps))


if __name__ == "__main__":
    main()
