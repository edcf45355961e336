"""Music videos: audio-reactive schedules end to end, and `dreamvid schedule`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES, dreamvid, ffmpeg
from renderer import media
from renderer.audio import analyze_audio
from test_render import _zoom_between

FPS = 24


@pytest.fixture(scope="module")
def clicks(tmp_path_factory):
    """4 s: a kick (decaying 60 Hz) every 0.5 s (120 bpm) over a quiet 220 Hz tone."""
    path = tmp_path_factory.mktemp("music") / "clicks.wav"
    ffmpeg("-f", "lavfi", "-i", "aevalsrc=0.15*sin(2*PI*220*t)+0.8*exp(-30*mod(t\\,0.5))*sin(2*PI*60*t):s=22050:d=4",
           str(path))
    return path


def test_beat_zoom_lunges_on_the_beat(capsys, monkeypatch, tmp_path, clicks):
    out = tmp_path / "beat.mp4"
    code, _, err = dreamvid(capsys, monkeypatch, "render", SAMPLES / "chelsea.jpg", "-o", out, "--audio", clicks,
                            "--preset", "beat-zoom", "--size", "160x112", "--fps", str(FPS), "--quiet",
                            "--set", "dream.working_size=0", "--set", "dream.steps=1", "--set", "dream.octaves=1", "--set", "dream.first_steps=2",
                            "--set", "dream.first_octaves=1", "--set", "output.crf=10")
    assert code == 0, err
    frames = list(media.read_video(out))
    assert len(frames) == 4 * FPS
    assert media.probe(out).has_audio
    beat = analyze_audio(media.read_audio(clicks, 22050), 22050, FPS, len(frames)).beat
    zoom = np.array([_zoom_between(frames[t - 1], frames[t]) for t in range(1, len(frames))])
    on_beat = zoom[beat[1:] >= 0.99]
    between = zoom[beat[1:] < 0.3]
    print(f"zoom per frame: on beats {np.median(on_beat):.4f}, between {np.median(between):.4f}")
    assert len(on_beat) >= 6
    assert np.median(on_beat) - 1 > 3 * (np.median(between) - 1)


def test_schedule_command_prints_values_and_plots(capsys, monkeypatch, tmp_path, clicks):
    plot = tmp_path / "schedules.png"
    code, out, err = dreamvid(capsys, monkeypatch, "schedule", "beat-zoom", "--audio", clicks, "--plot", plot)
    assert code == 0, err
    assert "tempo: 12" in out and "motion.zoom" in out
    with Image.open(plot) as image:
        assert image.size[0] > 800 and image.size[1] > 400


def test_schedule_errors_point_at_the_key(capsys, monkeypatch):
    code, _, err = dreamvid(capsys, monkeypatch, "schedule", "fractal-zoom", "--set", "motion.zoom=0:(1), 48:(1.04")
    assert code != 0 and 'motion.zoom: keyframe 2 ("48:(1.04"): missing ")"' in err
    code, _, err = dreamvid(capsys, monkeypatch, "schedule", "fractal-zoom", "--set", "motion.angle=3*tt")
    assert code != 0 and 'unknown variable "tt"' in err and "known:" in err


def test_beats_drive_a_render_to_a_format_without_sound(capsys, monkeypatch, tmp_path, clicks):
    """A folder of PNG frames (or a GIF) carries no sound, but the soundtrack still drives the schedules:
    a music-video maker rendering frames for an editor gets the lunges on the kick."""
    out = tmp_path / "frames"
    code, _, err = dreamvid(capsys, monkeypatch, "render", SAMPLES / "chelsea.jpg", "-o", f"{out}/", "--audio", clicks,
                            "--preset", "beat-zoom", "--size", "128x96", "--fps", str(FPS), "--seconds", "2",
                            "--set", "dream.working_size=0", "--set", "dream.steps=1", "--set", "dream.octaves=1",
                            "--set", "dream.first_steps=1", "--set", "dream.first_octaves=1")
    assert code == 0, err
    assert "sound drives the schedules, not written" in err
    frames = [media.load_image(p) for p in media.list_frame_folder(out)]
    assert len(frames) == 2 * FPS
    beat = analyze_audio(media.read_audio(clicks, 22050), 22050, FPS, len(frames)).beat
    zoom = np.array([_zoom_between(frames[t - 1], frames[t]) for t in range(1, len(frames))])
    on_beat, between = np.median(zoom[beat[1:] >= 0.99]), np.median(zoom[beat[1:] < 0.3])
    print(f"zoom per frame: on beats {on_beat:.4f}, between {between:.4f}")
    assert on_beat - 1 > 3 * (between - 1)
