"""Decoding: video into evenly spaced ``uint8 (H, W, 3)`` RGB frames, audio into float32 samples."""

from __future__ import annotations

import warnings
from collections.abc import Generator, Iterator
from fractions import Fraction
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import EncodeError, InputError
from .ffmpeg import Ffmpeg, StrPath, rate, run, span_args, url
from .probe import header, probe


class VideoReader(Iterator[np.ndarray]):
    """Frames of a video, decoded by one ffmpeg process; iterate it, and close it (or use ``with``).

    ffmpeg starts on the first ``next()`` and is reaped on exhaustion, :meth:`close`, an exception
    or garbage collection. ``width``, ``height``, ``fps`` describe the frames it yields and
    ``n_frames`` estimates how many it will yield.
    """

    def __init__(self, args: list[str], source: Path, width: int, height: int, fps: float,
                 n_frames: int, *, alpha: bool = False) -> None:
        self.width, self.height, self.fps, self.n_frames = width, height, fps, n_frames
        self._frames = _read_frames(args, source, width, height, alpha)

    def __iter__(self) -> VideoReader:
        return self

    def __next__(self) -> np.ndarray:
        return next(self._frames)

    def close(self) -> None:
        """Stop decoding and reap ffmpeg (runs the generator's ``finally``)."""
        self._frames.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_frames(args: list[str], source: Path, width: int, height: int, alpha: bool = False
                 ) -> Generator[np.ndarray, None, None]:
    """Yield ``uint8 (height, width, 3)`` frames from an ffmpeg writing rgb24 to stdout (rgba if
    ``alpha``: composited onto white here, see :func:`over_white`).

    Zero frames is an error too: ffmpeg exits 0 when a seek leaves nothing. Damaged data that
    ffmpeg decodes anyway (it conceals broken blocks from the neighbouring frames until the next
    keyframe, as players do) gives every frame and one warning quoting ffmpeg: a render of a
    partly damaged phone video is more use than a refusal an hour in."""
    n = 0
    ff = Ffmpeg(args, stdout=True)
    try:
        while True:
            frame = np.empty((height, width, 4 if alpha else 3), np.uint8)  # fresh and writable
            got = _read_exact(ff.stdout, frame.data.cast("B"))
            if got < frame.nbytes:
                break
            n += 1
            yield over_white(frame) if alpha else frame
        status = ff.proc.wait()
        if status != 0 or got:
            raise EncodeError(f"ffmpeg failed decoding {source}: {ff.tail()}")
        if n == 0:
            raise EncodeError(f"ffmpeg decoded no frames from {source}", hint="try another start time")
        if ff.complained():
            warnings.warn(f"{source} has damaged data, decoded with errors concealed: {ff.tail()}",
                          stacklevel=2)
    finally:
        ff.stop()


def _read_exact(stream: IO[bytes], buf: memoryview) -> int:
    """Fill ``buf`` from ``stream``; the number of bytes read (short only at end of stream)."""
    got = 0
    while got < len(buf):
        n = stream.readinto(buf[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


# How far before the wanted frame a seek aims. With an index (mp4/mov, Matroska/WebM) ffmpeg lands on
# the keyframe at or before the target, which always precedes the frame shown at the target, so one
# frame covers rounding. Other containers seek by searching timestamps and may land past the
# keyframe: aim well before it (broadcast streams have a keyframe every 0.5-2 s).
_SEEK_MARGIN_INDEXED_S = 0.0
_SEEK_MARGIN_OTHER_S = 3.0


def read_video(path: StrPath, *, size: tuple[int, int] | None = None, fps: float | None = None,
               start: float = 0.0, end: float | None = None, first: int = 0) -> VideoReader:
    """Decode a video into evenly spaced RGB frames.

    Frame ``k`` is the source frame shown at ``start + k / fps`` (the last one that starts at or
    before that time, to the nearest output slot): a variable-frame-rate file gives frames evenly
    spaced in time, repeating or skipping source frames as needed.

    Args:
        path: the video file (probed now, so input errors are raised here, not on first ``next``).
        size: ``(width, height)`` to scale to (lanczos); default the displayed size.
        fps: output frame rate; default the file's average rate.
        start, end: the span to decode, in seconds (``end`` None: to the end of the file); with
            ``end`` the reader yields at most ``round((end - start) * fps) - first`` frames.
        first: the index of the first frame to yield. The reader seeks to just before it instead of
            decoding from ``start``, and yields exactly (bit for bit) the frames ``first, first + 1,
            ...`` of a read from frame 0: timestamps stay the file's own (``-copyts``), the frame
            grid stays anchored at ``start``, and the frames before ``first`` are dropped by count
            inside ffmpeg. Raw streams without timestamps cannot seek: they decode from 0.

    Returns:
        a :class:`VideoReader` yielding ``uint8 (H, W, 3)`` frames; ffmpeg errors mid-stream raise
        :class:`EncodeError` with ffmpeg's message.
    """
    info = probe(path)
    if fps is not None and not fps > 0:
        raise InputError(f"frame rate must be positive, got {fps}")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise InputError(f"frame size must be two positive integers, got {size}")
    if start < 0 or start >= info.duration:
        raise InputError(f"start {start:g}s is outside {info.path} ({info.duration:g}s long)")
    if end is not None and end <= start:
        raise InputError(f"end {end:g}s must come after start {start:g}s")
    out_fps = Fraction(rate(fps or info.fps))
    width, height = size or (info.width, info.height)
    span = min(end, info.duration) - start if end is not None else info.duration - start
    n_frames = round(span * out_fps) - first
    if first < 0 or n_frames < 1:
        raise InputError(f"frame {first} is outside {info.path} ({n_frames + first} frames from {start:g}s)")
    seek = start + (first - 1) / out_fps
    seek -= _SEEK_MARGIN_INDEXED_S if info.has_index else _SEEK_MARGIN_OTHER_S
    # -noaccurate_seek: decode from the keyframe, not from the target, so that the frame covering
    # the target's slot is there even when it starts before the target.
    seek_args = ["-noaccurate_seek", "-ss", f"{float(seek):.6f}"] if info.can_seek and seek > 0 else []
    filters = [f"fps={out_fps}:start_time={info.start_time + start:.6f}"]
    if first:
        filters.append(f"trim=start_frame={first}")
    if size:
        filters.append(f"scale={width}:{height}:flags=lanczos")
    limit = ["-frames:v", str(n_frames)] if end is not None else []
    args = ["-nostdin", *seek_args, "-copyts", "-i", url(info.path), "-map", "0:v:0", "-vf", ",".join(filters),
            *limit, "-pix_fmt", "rgba" if info.has_alpha else "rgb24", "-f", "rawvideo", "pipe:1"]
    return VideoReader(args, info.path, width, height, float(out_fps), n_frames, alpha=info.has_alpha)


def over_white(rgba: np.ndarray) -> np.ndarray:
    """``uint8 (H, W, 4)`` RGBA composited onto white: ``uint8 (H, W, 3)`` RGB, exact where opaque.

    White, as for still images (see :func:`load_image`): a transparent GIF or a ProRes 4444 with
    alpha looks the way viewers and editors show it.
    """
    colour = rgba[..., :3].astype(np.uint16)
    alpha = rgba[..., 3:].astype(np.uint16)
    # Integer rounding of c * a / 255 + 255 * (1 - a / 255); the +127 rounds to nearest.
    return ((colour * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def read_audio(path: StrPath, sample_rate: int = 22050, start: float = 0.0,
               end: float | None = None) -> np.ndarray:
    """Decode a file's first audio stream as float32 mono ``(n_samples,)`` at ``sample_rate`` Hz.

    ``start``/``end`` select a span in seconds. Works for video files with sound and audio files.
    """
    path = Path(path)
    if header(path).audio_codec is None:
        raise InputError(f"{path} has no audio stream", hint="choose a file with sound")
    if end is not None and end <= start:
        raise InputError(f"end {end:g}s must come after start {start:g}s")
    args = ["-nostdin", *span_args(start, end), "-i", url(path),
            "-map", "0:a:0", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "pipe:1"]
    data = run(args, f"decoding the audio of {path}")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)  # a writable, native-order copy
