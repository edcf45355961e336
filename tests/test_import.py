"""`dreamvid import`: Deforum settings files and Parseq exports become presets that move frame for frame
as the originals did; every setting without an equivalent is listed; bad input is one line.

The fixtures are written by hand to the published formats: ``fixtures/deforum_2d_settings.txt`` as
Deforum (sd-webui-deforum) saves its settings beside the frames, ``fixtures/parseq_export.json`` as
sd-parseq exports a document (keyframes, options, rendered_frames with *_delta and *_pc).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numexpr
import numpy as np
import pytest

from renderer.color import Coherence, ColorSpace
from renderer.config import build_preset, load_preset
from renderer.dream import DEFAULTS
from renderer.timeline import build_timeline

from conftest import dreamvid

FIXTURES = Path(__file__).parent / "fixtures"
DEFORUM = FIXTURES / "deforum_2d_settings.txt"
PARSEQ = FIXTURES / "parseq_export.json"


def deforum_series(schedule: str, max_frames: int, seed: int) -> np.ndarray:
    """Deforum's own reading of a schedule (FrameInterpolater.get_inbetweens): a keyframe that is a plain
    number is interpolated linearly toward the next keyframe, any other expression is evaluated at every
    frame until the next keyframe; the first keyframe's value holds back to frame 0."""
    keys = {}
    for part in schedule.split(","):
        frame, value = part.split(":", 1)
        keys[int(frame)] = value.strip()
    series = np.full(max_frames, np.nan)
    value, is_number = "", True
    for i in range(max_frames):
        if i in keys:
            value = keys[i]
            plain = re.sub(r"[()'\"]", "", value)
            is_number = re.fullmatch(r"[+-]?[0-9]*(\.[0-9]+)?", plain) is not None
            if is_number:
                series[i] = float(plain)
        if not is_number:
            series[i] = numexpr.evaluate(value, local_dict={"t": i, "max_f": max_frames - 1, "s": seed})
    valid = np.flatnonzero(~np.isnan(series))
    return np.interp(np.arange(max_frames), valid, series[valid])


def imported(capsys, monkeypatch, tmp_path, source: Path, *extra) -> tuple[Path, str]:
    out = tmp_path / "imported.toml"
    code, stdout, stderr = dreamvid(capsys, monkeypatch, "import", source, "-o", out, *extra)
    assert code == 0, stderr
    return out, stdout


def test_deforum_settings_move_frame_for_frame_as_in_deforum(capsys, monkeypatch, tmp_path):
    """Zoom (per-frame factor -> per second), angle (degrees per frame -> per second), translation (pixels
    per frame -> frame widths / heights per second) and strength (-> dream step size) give Deforum's
    per-frame values on every frame, with expressions, held expressions, ramps and the seed variable."""
    out, _ = imported(capsys, monkeypatch, tmp_path, DEFORUM)
    settings = json.loads(DEFORUM.read_text())
    frames, fps, seed = settings["max_frames"], settings["fps"], settings["seed"]
    preset = load_preset(str(out))
    values = build_timeline(preset, frames, fps).values

    def deforum(key: str) -> np.ndarray:
        return deforum_series(settings[key], frames, seed)

    np.testing.assert_allclose(values["motion.zoom"] ** (1 / fps), deforum("zoom"), rtol=1e-9)
    np.testing.assert_allclose(values["motion.angle"] / fps, deforum("angle"), atol=1e-9)
    np.testing.assert_allclose(values["motion.translate_x"] * settings["W"] / fps, deforum("translation_x"), atol=1e-9)
    np.testing.assert_allclose(values["motion.translate_y"] * settings["H"] / fps, deforum("translation_y"), atol=1e-9)
    np.testing.assert_allclose(values["motion.center_y"], deforum("transform_center_y"), atol=1e-12)
    weakness = 1 - np.clip(deforum("strength_schedule"), 0, 1)
    np.testing.assert_allclose(values["dream.step_size"], DEFAULTS.step_size * weakness / 0.35, rtol=1e-9)
    assert values["dream.step_size"][0] == pytest.approx(DEFAULTS.step_size)  # Deforum's default 0.65
    assert preset.motion.center_y.source == settings["transform_center_y"]  # same syntax: copied verbatim
    assert preset.output.size == (640, 384) and preset.output.fps == 15 and preset.output.seed == 42
    assert preset.color.match.constant == 1.0  # "LAB": match to frame 0, in LAB
    assert preset.color.coherence is Coherence.FIRST_FRAME and preset.color.space is ColorSpace.LAB


def test_every_deforum_setting_is_carried_or_listed(capsys, monkeypatch, tmp_path):
    out, stdout = imported(capsys, monkeypatch, tmp_path, DEFORUM)
    settings = json.loads(DEFORUM.read_text())
    text = out.read_text()
    comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    carried = {"animation_mode", "max_frames", "fps", "W", "H", "seed", "zoom", "angle", "translation_x",
               "translation_y", "transform_center_x", "transform_center_y", "strength_schedule", "diffusion_cadence",
               "color_coherence"}
    listed = {key for key in settings if re.search(rf"[ ,:]{re.escape(key)}(,|$)", comments, re.M)}
    assert set(settings) - carried <= listed, sorted(set(settings) - carried - listed)
    not_carried = (set(settings) - carried) | ({"diffusion_cadence"} if "no cadence setting" in stdout else set())
    assert f"Not carried ({len(not_carried)} keys" in comments
    for key in ("prompts", "sampler", "steps", "cfg_scale_schedule", "translation_z", "noise_schedule", "border",
                "hybrid_motion", "sd_model_name"):
        assert re.search(rf"\b{key}\b", stdout), key  # printed too
    assert not re.search(r"\bcolor_coherence\b", stdout) and "render noise --frames 120 --preset fractal-zoom --preset" in stdout
    assert "zoom ** 15" in text and "translation_x * 15 / 640" in text  # units said beside each key


def test_cadence_is_carried_when_dreamvid_has_it(capsys, monkeypatch, tmp_path):
    from dataclasses import fields

    from renderer.config import MotionConfig

    out, stdout = imported(capsys, monkeypatch, tmp_path, DEFORUM)
    if "cadence" in {f.name for f in fields(MotionConfig)}:
        assert load_preset(str(out)).motion.cadence.constant == 2 and "diffusion_cadence" not in stdout
    else:
        assert "no cadence setting in this dreamvid: diffusion_cadence" in stdout


@pytest.mark.parametrize("value, coherence, space", [
    ("HSV", Coherence.FIRST_FRAME, ColorSpace.HSV), ("Match Frame 0 RGB", Coherence.FIRST_FRAME, ColorSpace.RGB),
    ("None", Coherence.AUTO, ColorSpace.LAB), ("Image", None, None)])
def test_colour_coherence_keeps_its_reference_and_space(capsys, monkeypatch, tmp_path, value, coherence, space):
    source = tmp_path / "colour_settings.txt"
    source.write_text(json.dumps(json.loads(DEFORUM.read_text()) | {"color_coherence": value}))
    out, stdout = imported(capsys, monkeypatch, tmp_path, source)
    colour = load_preset(str(out)).color
    if coherence is None:  # a reference picture of its own: listed, not carried
        assert "'Image': dreamvid holds colours to the first frame or the source: color_coherence" in stdout
        assert colour == build_preset({}).color
    else:
        assert (colour.coherence, colour.space) == (coherence, space)
        assert not re.search(r"\bcolor_coherence\b", stdout)
        assert colour.match.constant == (0.0 if value == "None" else 1.0)


def test_video_input_becomes_flow_mode_and_its_unused_motion_is_listed(capsys, monkeypatch, tmp_path):
    settings = json.loads(DEFORUM.read_text()) | {"animation_mode": "Video Input", "color_coherence": "Video Input"}
    source = tmp_path / "video_settings.txt"
    source.write_text(json.dumps(settings))
    out, stdout = imported(capsys, monkeypatch, tmp_path, source)
    preset = load_preset(str(out))
    assert preset.mode.value == "flow" and preset.color.match.constant == 1.0
    assert preset.color.coherence is Coherence.SOURCE and preset.color.space is ColorSpace.LAB
    assert preset.motion == build_preset({}).motion  # Deforum does not move video frames
    assert "not used in Video Input mode: zoom, angle, translation_x, translation_y" in stdout
    assert "Deforum ignores cadence in Video Input mode: diffusion_cadence" in stdout
    assert "dreamvid render https://deforum.github.io/a1/V1.mp4 --frames 120 --preset flow-dream" in stdout


def test_parseq_export_keeps_every_frames_value(capsys, monkeypatch, tmp_path):
    """Per-frame values become keyframes where the slope changes; every frame keeps its value. Motion is
    read from the *_delta fields, as Deforum does (parseq_use_deltas)."""
    out, stdout = imported(capsys, monkeypatch, tmp_path, PARSEQ)
    export = json.loads(PARSEQ.read_text())
    rows = export["rendered_frames"]
    fps = export["options"]["output_fps"]
    preset = load_preset(str(out))
    values = build_timeline(preset, len(rows), fps).values

    def column(field: str) -> np.ndarray:
        return np.array([row[field] for row in rows], dtype=float)

    np.testing.assert_allclose(values["motion.zoom"], column("zoom_delta") ** fps, rtol=1e-9)
    np.testing.assert_allclose(values["motion.angle"], column("angle_delta") * fps, atol=1e-9)
    np.testing.assert_allclose(values["motion.translate_x"], column("translation_x_delta") * fps / 512, atol=1e-9)
    np.testing.assert_allclose(values["dream.step_size"], DEFAULTS.step_size * (1 - column("strength")) / 0.35, rtol=1e-9)
    assert preset.motion.translate_x.source.count(":") == 5  # straight stretches dropped: 0, 1, 24, 25, 47
    assert preset.output.seed == 303 and preset.audio.bpm == 120 and preset.output.fps == 24
    for key in ("deforum_prompt", "translation_z", "noise", "scale", "prompts", "keyframes", "meta", "input_fps"):
        assert re.search(rf"\b{key}\b", stdout), key


def test_parseq_plain_values_without_deltas(capsys, monkeypatch, tmp_path):
    """--no-deltas reads the plain fields as each frame's motion (Deforum's parseq_use_deltas off); --size
    sets the picture that pixels are measured against. Values beyond dreamvid's range are one line."""
    code, _, err = dreamvid(capsys, monkeypatch, "import", PARSEQ, "-o", tmp_path / "x.toml", "--no-deltas")
    assert code == 2 and "motion.zoom: 1.65251e+08 at frame 47 is out of range" in err  # 2.2 ** 24 per second
    export = json.loads(PARSEQ.read_text())
    for row in export["rendered_frames"]:
        row["zoom"] = 1.01
    source = tmp_path / "plain.json"
    source.write_text(json.dumps(export))
    out, _ = imported(capsys, monkeypatch, tmp_path, source, "--no-deltas", "--size", "256x256")
    preset = load_preset(str(out))
    values = build_timeline(preset, 48, 24).values
    rows = export["rendered_frames"]
    np.testing.assert_allclose(values["motion.translate_x"], [row["translation_x"] * 24 / 256 for row in rows], atol=1e-9)
    assert preset.motion.zoom.constant == pytest.approx(1.01 ** 24)


def test_imported_motion_layers_over_a_look(capsys, monkeypatch, tmp_path):
    out, _ = imported(capsys, monkeypatch, tmp_path, DEFORUM)
    look, motion = load_preset("fractal-zoom"), load_preset(str(out))
    layered = load_preset(["fractal-zoom", str(out)])
    assert layered.dream.objective == look.dream.objective and layered.dream.steps == look.dream.steps
    assert layered.motion.zoom == motion.motion.zoom and layered.motion.mix == look.motion.mix


def test_import_never_replaces_a_file_without_overwrite(capsys, monkeypatch, tmp_path):
    out = tmp_path / "mine.toml"
    out.write_text("# my preset\n")
    code, _, err = dreamvid(capsys, monkeypatch, "import", DEFORUM, "-o", out)
    assert code == 2 and "exists - pass --overwrite" in err and out.read_text() == "# my preset\n"
    assert dreamvid(capsys, monkeypatch, "import", DEFORUM, "-o", out, "--overwrite")[0] == 0
    assert load_preset(str(out)).output.seed == 42 and not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize(("content", "words"), [
    ("not json at all", "not JSON (Expecting value at line 1 column 1)"),
    ("[1, 2]", "expected a JSON object of settings, got a list"),
    ('{"prompt": "a cat", "steps": 20}', "neither a Deforum settings file nor a Parseq export"),
    ('{"animation_mode": "2D", "max_frames": "many"}', "max_frames: expected a number, got 'many'"),
    ('{"animation_mode": "2D", "max_frames": 12.5}', "max_frames: expected a whole number"),
    ('{"animation_mode": "Interpolation", "max_frames": 10}', "animation_mode: 'Interpolation' has no dreamvid equivalent"),
    ('{"animation_mode": "2D", "max_frames": 10, "zoom": [1.02]}', "zoom: expected a schedule"),
    ('{"rendered_frames": []}', "rendered_frames: expected a list of frames"),
    ('{"rendered_frames": [{"frame": "0"}]}', "rendered_frames[0]: expected an object with a frame number"),
    ('{"rendered_frames": [{"frame": 0, "zoom": "big"}], "options": {"output_fps": 24}}',
     "rendered_frames frame 0: zoom: expected a number, got 'big'"),
])
def test_bad_settings_are_one_line(capsys, monkeypatch, tmp_path, content, words):
    source = tmp_path / "settings.txt"
    source.write_text(content)
    out = tmp_path / "out.toml"
    code, _, err = dreamvid(capsys, monkeypatch, "import", source, "-o", out)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_schedule_dreamvid_cannot_read_is_listed_not_dropped(capsys, monkeypatch, tmp_path):
    settings = {"animation_mode": "2D", "max_frames": 24, "fps": 12, "seed": -1,
                "zoom": "0: (1.01 + 0.01*noise(t))", "angle": "0: (t/s)"}
    source = tmp_path / "settings.txt"
    source.write_text(json.dumps(settings))
    _, stdout = imported(capsys, monkeypatch, tmp_path, source)
    assert re.search(r"not a schedule dreamvid can read .*unknown function \"noise\".*: zoom", stdout)
    assert "uses the seed variable s, but the seed is random (-1): angle" in stdout
    assert "random seed (-1)" in stdout
