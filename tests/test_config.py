"""Presets: overrides, validation messages, round trip of the saved settings, per-frame timelines."""

from __future__ import annotations

import pytest

from renderer.audio import AudioFeatures
from renderer.config import Mode, build_preset, dump_toml, load_preset
from renderer.dream import DEFAULTS, Precision
from renderer.flow import FlowMethod
from renderer.errors import PresetError
from renderer.timeline import build_timeline


def test_overrides_read_toml_values_and_plain_text():
    preset = load_preset("fractal-zoom", ["dream.steps=6", "motion.zoom=1.5", "dream.objective=mixed5a",
                                          'motion.angle="0:(0), 24:(90)"', "flow.consistency=false", "mode=flow"])
    assert preset.dream.steps.constant == 6 and preset.motion.zoom.constant == 1.5
    assert preset.dream.objective.texts == ("mixed5a",)
    assert preset.motion.angle.source == "0:(0), 24:(90)" and preset.flow.consistency is False and preset.mode is Mode.FLOW


@pytest.mark.parametrize(("override", "words"), [
    ("dream.stepz=3", "unknown key 'dream.stepz' (did you mean 'dream.steps'?) - known keys in [dream]: objective, steps"),
    ("motion.zom=1.2", "(did you mean 'motion.zoom'?)"),
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
    assert preset.needs_soundtrack and not load_preset("fractal-zoom").needs_soundtrack
    silent = AudioFeatures.silent(48)
    beat = silent.beat.copy()
    beat[12] = 1.0
    import dataclasses

    timeline = build_timeline(preset, 48, 24.0, dataclasses.replace(silent, beat=beat, bpm=120.0))
    assert timeline.frame(12).motion.zoom == pytest.approx(1.08 + 2.5)
    assert timeline.frame(11).motion.zoom == pytest.approx(1.08)


def test_settings_are_typed_once():
    """Choices become enums whatever their case, schedules are parsed, sizes are tuples."""
    preset = load_preset("flow-dream", ["dream.precision=FP32", "flow.method=Farneback", 'output.size="320x180"'])
    assert preset.dream.precision is Precision.FP32 and preset.flow.method is FlowMethod.FARNEBACK
    assert preset.output.size == (320, 180)
    assert "precision = \"fp32\"" in dump_toml(preset) and "size = \"320x180\"" in dump_toml(preset)


def test_one_definition_of_each_default():
    """Presets read the dream defaults that `dreamvid still` uses: a render's first frame is a full dream."""
    dream = build_preset({}).dream
    assert (dream.first_steps, dream.first_octaves, dream.jitter, dream.precision) == \
        (DEFAULTS.steps, DEFAULTS.octaves, DEFAULTS.jitter, DEFAULTS.precision)
    assert dream.step_size.constant == DEFAULTS.step_size and dream.octave_scale.constant == DEFAULTS.octave_scale


@pytest.mark.parametrize("override", ["motion.zoom=0:(1), 8b:(1.5)", "dream.objective=0:(mixed4c), 4b:(mixed5a)",
                                      "motion.angle=bpm/10"])
def test_beat_keys_need_a_tempo_and_take_it_from_the_soundtrack_or_the_preset(override):
    """Beat keys in numeric and text schedules, and `bpm`, ask for the soundtrack; a tempo in the preset
    (or --bpm) is enough on its own."""
    preset = load_preset("fractal-zoom", [override])
    assert preset.needs_tempo and preset.needs_soundtrack
    with pytest.raises(PresetError, match="needs a tempo|tempo is unknown") as info:
        build_timeline(preset, 96, 24.0)
    assert "--bpm" in str(info.value)
    import dataclasses

    timeline = build_timeline(preset, 96, 24.0, dataclasses.replace(AudioFeatures.silent(96), bpm=120.0))
    with_bpm = load_preset("fractal-zoom", [override, "audio.bpm=120"])
    assert not with_bpm.needs_soundtrack
    if "motion.zoom" in override:  # 8 beats at 120 bpm = 4 s = frame 96: halfway at frame 48
        assert timeline.frame(48).motion.zoom == pytest.approx(1.25)
        assert build_timeline(with_bpm, 96, 24.0).frame(48).motion.zoom == pytest.approx(1.25)


def test_layered_presets_merge_key_by_key_later_wins(tmp_path):
    """--preset fractal-zoom --preset mymotion.toml: tables merge, later layers win key by key, the top-level
    mode and description too; the saved settings are the merged result and load back identically."""
    motion = tmp_path / "mymotion.toml"
    motion.write_text('description = "my motion"\n[motion]\nzoom = "0:(1), 2s:(1.6)"\nangle = 12\n')
    flow = tmp_path / "flow.toml"
    flow.write_text('mode = "flow"\n[flow]\nrefine = 0.3\n')
    look = load_preset("fractal-zoom")
    layered = load_preset(["fractal-zoom", str(motion), str(flow)], ["motion.angle=6"])
    assert layered.dream == look.dream and layered.color == look.color and layered.motion.mix == look.motion.mix
    assert layered.motion.zoom.source == "0:(1), 2s:(1.6)" and layered.motion.angle.constant == 6
    assert layered.description == "my motion" and layered.mode is Mode.FLOW and layered.flow.refine.constant == 0.3
    assert load_preset([str(motion), "fractal-zoom"]).motion.zoom.constant == 1.4  # order matters
    assert load_preset(("fractal-zoom",)) == look == load_preset("fractal-zoom") and load_preset([]) == build_preset({})
    saved = tmp_path / "render.toml"
    saved.write_text(dump_toml(layered))
    assert load_preset(str(saved)) == layered


def test_layers_are_shown_and_scheduled_from_the_command_line(capsys, monkeypatch, tmp_path):
    from conftest import dreamvid

    motion = tmp_path / "mymotion.toml"
    motion.write_text('[motion]\nangle = "0:(0), 24:(48)"\n')
    code, out, err = dreamvid(capsys, monkeypatch, "presets", "show", "fractal-zoom", "--preset", motion)
    assert code == 0 and 'angle = "0:(0), 24:(48)"' in out and "mix = 0.15" in out and str(motion) in out, err
    code, out, err = dreamvid(capsys, monkeypatch, "schedule", "fractal-zoom", "--preset", motion, "--seconds", "1")
    assert code == 0 and "motion.angle" in out.splitlines()[0], err
    assert out.splitlines()[13].split()[:3] == ["12", "0.50", "24"]  # frame 12: halfway to 48 degrees/s


def test_a_render_never_overwrites_any_layer_it_reads(capsys, monkeypatch, tmp_path):
    from conftest import dreamvid

    layer = tmp_path / "out.toml"
    layer.write_text("[motion]\nzoom = 1.2\n")
    code, _, err = dreamvid(capsys, monkeypatch, "render", "noise", "--preset", "fractal-zoom", "--preset", layer,
                            "-o", tmp_path / "out.mp4", "--frames", "2", "--overwrite")
    assert code == 2 and "the preset it reads" in err and layer.read_text() == "[motion]\nzoom = 1.2\n", err
    assert not (tmp_path / "out.mp4").exists()
