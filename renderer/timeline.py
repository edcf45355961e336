"""A preset's settings evaluated for every frame of a render, once, before the first frame.

Every scheduled key becomes an array of per-frame values (range-checked at every frame), and the
objective a cross-fade between objective texts. :meth:`Timeline.frame` hands the pipeline the plain
numbers for frame n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import AudioFeatures
from .config import Preset, check_range
from .dream import DreamSettings
from .motion import Motion
from .schedule import Schedule, ScheduleContext, TextSchedule

OBJECTIVE_KEY = "dream.objective"


@dataclass(frozen=True)
class FrameSettings:
    """Everything that may change from frame to frame."""

    dream: DreamSettings
    motion: Motion
    mix: float
    follow: float                       # seconds, 0 = off (motion.follow)
    carry: float
    refine: float
    refresh: float
    color_match: float                  # colour controller strength (proportional gain), 0 = off
    cadence: int                        # frames from this keyframe to the next (1 = dream every frame)
    objective: list[tuple[str, float]]  # objective texts with cross-fade weights (sum 1)
    # Scheduled colour targets in figure units (renderer.color.figures); 0 = from the reference.
    color_brightness: float = 0.0       # mean luma, 0..1
    color_contrast: float = 0.0         # std of luma
    color_saturation: float = 0.0       # mean HSV saturation, 0..1
    color_detail: float = 0.0           # sharpness controller strength (proportional gain), 0 = off
    variety: float = 0.0                # feature-mix controller exponent (renderer.variety), 0 = off


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
            working_size=d.working_size,
            jitter=d.jitter,
            tile=d.tile,
            precision=d.precision,
        )
        motion = Motion(zoom=v["motion.zoom"], angle=v["motion.angle"], translate_x=v["motion.translate_x"],
                        translate_y=v["motion.translate_y"], center_x=v["motion.center_x"],
                        center_y=v["motion.center_y"])
        cadence = round(v[f"{self.preset.mode.cadence_section}.cadence"])
        return FrameSettings(dream, motion, v["motion.mix"], v["motion.follow"], v["flow.carry"], v["flow.refine"], v["flow.refresh"],
                             v["color.match"], cadence, self.objective.weights_at(i, self.context),
                             v["color.brightness"], v["color.contrast"], v["color.saturation"],
                             v["color.detail"], v["dream.variety"])


def build_timeline(preset: Preset, n_frames: int, fps: float, audio: AudioFeatures | None = None) -> Timeline:
    """Evaluate every schedule of `preset` over `n_frames` frames at `fps`. Audio features come from
    `audio` (zeros without); the tempo is the preset's ``audio.bpm`` when set, else the soundtrack's.
    Raises PresetError naming key and frame."""
    features = audio.as_variables() if audio is not None else {}
    bpm = preset.audio.bpm or (audio.bpm if audio is not None else None) or None
    context = ScheduleContext(n_frames=n_frames, fps=fps, bpm=bpm, features=features)
    values = {}
    for path, schedule in preset.schedules().items():
        if isinstance(schedule, Schedule):
            series = schedule.evaluate(context)
            for bound in (int(series.argmin()), int(series.argmax())):
                check_range(path, float(series[bound]), bound)
            values[path] = series
    objective = preset.dream.objective
    objective.weights_at(0, context)  # beat keys without a tempo fail now, not mid-render
    return Timeline(preset, context, values, objective)
