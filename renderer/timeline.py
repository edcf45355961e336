"""A preset's settings evaluated for every frame of a render, once, before the first frame.

Every scheduled key becomes an array of per-frame values (range-checked at every frame), and the
objective a cross-fade between objective texts. :meth:`Timeline.frame` hands the pipeline the plain
numbers for frame n.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .audio import FEATURE_NAMES, AudioFeatures
from .config import Preset, Scheduled, check_range
from .dream import DreamSettings
from .motion import Motion
from .schedule import ScheduleContext, TextSchedule, parse_schedule, parse_text_schedule

OBJECTIVE_KEY = "dream.objective"


def scheduled_keys(preset: Preset) -> dict[str, object]:
    """{"section.key": raw value} for every numeric scheduled setting of the preset."""
    keys = {}
    for section in dataclasses.fields(preset):
        value = getattr(preset, section.name)
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                path = f"{section.name}.{f.name}"
                if f.type in (Scheduled, "Scheduled") and path != OBJECTIVE_KEY:
                    keys[path] = getattr(value, f.name)
    return keys


def uses_audio(preset: Preset) -> bool:
    """Whether any schedule reads an audio feature or the tempo (then the soundtrack is analysed)."""
    audio_names = set(FEATURE_NAMES) | {"bpm"}
    if any(parse_schedule(v, k).names & audio_names for k, v in scheduled_keys(preset).items()):
        return True
    return any(kf.key.unit.name == "BEATS" for kf in parse_text_schedule(preset.dream.objective, OBJECTIVE_KEY).keyframes
               if kf.key is not None)


@dataclass(frozen=True)
class FrameSettings:
    """Everything that may change from frame to frame."""

    dream: DreamSettings
    motion: Motion
    mix: float
    carry: float
    refresh: float
    color_match: float
    objective: list[tuple[str, float]]  # objective texts with cross-fade weights (sum 1)


@dataclass(frozen=True)
class Timeline:
    preset: Preset
    context: ScheduleContext
    values: dict[str, np.ndarray]       # "section.key" -> (n_frames,) float64
    objective: TextSchedule

    @property
    def n_frames(self) -> int:
        return self.context.n_frames

    def frame(self, n: int) -> FrameSettings:
        """The settings of frame `n` (frames past the planned count reuse the last values)."""
        i = min(n, self.n_frames - 1)
        v = {k: float(a[i]) for k, a in self.values.items()}
        d = self.preset.dream
        first = n == 0
        dream = DreamSettings(
            steps=d.first_steps if first else round(v["dream.steps"]),
            step_size=v["dream.step_size"],
            octaves=d.first_octaves if first else round(v["dream.octaves"]),
            octave_scale=v["dream.octave_scale"],
            jitter=d.jitter,
            tile=d.tile,
            precision=d.precision,
        )
        motion = Motion(zoom=v["motion.zoom"], angle=v["motion.angle"], translate_x=v["motion.translate_x"],
                        translate_y=v["motion.translate_y"], center_x=v["motion.center_x"],
                        center_y=v["motion.center_y"])
        return FrameSettings(dream, motion, v["motion.mix"], v["flow.carry"], v["flow.refresh"],
                             v["color.match"], self.objective.weights_at(i, self.context))


def build_timeline(preset: Preset, n_frames: int, fps: float, audio: AudioFeatures | None = None) -> Timeline:
    """Evaluate every schedule of `preset` over `n_frames` frames at `fps` (audio features and tempo
    from `audio`, zeros and no tempo without). Raises PresetError naming key and frame."""
    features = audio.as_variables() if audio is not None else {}
    context = ScheduleContext(n_frames=n_frames, fps=fps, bpm=audio.bpm if audio else None, features=features)
    values = {}
    for path, raw in scheduled_keys(preset).items():
        series = parse_schedule(raw, path).evaluate(context)
        for bound in (int(series.argmin()), int(series.argmax())):
            check_range(path, float(series[bound]), bound)
        values[path] = series
    objective = parse_text_schedule(preset.dream.objective, OBJECTIVE_KEY)
    objective.weights_at(0, context)  # beat keys without a tempo fail now, not mid-render
    return Timeline(preset, context, values, objective)
