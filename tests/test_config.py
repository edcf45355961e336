"""Presets: overrides, validation messages, round trip of the saved settings, per-frame timelines."""

from __future__ import annotations

import pytest

from renderer.audio import AudioFeatures
from renderer.config import Mode, build_preset, dump_toml, load_preset
from renderer.errors import PresetError
from renderer.timeline import build_timeline, uses_audio


def test_overrides_read_toml_values_and_plain_text():
    preset = load_preset("fractal-zoom", ["dream.steps=6", "motion.zoom=1.5", "dream.objective=mixed5a",
                                          'motion.angle="0:(0), 24:(90)"', "flow.consistency=false", "mode=flow"])
    assert preset.dream.steps == 6 and preset.motion.zoom == 1.5 and preset.dream.objective == "mixed5a"
    assert preset.motion.angle == "0:(0), 24:(90)" and preset.flow.consistency is False and preset.mode is Mode.FLOW


@pytest.mark.parametrize(("override", "words"), [
    ("dream.stepz=3", "unknown key 'dream.stepz' - known keys in [dream]: objective, steps"),
    ("colour.match=1", "unknown key 'colour'"),
    ("dream.steps=-1", "dream.steps: -1 is out of range - use a value from 0 to 1000"),
    ("motion.mix=1.5", "motion.mix: 1.5 is out of range"),
    ("mode=zoom", "mode: 'zoom' is not allowed - choose one of: feedback, flow"),
    ("flow.method=raft", "choose one of: dis, farneback"),
    ("dream.jitter=2.5", "dream.jitter: expected a whole number"),
    ("flow.consistency=3", "expected true or false"),
    ("dream=3", "expected a table"),
    ("noequals", "write --set section.key=value"),
    ('motion.zoom="0:(1), 48:(1.04"', 'motion.zoom: keyframe 2 ("48:(1.04"): missing ")"'),
])
def test_bad_settings_name_the_key(override, words):
    with pytest.raises(PresetError) as info:
        load_preset("fractal-zoom", [override])
    assert words in str(info.value) and "\n" not in str(info.value)


def test_unknown_preset_lists_the_shipped_ones():
    with pytest.raises(PresetError, match="choose one of: .*flow-dream.*fractal-zoom"):
        load_preset("fractal-zom")


def test_saved_settings_load_back_identically(tmp_path):
    preset = load_preset("beat-zoom", ["dream.steps=5"])
    path = tmp_path / "render.toml"
    path.write_text(dump_toml(preset, ["a comment"]))
    assert load_preset(str(path)) == preset
    assert load_preset(str(path)).digest() == preset.digest() != load_preset("beat-zoom").digest()


def test_timeline_checks_scheduled_values_on_every_frame():
    preset = build_preset({"motion": {"mix": "0:(0), 48:(2)"}})
    with pytest.raises(PresetError, match=r"motion.mix: 2 at frame 4[0-9] is out of range"):
        build_timeline(preset, 60, 24.0)


def test_timeline_first_frame_is_dreamed_fully_and_objectives_cross_fade():
    preset = build_preset({"dream": {"steps": "1 + t", "objective": "0:(mixed4c), 1s:(mixed4c), 2s:(mixed5a)"}})
    timeline = build_timeline(preset, 72, 24.0)
    assert timeline.frame(0).dream.steps == preset.dream.first_steps
    assert timeline.frame(5).dream.steps == 6
    assert timeline.frame(36).objective == [("mixed4c", 0.5), ("mixed5a", 0.5)]
    assert timeline.frame(60).objective == [("mixed5a", 1.0)]


def test_audio_variables_are_detected_and_used():
    preset = load_preset("beat-zoom")
    assert uses_audio(preset) and not uses_audio(load_preset("fractal-zoom"))
    silent = AudioFeatures.silent(48)
    beat = silent.beat.copy()
    beat[12] = 1.0
    import dataclasses

    timeline = build_timeline(preset, 48, 24.0, dataclasses.replace(silent, beat=beat, bpm=120.0))
    assert timeline.frame(12).motion.zoom == pytest.approx(1.08 + 2.5)
    assert timeline.frame(11).motion.zoom == pytest.approx(1.08)
