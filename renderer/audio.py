"""Soundtrack -> per-frame features for music-reactive schedules.

:func:`analyze_audio` turns mono samples into one value per *video* frame for each of
:data:`FEATURE_NAMES` (``rms onset beat bass mid treble``, each normalised to 0..1 over the frames
analysed), plus the tempo and the beat times. Schedules see these as variables
(``"0:(1.0 + 0.05*beat)"``).

How (numpy/scipy only):

- Samples are resampled to :data:`ANALYSIS_RATE` so every window length below means the same time
  whatever the file's rate, and the DC offset is removed (a constant signal is silence).
- One short-time Fourier transform (Hann window of :data:`N_FFT` samples, hop :data:`HOP`) gives a
  power spectrogram; analysis frame ``j`` is centred on ``j * HOP / ANALYSIS_RATE`` seconds.
- ``rms`` is the windowed RMS (from the spectrum by Parseval); ``bass``/``mid``/``treble`` are the
  RMS amplitudes of the bins below :data:`BASS_MAX_HZ`, between, and from :data:`TREBLE_MIN_HZ` up.
- ``onset`` is spectral flux: the mean rise of the log (dB) spectrum from one frame to the next.
- The tempo is the autocorrelation peak of the onset envelope weighted by a log-normal prior
  around 120 bpm (Ellis 2007), refined between lags by parabolic interpolation.
- Beats come from Ellis' dynamic programme: pick onset peaks that are one beat period apart.
  ``beat`` is 1 on the video frame holding each beat and halves every :data:`BEAT_HALF_LIFE_S`.
- Video frame ``i`` covers ``[i/fps, (i+1)/fps)`` seconds: it takes the mean of the analysis frames
  centred in it (the max for ``onset``, so a click shorter than a frame is not averaged away).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np
import scipy.fft
import scipy.ndimage
import scipy.signal

#: Names of the per-frame features, as schedules see them (see ``renderer.schedule``).
FEATURE_NAMES: tuple[str, ...] = ("rms", "onset", "beat", "bass", "mid", "treble")

ANALYSIS_RATE = 22050  # Hz; everything is analysed at this rate
N_FFT = 1024  # 46 ms window: 21.5 Hz bins (fine enough to split off bass), short enough for sharp onsets
HOP = 256  # 11.6 ms between analysis frames: finer than any video frame
ENVELOPE_RATE = ANALYSIS_RATE / HOP  # analysis frames per second
BASS_MAX_HZ = 200.0
TREBLE_MIN_HZ = 2000.0
SILENCE_RMS = 1e-4  # -80 dBFS: quieter analysis frames count as silence (all features 0)
TOP_DB = 80.0  # dynamic range of the log spectrum used for onsets, below the loudest bin
# A window sees a click before its centre reaches it, and the log spectrum magnifies that first
# glimpse, so flux peaks early: by about a quarter window (one hop), measured on 10 ms clicks and
# blips (mean error -14 ms unshifted, within +-3 ms shifted). Shift the envelope to match.
ONSET_LAG = N_FFT // (4 * HOP)
TEMPO_PRIOR_BPM = 120.0  # centre of the log-normal tempo prior (Ellis 2007)
TEMPO_PRIOR_OCTAVES = 1.0  # its standard deviation: 60 and 240 bpm weigh 0.61 of 120 bpm
MIN_BPM, MAX_BPM = 30.0, 300.0  # tempi searched at all
TEMPO_BLUR_FRAMES = 1.5  # Gaussian sigma (analysis frames, 17 ms) applied before the autocorrelation
BEAT_TIGHTNESS = 100.0  # how strongly the beat tracker holds the period (Ellis' alpha; librosa's default)
BEAT_HALF_LIFE_S = 0.12  # the beat pulse halves every 0.12 s: a visible kick that is gone by the next beat
_STFT_CHUNK = 2048  # analysis frames per FFT call; bounds the temporary complex array


@dataclass(frozen=True)
class AudioFeatures:
    """Per-video-frame features of a soundtrack.

    Attributes:
        rms, onset, beat, bass, mid, treble: float64 arrays of shape (n_frames,), each in 0..1.
            ``beat`` is 1 on the frame holding a beat and decays with half-life
            :data:`BEAT_HALF_LIFE_S`; the others are normalised to the 99th percentile over the frames.
        bpm: the estimated tempo in beats per minute, or None when none was found (silence).
        beat_times: float64 array of beat times in seconds from the start of the audio.
    """

    rms: np.ndarray
    onset: np.ndarray
    beat: np.ndarray
    bass: np.ndarray
    mid: np.ndarray
    treble: np.ndarray
    bpm: float | None
    beat_times: np.ndarray

    @property
    def n_frames(self) -> int:
        """Number of video frames the features cover."""
        return len(self.rms)

    def as_variables(self) -> dict[str, np.ndarray]:
        """The features by schedule variable name (:data:`FEATURE_NAMES`), each shape (n_frames,)."""
        return {name: getattr(self, name) for name in FEATURE_NAMES}

    @classmethod
    def silent(cls, n_frames: int) -> AudioFeatures:
        """Features of a silent soundtrack: all zeros, no tempo, no beats.

        Used when a render has no soundtrack, so schedules that mention audio variables still
        evaluate (to zeros); the caller may warn that they will not react to anything.
        """
        return cls(**{name: np.zeros(n_frames) for name in FEATURE_NAMES}, bpm=None, beat_times=np.zeros(0))


def analyze_audio(samples: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> AudioFeatures:
    """Analyse a soundtrack into per-frame features aligned with a video.

    Args:
        samples: mono audio, shape (n_samples,), float with full scale -1..1 (the silence gate is
            at -80 dBFS).
        sample_rate: samples per second of ``samples``.
        fps: video frames per second; frame ``i`` covers ``[i/fps, (i+1)/fps)`` seconds.
        n_frames: number of video frames. Frames past the end of the audio get zeros; audio past
            the last frame is ignored.

    Returns:
        The features; see :class:`AudioFeatures`.
    """
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"samples must be mono with shape (n_samples,), got shape {samples.shape}")
    if sample_rate <= 0 or fps <= 0 or n_frames < 0:
        raise ValueError(f"need sample_rate > 0, fps > 0, n_frames >= 0; got {sample_rate}, {fps}, {n_frames}")
    if samples.size == 0:
        return AudioFeatures.silent(n_frames)

    power = _power_spectrogram(_prepare(samples, sample_rate))
    rms = _frame_rms(power)
    loud = rms >= SILENCE_RMS
    onset = _onset_envelope(power, loud)
    period = _beat_period(onset)
    beat_frames = _track_beats(onset, period) if period is not None else np.zeros(0, dtype=int)
    beat_times = beat_frames / ENVELOPE_RATE

    bounds = _frame_bounds(fps, n_frames)
    bass, mid, treble = (_frame_mean(level, bounds, n_frames) for level in _band_levels(power, loud))
    return AudioFeatures(
        rms=_normalize(_frame_mean(np.where(loud, rms, 0.0), bounds, n_frames)),
        onset=_normalize(_frame_max(onset, bounds, n_frames)),
        beat=_beat_pulse(beat_times, fps, n_frames),
        bass=_normalize(bass),
        mid=_normalize(mid),
        treble=_normalize(treble),
        bpm=None if period is None else 60.0 * ENVELOPE_RATE / period,
        beat_times=beat_times,
    )


def _prepare(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Resample to ANALYSIS_RATE and remove DC. Returns float64, shape (n,)."""
    x = samples.astype(np.float64)
    if sample_rate != ANALYSIS_RATE:
        common = gcd(int(sample_rate), ANALYSIS_RATE)
        x = scipy.signal.resample_poly(x, ANALYSIS_RATE // common, int(sample_rate) // common)
    return x - x.mean()


def _power_spectrogram(x: np.ndarray) -> np.ndarray:
    """|STFT|^2 with centred Hann windows. Returns float32, shape (1 + len(x) // HOP, N_FFT // 2 + 1)."""
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x.astype(np.float32), N_FFT // 2), N_FFT)[::HOP]
    window = scipy.signal.get_window("hann", N_FFT).astype(np.float32)
    power = np.empty((len(frames), N_FFT // 2 + 1), dtype=np.float32)
    for start in range(0, len(frames), _STFT_CHUNK):
        spectrum = scipy.fft.rfft(frames[start : start + _STFT_CHUNK] * window, axis=1)
        power[start : start + _STFT_CHUNK] = spectrum.real**2 + spectrum.imag**2
    return power


def _frame_rms(power: np.ndarray) -> np.ndarray:
    """Hann-weighted RMS of each analysis frame from its one-sided power spectrum (Parseval).

    Returns float64, shape (n_analysis_frames,); a sine of amplitude A gives about A / sqrt(2).
    """
    # Bins other than DC and Nyquist stand for a positive and a negative frequency.
    weights = np.full(power.shape[1], 2.0)
    weights[[0, -1]] = 1.0
    window = scipy.signal.get_window("hann", N_FFT)
    return np.sqrt(power @ weights / (N_FFT * np.sum(window**2)))


def _band_levels(power: np.ndarray, loud: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RMS-like amplitude of the bass, mid and treble bins per analysis frame (0 where not loud)."""
    freqs = np.fft.rfftfreq(N_FFT, d=1.0 / ANALYSIS_RATE)
    bands = (
        (freqs > 0) & (freqs < BASS_MAX_HZ),  # DC is offset, not sound
        (freqs >= BASS_MAX_HZ) & (freqs < TREBLE_MIN_HZ),
        freqs >= TREBLE_MIN_HZ,
    )
    # Amplitude (sqrt of power) rather than power: a halving of loudness reads as a halving, not a quarter.
    return tuple(np.where(loud, np.sqrt(power[:, band].sum(axis=1, dtype=np.float64)), 0.0) for band in bands)


def _onset_envelope(power: np.ndarray, loud: np.ndarray) -> np.ndarray:
    """Spectral flux: mean positive rise in dB per bin from the previous frame, shape (n_analysis_frames,).

    Silence before the first frame counts as the floor, so sound starting at time 0 is an onset.
    """
    peak = float(power.max())
    if peak <= 0.0:
        return np.zeros(len(power))
    floor_db = 10.0 * np.log10(peak) - TOP_DB
    db = 10.0 * np.log10(np.maximum(power, peak * 10.0 ** (-TOP_DB / 10.0)), dtype=np.float64)
    db[~loud] = floor_db
    previous = np.vstack([np.full((1, db.shape[1]), floor_db), db[:-1]])
    flux = np.maximum(db - previous, 0.0).mean(axis=1)
    return np.concatenate([np.zeros(ONSET_LAG), flux[: len(flux) - ONSET_LAG]])


def _beat_period(onset: np.ndarray) -> float | None:
    """Beat period in analysis frames (fractional), or None if the envelope has no periodicity.

    Autocorrelation of the mean-removed envelope times a log-normal prior around TEMPO_PRIOR_BPM;
    the best integer lag is refined by a parabola through it and its neighbours on the raw
    autocorrelation (the prior would pull the vertex towards 120 bpm).
    """
    # Blur the envelope over ~3 analysis frames first: a sharp click train whose period is not a
    # whole number of frames splits its evidence between two neighbouring lags, and twice the
    # period (half the tempo) would win.
    x = scipy.ndimage.gaussian_filter1d(onset, TEMPO_BLUR_FRAMES)
    x = x - x.mean()
    lags = np.arange(len(x))
    bpm = 60.0 * ENVELOPE_RATE / np.maximum(lags, 1)
    searched = (bpm >= MIN_BPM) & (bpm <= MAX_BPM) & (lags > 1) & (lags < len(x) - 1)
    if not np.any(x) or not searched.any():
        return None
    autocorr = scipy.signal.correlate(x, x, mode="full", method="fft")[len(x) - 1 :]
    prior = np.exp(-0.5 * (np.log2(bpm / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_OCTAVES) ** 2)
    score = np.where(searched, autocorr * prior, -np.inf)
    best = int(np.argmax(score))
    if score[best] <= 0.0:
        return None
    left, centre, right = autocorr[best - 1 : best + 2]
    curvature = left - 2.0 * centre + right
    shift = 0.5 * (left - right) / curvature if curvature < 0.0 else 0.0
    return best + float(np.clip(shift, -0.5, 0.5))


def _track_beats(onset: np.ndarray, period: float) -> np.ndarray:
    """Beat positions (analysis frame indices, increasing) by dynamic programming (Ellis 2007).

    Each frame's score is its onset strength plus the best score of a previous beat 0.5 to 2
    periods back, penalised by ``BEAT_TIGHTNESS * log(gap / period)^2``; a frame with no
    worthwhile predecessor starts a new chain. The best chain is read back from the best frame
    in the last period, and beats on weak onsets at either end (intro, outro) are dropped.
    """
    spread = onset.std()
    if spread == 0.0:
        return np.zeros(0, dtype=int)
    # Smooth by a Gaussian of width period/32 so a beat may sit a frame or two off the exact peak.
    kernel_offsets = np.arange(-round(period), round(period) + 1)
    local = np.convolve(onset / spread, np.exp(-0.5 * (kernel_offsets * 32.0 / period) ** 2), mode="same")

    gaps = np.arange(round(period / 2), round(2 * period) + 1)
    penalty = -BEAT_TIGHTNESS * np.log(gaps / period) ** 2
    score = local.copy()
    previous = np.full(len(local), -1)
    for i in range(len(local)):
        candidates = i - gaps
        valid = candidates >= 0
        if not valid.any():
            continue
        chained = score[candidates[valid]] + penalty[valid]
        best = int(np.argmax(chained))
        if chained[best] > 0.0:
            score[i] += chained[best]
            previous[i] = candidates[valid][best]

    tail = max(len(score) - round(period), 0)
    beats = [tail + int(np.argmax(score[tail:]))]
    while previous[beats[-1]] >= 0:
        beats.append(int(previous[beats[-1]]))
    beats = np.array(beats[::-1])
    return _trim_weak_ends(beats, local[beats])


def _trim_weak_ends(beats: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """Drop leading and trailing beats weaker than half the RMS beat strength."""
    strong = np.flatnonzero(strength > 0.5 * np.sqrt(np.mean(strength**2)))
    return beats[strong[0] : strong[-1] + 1] if strong.size else beats[:0]


def _frame_bounds(fps: float, n_frames: int) -> np.ndarray:
    """First analysis frame centred at or after the start of each video frame, and after the last.

    Returns int array, shape (n_frames + 1,): video frame i gathers analysis frames
    ``bounds[i]`` up to ``bounds[i + 1]`` (exclusive).
    """
    # The small tolerance keeps a centre that lands exactly on a frame start inside that frame.
    return np.ceil(np.arange(n_frames + 1) / fps * ENVELOPE_RATE - 1e-9).astype(int)


def _reduce_frames(
    values: np.ndarray, bounds: np.ndarray, n_frames: int, ufunc: np.ufunc
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``ufunc.reduceat`` over each video frame's analysis frames.

    Returns (reduced, counts), both shape (n_frames,); frames past the audio's end get 0 with count 1.
    A video frame shorter than the hop (fps above ENVELOPE_RATE) takes the next analysis frame.
    """
    starts = bounds[:-1]
    inside = int(np.count_nonzero(starts < len(values)))
    reduced, counts = np.zeros(n_frames), np.ones(n_frames)
    if inside:
        stop = max(min(int(bounds[inside]), len(values)), int(starts[inside - 1]) + 1)
        reduced[:inside] = ufunc.reduceat(values[:stop], starts[:inside])
        counts[:inside] = np.maximum(np.diff(np.append(starts[:inside], stop)), 1)
    return reduced, counts


def _frame_mean(values: np.ndarray, bounds: np.ndarray, n_frames: int) -> np.ndarray:
    """Mean of the analysis frames in each video frame, shape (n_frames,)."""
    total, counts = _reduce_frames(values, bounds, n_frames, np.add)
    return total / counts


def _frame_max(values: np.ndarray, bounds: np.ndarray, n_frames: int) -> np.ndarray:
    """Max of the analysis frames in each video frame, shape (n_frames,)."""
    return _reduce_frames(values, bounds, n_frames, np.maximum)[0]


def _normalize(values: np.ndarray) -> np.ndarray:
    """Scale to 0..1 by the 99th percentile (the max if that is 0), so one spike can't flatten the rest.

    All-zero input stays zero.
    """
    if values.size == 0:
        return values
    scale = np.percentile(values, 99)
    if scale <= 0.0:
        scale = values.max()
    return np.clip(values / scale, 0.0, 1.0) if scale > 0.0 else np.zeros_like(values)


def _beat_pulse(beat_times: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """1 on the video frame holding each beat, halving every BEAT_HALF_LIFE_S after. Shape (n_frames,)."""
    frames = np.floor(beat_times * fps).astype(int)
    frames = frames[(frames >= 0) & (frames < n_frames)]
    last_beat = np.full(n_frames, -1)
    last_beat[frames] = frames
    last_beat = np.maximum.accumulate(last_beat) if n_frames else last_beat
    seconds_since = (np.arange(n_frames) - last_beat) / fps
    return np.where(last_beat >= 0, 0.5 ** (seconds_since / BEAT_HALF_LIFE_S), 0.0)
