"""Drawing a render's schedules over time (``dreamvid schedule --plot``), so motion can be checked
before hours of rendering."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np

from .audio import FEATURE_NAMES, AudioFeatures
from .timeline import Timeline


def plot_timeline(timeline: Timeline, audio: AudioFeatures | None, path: Path) -> Path:
    """Plot every scheduled value that changes (one panel each), the objective cross-fades, and the
    audio features under them, against seconds. Constant values are listed in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ctx = timeline.context
    seconds = np.arange(ctx.n_frames) / ctx.fps
    moving = {k: v for k, v in timeline.values.items() if np.ptp(v) > 0}
    texts = timeline.objective.texts
    panels = len(moving) + (len(texts) > 1) + (audio is not None)
    fig, axes = plt.subplots(max(panels, 1), 1, sharex=True, squeeze=False,
                             figsize=(11, 1.6 + 1.5 * max(panels, 1)))
    axes = list(axes[:, 0])
    for ax, (key, values) in zip(axes, moving.items()):
        ax.plot(seconds, values, lw=1.2)
        ax.set_ylabel(key, rotation=0, ha="right", va="center", fontsize=8)
        ax.grid(alpha=0.3)
    row = len(moving)
    if len(texts) > 1:
        weights = np.zeros((len(texts), ctx.n_frames))
        for n in range(ctx.n_frames):
            for text, w in timeline.objective.weights_at(n, ctx):
                weights[texts.index(text), n] = w
        axes[row].stackplot(seconds, weights, labels=texts, alpha=0.8)
        axes[row].legend(loc="upper right", fontsize=7)
        axes[row].set_ylabel("objective", rotation=0, ha="right", va="center", fontsize=8)
        row += 1
    if audio is not None:
        for offset, name in enumerate(FEATURE_NAMES):
            axes[row].plot(seconds, getattr(audio, name) + 1.1 * offset, lw=0.8, label=name)
        axes[row].set_yticks([1.1 * i + 0.5 for i in range(len(FEATURE_NAMES))], FEATURE_NAMES, fontsize=7)
        tempo = f"{audio.bpm:.1f} bpm" if audio.bpm else "no tempo"
        axes[row].set_ylabel(f"audio\n({tempo})", rotation=0, ha="right", va="center", fontsize=8)
    axes[-1].set_xlabel("seconds")
    constant = [f"{k}={v[0]:g}" for k, v in timeline.values.items() if k not in moving]
    title = f"{ctx.n_frames} frames at {ctx.fps:g} fps" + ("" if moving else " - no value changes over time")
    fig.suptitle("\n".join([title, *textwrap.wrap(", ".join(constant), 150)]), fontsize=7)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
