"""What the page plots under the preview: every scheduled value over time, the objective
cross-fades, the soundtrack's waveform and its detected beats (the data; the page draws it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import media
from ..audio import AudioFeatures
from ..sources import Source
from ..timeline import Timeline

#: Points per curve sent to the page (curves are subsampled above this).
MAX_POINTS = 600
#: Columns of the waveform envelope.
WAVEFORM_COLUMNS = 600
_WAVEFORM_RATE = 8000


def curves(source: Source, timeline: Timeline, features: AudioFeatures | None) -> dict[str, Any]:
    """``{"fps", "n_frames", "seconds", "frames": [...], "values": {key: [...]}, "constant": {key: v},
    "objective": {text: [...]}, "waveform": [...], "beats": [...], "bpm"}``.

    ``values`` holds the settings that change over time, sampled at ``frames``; ``waveform`` the peak
    level (0..1) of the soundtrack span in equal columns; ``beats`` the beat times in seconds."""
    ctx = timeline.context
    frames = np.unique(np.linspace(0, ctx.n_frames - 1, min(ctx.n_frames, MAX_POINTS)).round().astype(int))
    moving = {k: v for k, v in timeline.values.items() if np.ptp(v) > 0}
    texts = timeline.objective.texts
    objective: dict[str, list[float]] = {}
    if len(texts) > 1:
        weights = [dict(timeline.objective.weights_at(int(n), ctx)) for n in frames]
        objective = {text: [round(w.get(text, 0.0), 4) for w in weights] for text in texts}
    return {
        "fps": ctx.fps, "n_frames": ctx.n_frames, "seconds": ctx.n_frames / ctx.fps,
        "frames": frames.tolist(),
        "values": {k: np.round(v[frames], 5).tolist() for k, v in moving.items()},
        "constant": {k: float(v[0]) for k, v in timeline.values.items() if k not in moving},
        "objective": objective,
        "waveform": waveform(source),
        "beats": [] if features is None else np.round(features.beat_times, 3).tolist(),
        "bpm": None if features is None else features.bpm,
    }


def waveform(source: Source) -> list[float]:
    """Peak level per column of the render's soundtrack span (empty without sound)."""
    if source.audio is None:
        return []
    a = source.audio
    end = None if a.duration is None else a.start + a.duration
    samples = np.abs(media.read_audio(a.path, _WAVEFORM_RATE, a.start, end))
    if samples.size == 0:
        return []
    columns = np.array_split(samples, min(WAVEFORM_COLUMNS, samples.size))
    peaks = np.array([c.max() for c in columns])
    top = float(peaks.max()) or 1.0
    return np.round(peaks / top, 3).tolist()
