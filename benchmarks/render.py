"""End-to-end render benchmark: time per frame of `dreamvid render` against its dream steps alone,
and against the way other DeepDream tools work (each frame dreamed from scratch, whole network,
frames round-tripped through PNG files), with quality measured on the same clip.

    python benchmarks/render.py                 # 640x360, ~2 minutes on a 2-core CPU
    python benchmarks/render.py --size 1280x720 --seconds 4
    python benchmarks/render.py --uhd           # also one 3840x2160 frame: peak memory with tiling

All figures come from one run, so ratios hold on a noisy machine. Needs the inception5h weights
($DREAMVID_WEIGHTS or the cache).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import renderer.pipeline as pipeline
from renderer import media, metrics
from renderer.devices import keep_freed_memory, pick_device
from renderer.dream import DreamSettings, dream, parse_objective
from renderer.frames import to_tensor, to_uint8
from renderer.models import load_backbone
from renderer.plan import RenderRequest, plan_render

ROOT = Path(__file__).resolve().parents[1]


def make_clip(path: Path, width: int, height: int, seconds: float, fps: int = 24) -> None:
    """A camera pan and slow push-in over a CC0 photo, with a tone: real motion for optical flow."""
    big_w, big_h = width * 2, height * 2
    vf = (f"scale={big_w}:{big_h}:force_original_aspect_ratio=increase,crop={big_w}:{big_h},"
          f"crop={width}:{height}:'(iw-ow)*t/{seconds * 1.5}':'(ih-oh)/2+10*sin(t)',format=yuv420p")
    subprocess.run([media.ffmpeg_exe(), "-y", "-loglevel", "error", "-loop", "1", "-framerate", str(fps),
                    "-i", str(ROOT / "samples" / "coffee.jpg"), "-f", "lavfi", "-i", f"sine=220:d={seconds}",
                    "-vf", vf, "-t", str(seconds), "-r", str(fps), "-c:v", "libx264", "-crf", "14",
                    "-c:a", "aac", "-shortest", str(path)], check=True)


class DreamTimer:
    """Wraps pipeline.dream to add up the time spent in dream steps (synchronising on CUDA)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._dream = pipeline.dream

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        out = self._dream(*args, **kwargs)
        if out.is_cuda:
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - start)
        return out


def run_pipeline(clip: Path, out: Path, preset: str, device: torch.device, size) -> dict:
    """Render with the real pipeline; per-frame wall time vs time inside dream()."""
    timer = DreamTimer()
    stamps: list[float] = []
    pipeline.dream = timer
    try:
        plan = plan_render(RenderRequest(str(clip), out, preset, size=size, device=str(device), overwrite=True))
        start = time.perf_counter()
        pipeline.render(plan, lambda done, total: stamps.append(time.perf_counter()))
        total = time.perf_counter() - start
    finally:
        pipeline.dream = timer._dream
    # Frame 0 (full octaves) and model loading are excluded: steady-state frames only.
    steady_wall = stamps[-1] - stamps[0]
    steady_dream = sum(timer.seconds[1:])
    n = len(stamps) - 1
    frames, src = list(media.read_video(out)), list(media.read_video(clip, size=size))
    strength = metrics.dream_strength(frames, src)
    return {"preset": preset, "frames": len(stamps), "total_s": total, "ms_per_frame": 1000 * steady_wall / n,
            "dream_ms_per_frame": 1000 * steady_dream / n, "overhead_ratio": steady_wall / steady_dream,
            "strength": float(strength[1:].mean()),
            "strength_quarters": [float(q.mean()) for q in np.array_split(strength, 4)],
            "warping_error": metrics.warping_error(frames, src)}


class WholeNetwork(torch.nn.Module):
    """Baseline: runs the network to its logits whatever the objective needs (no truncation)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x, layers):
        return self.model(x, set(layers) | {self.model.logits_layer})


def run_baseline(clip: Path, out: Path, device: torch.device, size, max_frames: int) -> dict:
    """How other tools work: every frame from scratch (4 octaves x 10 steps), whole network, PNG files."""
    model = WholeNetwork(load_backbone(device=device))
    objective = parse_objective("mixed4c", model.model)
    settings = DreamSettings(steps=10, octaves=4)
    generator = torch.Generator().manual_seed(0)
    src = list(media.read_video(clip, size=size))[:max_frames]
    times, frames = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, frame in enumerate(src):
            start = time.perf_counter()
            cv2.imwrite(f"{tmp}/in_{i:05d}.png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            image = cv2.cvtColor(cv2.imread(f"{tmp}/in_{i:05d}.png"), cv2.COLOR_BGR2RGB)
            result = to_uint8(dream(to_tensor(image, device), model, objective, settings, generator))
            cv2.imwrite(f"{tmp}/out_{i:05d}.png", cv2.cvtColor(result, cv2.COLOR_RGB2BGR))
            times.append(time.perf_counter() - start)
            frames.append(result)
        subprocess.run([media.ffmpeg_exe(), "-y", "-loglevel", "error", "-framerate", "24", "-i",
                        f"{tmp}/out_%05d.png", "-pix_fmt", "yuv420p", str(out)], check=True)
    return {"preset": "baseline (from scratch, whole net, PNG)", "frames": len(src),
            "ms_per_frame": 1000 * float(np.mean(times[1:])), "strength": float(metrics.dream_strength(frames, src).mean()),
            "warping_error": metrics.warping_error(frames, src)}


def run_uhd(tmp: Path, device: torch.device, tile: int) -> dict:
    """One 3840x2160 frame through the pipeline with `tile` (0: sized from free memory); peak memory."""
    clip = tmp / "uhd.mp4"
    make_clip(clip, 3840, 2160, 0.1)
    out = tmp / "uhd_out.mp4"
    request = RenderRequest(str(clip), out, "fractal-zoom", ("dream.first_steps=1", "dream.first_octaves=1",
                            f"dream.tile={tile}"), frames=1, device=str(device), overwrite=True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    pipeline.render(plan_render(request))
    return {"uhd_tile": tile, "uhd_seconds": time.perf_counter() - start,
            "uhd_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_rss_before_mb": before / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--baseline-frames", type=int, default=6)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--uhd", action="store_true", help="also render one 3840x2160 frame")
    parser.add_argument("--uhd-tile", type=int, default=512, help="tile side for --uhd (0: from free memory)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    keep_freed_memory()  # as the dreamvid command does
    width, height = (int(v) for v in args.size.split("x"))
    device = pick_device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.size}, {args.seconds:g} s at 24 fps")
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clip = tmp / "clip.mp4"
        make_clip(clip, width, height, args.seconds)
        source_frames = list(media.read_video(clip, size=(width, height)))
        source_error = metrics.warping_error(source_frames, source_frames)
        for preset in ("flow-dream", "fractal-zoom"):
            results.append(run_pipeline(clip, tmp / f"{preset}.mp4", preset, device, (width, height)))
        results.append(run_baseline(clip, tmp / "baseline.mp4", device, (width, height), args.baseline_frames))
        extra = run_uhd(tmp, device, args.uhd_tile) if args.uhd else {}
        if device.type == "cuda":  # the sizes music videos are made at
            for w, h in ((1280, 720), (1920, 1080)):
                hd_clip = tmp / f"clip{h}.mp4"
                make_clip(hd_clip, w, h, args.seconds)
                for preset in ("flow-dream", "fractal-zoom"):
                    r = run_pipeline(hd_clip, tmp / f"{preset}{h}.mp4", preset, device, (w, h))
                    extra[f"{preset}_{w}x{h}_fps"] = 1000 / r["ms_per_frame"]
    print(f"\n{'render':42} {'ms/frame':>9} {'dream ms':>9} {'e2e/dream':>9} {'strength':>9} {'warp err':>9}")
    for r in results:
        dream_ms = f"{r['dream_ms_per_frame']:9.0f}" if "dream_ms_per_frame" in r else f"{'-':>9}"
        ratio = f"{r['overhead_ratio']:9.3f}" if "overhead_ratio" in r else f"{'-':>9}"
        print(f"{r['preset']:42} {r['ms_per_frame']:9.0f} {dream_ms} {ratio} {r['strength']:9.4f} {r['warping_error']:9.4f}")
    flow_quarters = ", ".join(f"{q:.4f}" for q in results[0]["strength_quarters"])
    print(f"flow-dream strength (mean |dream - source|) by quarter of the clip: {flow_quarters} "
          "(a steady state, not dream piling on dream)")
    flow, base = results[0], results[-1]
    print(f"\nflow-dream vs baseline: {base['ms_per_frame'] / flow['ms_per_frame']:.1f}x faster per frame, "
          f"strength {flow['strength']:.4f} vs {base['strength']:.4f}, "
          f"warping error {flow['warping_error']:.4f} vs {base['warping_error']:.4f} (source clip: {source_error:.4f})")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB" + (f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB"
                                       if device.type == "cuda" else ""))
    if extra:
        print(f"3840x2160 frame, tile {extra['uhd_tile']}: {extra['uhd_seconds']:.1f} s, peak RSS {extra['uhd_peak_rss_mb']:.0f} MB "
              f"(before: {extra['peak_rss_before_mb']:.0f} MB)")
    for key, value in extra.items():
        if key.endswith("_fps"):
            print(f"{key[:-4].replace('_', ' ')}: {value:.2f} frames per second")
    if args.json:
        args.json.write_text(json.dumps({"results": results, **extra, "source_warping_error": source_error,
                                         "peak_rss_mb": peak}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
