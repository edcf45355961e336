"""Ten minutes without decay (issue 11, part 2): long feedback renders, judged frame by frame.

Renders every feedback preset (``mode = "feedback"``) for thousands of frames through the library, as
``dreamvid render`` does (``plan_render`` then ``pipeline.render``, to a PNG folder so the figures see
the exact pixels), from noise, a CC0 photo (``samples/chelsea.jpg``) and a video (``samples/bunny.mp4``
looped to the length, CC-BY 3.0), then measures every frame:

=========== ======================================================================================
clipped     share of channel values at pure black or white (uint8 0 or 255), %
brightness  mean luma (Rec. 601), against its target: the first frame's (noise, photo) or the source
            frame's (video), as the preset's ``color.coherence`` says; scheduled targets when set
contrast    standard deviation of luma, against its target likewise
saturation  mean HSV saturation, against its target likewise
sharpness   variance of the Laplacian of the grey frame, over its mean on the early frames (1..48), and
            over its mean on the second tenth of the run ("settled": after a preset whose motion changes
            early, such as noise-genesis's hold-then-dive, has reached its steady zoom)
hue R       how much of the colour points one way: the length of the mean saturation-weighted hue
            vector, 0 (every hue) .. 1 (one hue); a drift toward one hue raises it
flat        share of pixels whose 3x3 neighbourhood is exactly flat (posterised or clipped regions)
variety     how different the parts of the frame are: the mean cosine distance between the mixed4c
            activations (inception5h, channel means) of the cells of a 4x4 grid over the frame, resized
            to 320 px wide. A photo or video frame scores 0.4-0.55; a frame that has collapsed into one
            texture all over (every cell the same pattern) about 0.1. Judged against the early frames
            (1..48) as sharpness is, so a render is compared with its own start
seam        how much the row and the column through the zoom's centre stand out from the rest of the
            frame (:func:`renderer.metrics.centre_seam`): their edge energy over the median column's or
            row's; 1.0-1.6 on healthy renders, 3.5-4.7 where a cross had grown there
source      (video input) how much of the source shows: the correlation of the output's luma with the
            source frame's, both blurred at 2 px (of 320) so the dream's fine texture does not count;
            1 is the source itself, 0 nothing of it
=========== ======================================================================================

The table gives, after a settling second (frames >= 48): the worst clipped % of any 48-frame window,
the worst window's relative deviation of brightness, contrast and saturation from their targets, the
sharpness and variety ratios of the last tenth, hue R / flat at the start and the end, the worst window's
and the last tenth's centre seam, and the source's
correlation in the early frames and the last tenth. One PNG per render plots
the figures over time.

    python benchmarks/long_run.py --frames 3000 --size 128x72          # every feedback preset, 3 inputs
    python benchmarks/long_run.py --presets fractal-zoom --inputs noise --frames 300 --size 64x36
    python benchmarks/long_run.py --size 640x360 --frames 400 --inputs video --presets fractal-zoom

Options: ``--set KEY=VALUE`` for every render, ``--out DIR`` (renders and plots; the frames of each
render are removed after measuring unless ``--keep``), ``--json FILE``, ``--threads``, ``--stills K`` (K
frames of each render on one PNG sheet, to look at), ``--deadline SECONDS`` (stop rendering then and measure the
frames made so far, as the table's frames column says: runs side by side on a GPU within a time budget),
``--resume`` (a run stopped by the deadline with ``--keep`` continues from its last saved frame, so a run
longer than one sitting can be made in several), ``--audio FILE`` (the soundtrack of every render; without
it, a preset whose schedules read audio variables, such as beat-zoom, gets a generated 120 bpm kick over a
tone, so its beat keys lunge as under a song instead of reading 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from renderer import media  # noqa: E402
from renderer.color import Coherence, ColorSpace, figures  # noqa: E402
from renderer.config import Mode, load_preset, preset_names  # noqa: E402
from renderer.frames import to_tensor  # noqa: E402
from renderer.metrics import centre_seam, sharpness  # noqa: E402
from renderer.pipeline import RenderInterrupted, render  # noqa: E402
from renderer.plan import RenderRequest, plan_render  # noqa: E402
from renderer.scenes import soundtrack  # noqa: E402

INPUTS = {"noise": "noise", "photo": str(ROOT / "samples" / "chelsea.jpg"), "video": str(ROOT / "samples" / "bunny.mp4")}
WINDOW = 48          # frames per window (2 s at 24 fps); also the settling time skipped
EARLY = slice(1, 49)  # the early frames sharpness is compared with (frame 0 is the full first dream)
VARIETY_LAYER = "mixed4c"
VARIETY_WIDTH = 320


@dataclass
class Series:
    """Per-frame figures of one render, each (n_frames,)."""

    clipped: np.ndarray      # % of channel values at 0 or 255
    brightness: np.ndarray
    contrast: np.ndarray
    saturation: np.ndarray
    targets: np.ndarray      # (n_frames, 3): brightness, contrast, saturation targets
    sharpness: np.ndarray
    hue_r: np.ndarray
    flat: np.ndarray
    variety: np.ndarray
    seam: np.ndarray         # centre_seam
    source: np.ndarray       # NaN without a source video


@dataclass
class Summary:
    preset: str
    input: str
    size: str
    frames: int
    ms_per_frame: float
    clipped_max: float       # worst 48-frame window after settling, %
    clipped_end: float       # last window, %
    brightness_dev: float    # worst window |mean / target - 1|, %
    contrast_dev: float
    saturation_dev: float
    sharpness_ratio: float   # last tenth over early frames
    sharpness_settled: float  # last tenth over the second tenth
    hue_r_start: float
    hue_r_end: float
    flat_start: float        # %
    flat_end: float
    variety_early: float
    variety_ratio: float     # last tenth over early frames
    seam_max: float          # worst 48-frame window after settling
    seam_end: float          # last tenth
    source_early: float      # NaN without a source video
    source_end: float


def hue_concentration(frame: np.ndarray) -> float:
    """Length of the mean of saturation-weighted unit hue vectors over the weights' sum, 0..1."""
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV_FULL).astype(np.float64)
    angle, weight = hsv[..., 0] / 256.0 * 2 * np.pi, hsv[..., 1] / 255.0
    total = weight.sum()
    if total < 1e-9:
        return 0.0
    return float(np.hypot((weight * np.cos(angle)).sum(), (weight * np.sin(angle)).sum()) / total)


def flat_share(frame: np.ndarray) -> float:
    """Share of pixels (%) whose 3x3 neighbourhood has a single grey level."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    kernel = np.ones((3, 3), np.uint8)
    spread = cv2.dilate(grey, kernel).astype(np.int16) - cv2.erode(grey, kernel)
    return float((spread[1:-1, 1:-1] == 0).mean() * 100)


def _small(frame: np.ndarray) -> np.ndarray:
    """`frame` resized to the variety and source figures' 320 px width (area filter)."""
    h, w = frame.shape[:2]
    return cv2.resize(frame, (VARIETY_WIDTH, max(1, round(h * VARIETY_WIDTH / w))), interpolation=cv2.INTER_AREA)


@torch.no_grad()
def variety(frames: list[np.ndarray], model: torch.nn.Module, device: torch.device, grid: int = 4) -> np.ndarray:
    """Per frame, the mean cosine distance between the channel-mean mixed4c activations of a
    `grid` x `grid` split of the frame (resized to 320 px wide): 0 when every cell holds the same pattern."""
    out = []
    for frame in frames:
        acts = model(to_tensor(_small(frame), device), [VARIETY_LAYER])[VARIETY_LAYER][0].float()
        cells = torch.nn.functional.adaptive_avg_pool2d(acts, (grid, grid)).flatten(1).T  # (grid^2, C)
        cells = torch.nn.functional.normalize(cells, dim=1)
        n = grid * grid
        out.append(1.0 - float(((cells @ cells.T).sum() - n) / (n * (n - 1))))
    return np.array(out)


def source_correlation(frame: np.ndarray, source: np.ndarray) -> float:
    """Correlation of the blurred luma of `frame` and `source` (both resized to 320 px wide)."""
    a, b = (cv2.GaussianBlur(cv2.cvtColor(_small(f), cv2.COLOR_RGB2GRAY).astype(np.float64), (0, 0), 2.0).ravel()
            for f in (frame, source))
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / max(1e-9, np.sqrt((a * a).sum() * (b * b).sum())))


def measure(frames: list[np.ndarray], targets: np.ndarray, model: torch.nn.Module, device: torch.device,
            sources: list[np.ndarray] | None = None) -> Series:
    """Figures of uint8 (H,W,3) frames; `targets` (n, 3) as in :class:`Series`; `sources`: the source
    video's frames at the render's size, for the source correlation."""
    figs = np.stack([figures(to_tensor(f), ColorSpace.RGB).numpy()[:3] for f in frames])
    clipped = np.array([((f == 0) | (f == 255)).mean() * 100 for f in frames])
    sharp = np.array([sharpness(f) for f in frames])
    shown = (np.array([source_correlation(f, s) for f, s in zip(frames, sources)]) if sources
             else np.full(len(frames), np.nan))
    return Series(clipped, figs[:, 0], figs[:, 1], figs[:, 2], targets, sharp,
                  np.array([hue_concentration(f) for f in frames]), np.array([flat_share(f) for f in frames]),
                  variety(frames, model, device), np.array([centre_seam(f) for f in frames]), shown)


def windows(values: np.ndarray) -> np.ndarray:
    """Means of consecutive 48-frame windows from frame 48 on (at least one window)."""
    tail = values[WINDOW:] if len(values) > 2 * WINDOW else values[len(values) // 2:]
    n = max(1, len(tail) // WINDOW)
    return np.array([chunk.mean() for chunk in np.array_split(tail, n)])


def summarise(series: Series, preset: str, name: str, size: str, ms: float) -> Summary:
    def worst(values: np.ndarray, target: np.ndarray) -> float:
        return float(np.abs(windows(values) / windows(target) - 1).max() * 100)

    n = len(series.clipped)
    late = slice(n - max(1, n // 10), n)
    return Summary(preset, name, size, n, ms, float(windows(series.clipped).max()), float(windows(series.clipped)[-1]),
                   worst(series.brightness, series.targets[:, 0]), worst(series.contrast, series.targets[:, 1]),
                   worst(series.saturation, series.targets[:, 2]),
                   float(series.sharpness[late].mean() / series.sharpness[EARLY].mean()),
                   float(series.sharpness[late].mean() / series.sharpness[max(1, n // 10):max(2, 2 * n // 10)].mean()),
                   float(series.hue_r[EARLY].mean()), float(series.hue_r[late].mean()),
                   float(series.flat[EARLY].mean()), float(series.flat[late].mean()),
                   float(series.variety[EARLY].mean()), float(series.variety[late].mean() / series.variety[EARLY].mean()),
                   float(windows(series.seam).max()), float(series.seam[late].mean()),
                   float(series.source[EARLY].mean()), float(series.source[late].mean()))


def looped_video(path: str, frames: int, size: tuple[int, int], folder: Path) -> Path:
    """`path` looped to at least `frames` frames at `size` (the render's size: decoding stays cheap)."""
    out = folder / f"{Path(path).stem}-loop-{size[0]}x{size[1]}-{frames}.mp4"
    if not out.exists():
        info = media.probe(path)
        loops = frames // max(1, info.n_frames) + 1
        tmp = out.with_name(f".{out.stem}.{os.getpid()}{out.suffix}")  # runs side by side share the clip
        subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", str(loops),
                        "-i", path, "-an", "-vf", f"scale={size[0]}:{size[1]}", "-frames:v", str(frames + 1),
                        "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv444p", str(tmp)], check=True)
        os.replace(tmp, out)
    return out


def kick_track(seconds: float, folder: Path) -> Path:
    """A `seconds` long WAV with a kick every 0.5 s (120 bpm) over a quiet tone (:func:`renderer.scenes.soundtrack`),
    for presets whose schedules follow the music; made once per `folder`."""
    out = folder / f"kick-120bpm-{seconds:.0f}s.wav"
    if not out.exists():
        tmp = out.with_name(f".{out.stem}.{os.getpid()}{out.suffix}")  # runs side by side share the track
        os.replace(soundtrack(tmp, round(seconds)), out)
    return out


def run(preset: str, name: str, frames: int, size: tuple[int, int], out: Path, overrides: list[str],
        keep: bool, stills: int = 0, stop_at: float = float("inf"), resume: bool = False,
        audio: Path | None = None) -> tuple[Series, Summary]:
    """Render one long run and measure it; with `stills`, save that many evenly spaced frames as one sheet.
    At `stop_at` (``time.monotonic()``) the render is interrupted and the frames made so far are measured.
    With `resume`, a run stopped earlier (and kept) continues from its last saved frame; ms/frame counts
    only the frames made in this call. `audio` is the soundtrack (default: :func:`kick_track` for a preset
    that reads audio variables, else none)."""
    source = INPUTS[name]
    if name == "video":
        source = str(looped_video(source, frames, size, out))
    if audio is None and load_preset(preset, overrides).reads_audio_features:
        audio = kick_track(frames / 12 + 1, out)  # long enough at any rate from 12 fps up
    folder = out / f"{preset}-{name}-{size[0]}x{size[1]}"
    request = RenderRequest(source, output=f"{folder}/", preset=preset, overrides=tuple(overrides),
                            frames=frames, size=size, audio=audio, no_audio=audio is None, overwrite=True,
                            resume=resume)
    plan = plan_render(request)
    resumed_at: int | None = None  # frames already made when this call started (0 for a fresh render)

    def progress(done: int, total: int) -> None:
        nonlocal resumed_at
        if resumed_at is None:
            resumed_at = done - 1
        print(f"\r  {preset} {name}: {done}/{total}", end="", flush=True)
        if time.monotonic() > stop_at:
            raise KeyboardInterrupt  # as Ctrl-C: the render keeps its finished segments

    start = time.perf_counter()
    try:
        render(plan, progress=progress)
        made = sorted(folder.glob("*.png"))
    except RenderInterrupted as stopped:
        print(f"\n  stopped at the deadline: {stopped.message}")
        made = sorted(plan.work.path.glob("*/*.png"))  # segment folders in order, frames in order within
    ms = (time.perf_counter() - start) / max(1, len(made) - (resumed_at or 0)) * 1000
    print()
    images = [media.load_image(p) for p in made]
    sources, reference = None, None
    if name == "video":
        sources, reference = [], []
        with contextlib.closing(plan.source.frames(0)) as decoded:  # the source frames the render saw, at its size
            for frame, _ in zip(decoded, images):
                reference.append(figures(to_tensor(frame), ColorSpace.RGB).numpy()[:3])
                sources.append(_small(frame))
    coherence = plan.preset.color.coherence
    if coherence is Coherence.AUTO:
        coherence = Coherence.SOURCE if name == "video" else Coherence.FIRST_FRAME
    if coherence is Coherence.SOURCE and reference:
        targets = np.stack(reference)
    else:
        targets = np.repeat(figures(to_tensor(images[0]), ColorSpace.RGB).numpy()[None, :3], len(images), 0)
    for column, key in enumerate(("brightness", "contrast", "saturation")):
        scheduled = np.array([getattr(plan.timeline.frame(i), f"color_{key}") for i in range(len(images))])
        targets[:, column] = np.where(scheduled > 0, scheduled, targets[:, column])
    series = measure(images, targets, plan.model, plan.device, sources)
    if stills:
        save_sheet(images, stills, out / f"{preset}.{name}.{size[0]}x{size[1]}.frames.png")
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(plan.work.path, ignore_errors=True)
    return series, summarise(series, preset, name, f"{size[0]}x{size[1]}", ms)


def save_sheet(images: list[np.ndarray], count: int, path: Path) -> None:
    """`count` evenly spaced frames (first and last included) in rows of three, at most 320 px wide each,
    labelled with their frame number: what the long run looked like along the way, in one PNG."""
    picks = np.linspace(0, len(images) - 1, count).round().astype(int)
    h, w = images[0].shape[:2]
    scale = min(1.0, 320 / w)
    size = (round(w * scale), round(h * scale))
    tiles = []
    for i in picks:
        tile = cv2.resize(images[i], size, interpolation=cv2.INTER_AREA)
        cv2.putText(tile, str(i), (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 3)
    sheet = np.vstack([np.hstack(tiles[r:r + 3]) for r in range(0, len(tiles), 3)])
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def plot(series: Series, summary: Summary, path: Path) -> None:
    """Figures over time for one render (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(len(series.clipped))
    fig, axes = plt.subplots(5, 1, figsize=(10, 12), sharex=True)
    axes[0].plot(t, series.clipped, lw=0.6)
    axes[0].axhline(1.0, color="r", ls="--", lw=0.8)
    axes[0].set_ylabel("clipped %")
    for column, key in enumerate(("brightness", "contrast", "saturation")):
        axes[1].plot(t, getattr(series, key) / series.targets[:, column], lw=0.6, label=key)
    for bound in (0.9, 1.1):
        axes[1].axhline(bound, color="r", ls="--", lw=0.8)
    axes[1].set_ylabel("figure / target")
    axes[1].legend(loc="upper right", fontsize=8)
    axes[2].plot(t, series.sharpness / series.sharpness[EARLY].mean(), lw=0.6, label="sharpness / early")
    axes[2].plot(t, series.seam, lw=0.6, label="centre seam")
    axes[2].axhline(0.9, color="r", ls="--", lw=0.8)
    axes[2].set_ylabel("sharpness, seam")
    axes[2].legend(loc="upper right", fontsize=8)
    axes[3].plot(t, series.hue_r, lw=0.6, label="hue R")
    axes[3].plot(t, series.flat / 100, lw=0.6, label="flat share")
    axes[3].set_ylabel("hue R, flat")
    axes[3].legend(loc="upper right", fontsize=8)
    axes[4].plot(t, series.variety, lw=0.6, label="variety")
    if not np.isnan(series.source).all():
        axes[4].plot(t, series.source, lw=0.6, label="source correlation")
    axes[4].set_ylabel("variety, source")
    axes[4].set_xlabel("frame")
    axes[4].legend(loc="upper right", fontsize=8)
    fig.suptitle(f"{summary.preset}, {summary.input}, {summary.size}, {summary.frames} frames")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def feedback_presets() -> list[str]:
    return [name for name in preset_names() if load_preset(name).mode is Mode.FEEDBACK]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default=",".join(feedback_presets()))
    parser.add_argument("--inputs", default="noise,photo,video")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--size", default="128x72")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=Path("/tmp/dreamvid-long-run"))
    parser.add_argument("--keep", action="store_true", help="keep each render's PNG frames")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--stills", type=int, default=0, metavar="K",
                        help="save K evenly spaced frames of each render as one PNG sheet beside its plot")
    parser.add_argument("--deadline", type=float, default=0, metavar="SECONDS",
                        help="stop rendering after this many seconds and measure the frames made so far")
    parser.add_argument("--audio", type=Path, metavar="FILE",
                        help="soundtrack of every render (default: a 120 bpm kick for presets that read audio)")
    parser.add_argument("--resume", action="store_true",
                        help="continue runs stopped earlier with --keep (same --out, presets, size, --set)")
    args = parser.parse_args()
    stop_at = time.monotonic() + args.deadline if args.deadline else float("inf")
    if args.threads:
        torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for preset in args.presets.split(","):
        for name in args.inputs.split(","):
            if time.monotonic() > stop_at:
                print(f"skipped {preset} {name}: the deadline has passed")
                continue
            series, summary = run(preset, name, args.frames, size, args.out, args.overrides, args.keep, args.stills,
                                  stop_at, args.resume, args.audio)
            plot(series, summary, args.out / f"{preset}.{name}.{args.size}.png")
            summaries.append(summary)
            print_table(summaries[-1:])
            if args.json:  # after every render: a long batch stopped early keeps what it measured
                args.json.write_text(json.dumps([asdict(s) for s in summaries], indent=1))
    print(f"\nplots in {args.out}; {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print_table(summaries)


def print_table(summaries: list[Summary]) -> None:
    print("| preset | input | size | frames | ms/frame | clipped % max / end | brightness | contrast | saturation "
          "| sharpness / early, settled | hue R start / end | flat % start / end | variety early, last / early "
          "| seam worst / end | source early / end |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in summaries:
        print(f"| {s.preset} | {s.input} | {s.size} | {s.frames} | {s.ms_per_frame:.0f} | {s.clipped_max:.2f} / "
              f"{s.clipped_end:.2f} | {s.brightness_dev:.1f} % | {s.contrast_dev:.1f} % | {s.saturation_dev:.1f} % "
              f"| {s.sharpness_ratio:.2f}, {s.sharpness_settled:.2f} | {s.hue_r_start:.2f} / {s.hue_r_end:.2f} | {s.flat_start:.1f} / {s.flat_end:.1f} "
              f"| {s.variety_early:.2f}, {s.variety_ratio:.2f} | {s.seam_max:.1f} / {s.seam_end:.1f} "
              f"| {s.source_early:.2f} / {s.source_end:.2f} |")


if __name__ == "__main__":
    main()
