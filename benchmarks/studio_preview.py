"""Live-preview latency of `dreamvid studio`: one frame dreamed with a preset's settings, the way the
server dreams it (network loaded once, frame decoded once), for a few layers.

    python benchmarks/studio_preview.py [--preset fractal-zoom] [--input samples/cat-pan.mp4] [--repeat 3] [--rendering]

Prints the seconds per preview (median and worst) per layer, and the machine's load (the CPU is
shared: other work running at the same time slows every figure). The previewer takes every core when
no render runs, half of them with ``--rendering`` (as while the studio renders).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

from renderer.config import load_preset
from renderer.dream.engine import Precision
from renderer.studio.preview import IDLE_THREADS, PREVIEW_THREADS, InputSpec, Previewer, live_precision
from renderer.studio.workspace import Workspace

LAYERS = ("mixed3a", "mixed4c", "mixed5a")


async def measure(previewer: Previewer, spec: InputSpec, preset_name: str, repeat: int) -> None:
    warm = load_preset(preset_name)
    await previewer.preview(spec, warm, 40)  # the first preview loads the network and decodes the frame
    for layer in LAYERS:
        preset = load_preset(preset_name, [f"dream.objective={layer}"])
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            await previewer.preview(spec, preset, 40)
            times.append(time.perf_counter() - start)
        print(f"{layer:8} median {statistics.median(times):.2f} s  worst {max(times):.2f} s  ({repeat} previews)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fractal-zoom")
    parser.add_argument("--input", type=Path, default=Path(__file__).resolve().parents[1] / "samples" / "cat-pan.mp4")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rendering", action="store_true", help="as if a render ran beside the previews")
    args = parser.parse_args()
    previewer = Previewer(Workspace.open(args.input.parent), device="cpu", rendering=lambda: args.rendering)
    threads = PREVIEW_THREADS if args.rendering else IDLE_THREADS
    print(f"preset {args.preset}, {args.input.name} frame 40, {os.cpu_count()} CPUs, {threads} threads, "
          f"live precision {live_precision(Precision.AUTO, previewer.device).value}, "
          f"load average {os.getloadavg()[0]:.1f}")
    try:
        asyncio.run(measure(previewer, InputSpec(args.input.name), args.preset, args.repeat))
    finally:
        previewer.close()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
