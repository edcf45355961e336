"""Audio analysis on synthetic soundtracks: tempo, beat alignment at 24 and 30 fps, bands, silence."""

from __future__ import annotations

import numpy as np
import pytest

from renderer.audio import FEATURE_NAMES, AudioFeatures, analyze_audio
from renderer.schedule import ScheduleContext, parse_schedule

RATE = 22050


def click_track(
    bpm: float, seconds: float = 9.0, rate: int = RATE, first: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """10 ms decaying noise bursts every beat over a quiet 220 Hz tone.

    Returns (samples float32 (n,), click times in seconds).
    """
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    samples = 0.05 * np.sin(2 * np.pi * 220 * t)
    clicks = np.arange(first, seconds - 0.05, 60.0 / bpm)
    burst_t = np.arange(int(0.01 * rate)) / rate
    for click in clicks:
        start = round(click * rate)
        samples[start : start + len(burst_t)] += 0.8 * rng.standard_normal(len(burst_t)) * np.exp(-burst_t / 0.002)
    return samples.astype(np.float32), clicks


def frames_of(times: np.ndarray, fps: float) -> np.ndarray:
    """Index of the video frame holding each time."""
    return np.floor(times * fps).astype(int)


@pytest.fixture(scope="module")
def track_120() -> tuple[np.ndarray, np.ndarray]:
    return click_track(120.0)


@pytest.mark.parametrize("bpm", [100.0, 120.0, 140.0])
def test_tempo_within_two_percent(bpm: float) -> None:
    samples, _ = click_track(bpm)
    features = analyze_audio(samples, RATE, fps=30.0, n_frames=270)
    assert features.bpm == pytest.approx(bpm, rel=0.02)


def test_tempo_does_not_depend_on_sample_rate() -> None:
    samples, _ = click_track(120.0, rate=44100)
    assert analyze_audio(samples, 44100, fps=24.0, n_frames=216).bpm == pytest.approx(120.0, rel=0.02)


@pytest.mark.parametrize("fps", [24.0, 30.0])
@pytest.mark.parametrize("bpm", [100.0, 120.0, 140.0])
def test_beats_land_on_clicks(bpm: float, fps: float) -> None:
    samples, clicks = click_track(bpm)
    n_frames = int(9.0 * fps)
    features = analyze_audio(samples, RATE, fps=fps, n_frames=n_frames)
    click_frames = frames_of(clicks, fps)
    peaks = np.flatnonzero(features.beat == 1.0)
    assert len(peaks) == len(features.beat_times) == len(clicks)
    # Every pulse peak is within one frame of a click, and every click has a peak within one frame.
    assert all(np.min(np.abs(click_frames - peak)) <= 1 for peak in peaks)
    assert all(np.min(np.abs(peaks - frame)) <= 1 for frame in click_frames)
    np.testing.assert_allclose(features.beat_times, clicks, atol=1.0 / fps)


def test_beat_pulse_decays_between_beats(track_120: tuple[np.ndarray, np.ndarray]) -> None:
    features = analyze_audio(track_120[0], RATE, fps=30.0, n_frames=270)
    first = int(np.flatnonzero(features.beat == 1.0)[0])
    pulse = features.beat[first : first + 15]  # half a second: up to the next beat
    assert np.all(np.diff(pulse) < 0)
    assert 0.3 < pulse[4] < 0.7  # 4 frames = 0.13 s: about one half-life
    assert pulse[-1] < 0.1  # 14 frames = 0.47 s: nearly four half-lives
    assert np.all(features.beat[:first] == 0.0)


def test_onset_peaks_on_clicks(track_120: tuple[np.ndarray, np.ndarray]) -> None:
    samples, clicks = track_120
    features = analyze_audio(samples, RATE, fps=24.0, n_frames=216)
    click_frames = frames_of(clicks, 24.0)
    assert np.all(features.onset[click_frames] > 0.5)
    between = np.setdiff1d(np.arange(216), np.concatenate([click_frames - 1, click_frames, click_frames + 1]))
    assert np.all(features.onset[between] < 0.2)


def test_bass_follows_a_switching_60hz_tone_and_treble_does_not() -> None:
    seconds, fps = 6, 30.0
    t = np.arange(seconds * RATE) / RATE
    on = (np.floor(t) % 2 == 0).astype(float)
    ramp = np.convolve(on, np.ones(220) / 220, mode="same")  # 10 ms fades: no broadband clicks at the switches
    samples = 0.5 * ramp * np.sin(2 * np.pi * 60 * t) + 0.05 * np.sin(2 * np.pi * 5000 * t)
    features = analyze_audio(samples.astype(np.float32), RATE, fps=fps, n_frames=int(seconds * fps))
    second = np.arange(len(features.bass)) // int(fps)
    # Skip the frames next to a switch, where the 46 ms window straddles it.
    inside = (np.arange(len(second)) % int(fps) >= 3) & (np.arange(len(second)) % int(fps) < 27)
    bass_on, bass_off = features.bass[inside & (second % 2 == 0)], features.bass[inside & (second % 2 == 1)]
    assert bass_on.min() > 0.8 and bass_off.max() < 0.05
    treble_on, treble_off = features.treble[inside & (second % 2 == 0)], features.treble[inside & (second % 2 == 1)]
    assert abs(treble_on.mean() - treble_off.mean()) < 0.05 and treble_off.min() > 0.9


@pytest.mark.parametrize(
    "samples", [np.zeros(RATE * 3), np.full(RATE * 3, 0.3), np.zeros(0)], ids=["zeros", "dc", "empty"]
)
def test_silence_gives_zeros(samples: np.ndarray) -> None:
    features = analyze_audio(samples.astype(np.float32), RATE, fps=24.0, n_frames=72)
    for name, values in features.as_variables().items():
        assert values.shape == (72,), name
        assert np.all(values == 0.0), name
    assert features.bpm is None and features.beat_times.size == 0


@pytest.mark.parametrize("n_frames", [0, 1, 100, 400])
def test_lengths_follow_n_frames(track_120: tuple[np.ndarray, np.ndarray], n_frames: int) -> None:
    # 9 s at 30 fps is 270 frames: 400 runs past the audio (zeros there), 100 stops early.
    features = analyze_audio(track_120[0], RATE, fps=30.0, n_frames=n_frames)
    assert list(features.as_variables()) == list(FEATURE_NAMES)
    for values in features.as_variables().values():
        assert values.shape == (n_frames,) and np.all((values >= 0) & (values <= 1))
    if n_frames == 400:
        assert np.all(features.rms[275:] == 0.0) and features.rms[:265].min() > 0.0


def test_high_frame_rate_has_no_gaps(track_120: tuple[np.ndarray, np.ndarray]) -> None:
    # At 120 fps a video frame is shorter than the 11.6 ms analysis hop; every frame still gets a value.
    features = analyze_audio(track_120[0], RATE, fps=120.0, n_frames=1080)
    assert features.rms[5:1070].min() > 0.0


def test_one_spike_does_not_flatten_the_rest() -> None:
    t = np.arange(30 * RATE) / RATE
    samples = 0.1 * np.sin(2 * np.pi * 440 * t)
    samples[10 * RATE : 10 * RATE + 200] = 1.0  # a single loud pop, 10x the tone, in 720 frames
    features = analyze_audio(samples.astype(np.float32), RATE, fps=24.0, n_frames=720)
    assert np.median(features.rms) > 0.9 and np.median(features.mid) > 0.9


def test_features_drive_schedules(track_120: tuple[np.ndarray, np.ndarray]) -> None:
    features = analyze_audio(track_120[0], RATE, fps=24.0, n_frames=216)
    ctx = ScheduleContext(n_frames=216, fps=24.0, bpm=features.bpm, features=features.as_variables())
    zoom = parse_schedule("0:(1 + 0.1*beat), 4b:(1 + 0.2*beat)", "motion.zoom").evaluate(ctx)
    assert zoom.max() == pytest.approx(1.2) and zoom.min() >= 1.0


def test_silent_features() -> None:
    silent = AudioFeatures.silent(10)
    assert silent.n_frames == 10 and silent.bpm is None and silent.beat_times.size == 0
    assert all(np.all(values == 0) and values.shape == (10,) for values in silent.as_variables().values())


def test_rejects_multichannel_input() -> None:
    with pytest.raises(ValueError, match="mono"):
        analyze_audio(np.zeros((100, 2), dtype=np.float32), RATE, fps=24.0, n_frames=4)
