"""Decoding: video into evenly spaced ``uint8 (H, W, 3)`` RGB frames, audio into float32 samples."""

from __future__ import annotations

from collections.abc import Generator, Iterator
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
                 n_frames: int) -> None:
        self.width, self.height, self.fps, self.n_frames = width, height, fps, n_frames
        self._frames = _read_frames(args, source, width, height)

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


def _read_frames(args: list[str], source: Path, width: int, height: int
                 ) -> Generator[np.ndarray, None, None]:
    """Yield ``uint8 (height, width, 3)`` frames from an ffmpeg writing rgb24 to stdout.

    Zero frames is an error too: ffmpeg exits 0 when a seek leaves nothing."""
    n = 0
    ff = Ffmpeg(args, stdout=True)
    try:
        while True:
            frame = np.empty((height, width, 3), np.uint8)  # a fresh, writable array per frame
            got = _read_exact(ff.stdout, frame.data.cast("B"))
            if got < frame.nbytes:
                break
            n += 1
            yield frame
        status = ff.proc.wait()
        if status != 0 or got:
            raise EncodeError(f"ffmpeg failed decoding {source}: {ff.tail()}")
        if n == 0:
            raise EncodeError(f"ffmpeg decoded no frames from {source}", hint="try another start time")
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


def read_video(path: StrPath, *, size: tuple[int, int] | None = None, fps: float | None = None,
               start: float = 0.0, end: float | None = None) -> VideoReader:
    """Decode a video into evenly spaced RGB frames.

    Args:
        path: the video file (probed now, so input errors are raised here, not on first ``next``).
        size: ``(width, height)`` to scale to (lanczos); default the displayed size.
        fps: output frame rate; default the file's average rate. The output is always constant
            rate, so a variable-frame-rate file gives frames evenly spaced in time.
        start, end: the span to decode, in seconds (``end`` None: to the end of the file).

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
    out_fps = fps or info.fps
    width, height = size or (info.width, info.height)
    span = min(end, info.duration) - start if end is not None else info.duration - start
    filters = f"fps={rate(out_fps)}" + (f",scale={width}:{height}:flags=lanczos" if size else "")
    args = ["-nostdin", *span_args(start, end), "-i", url(info.path),
            "-map", "0:v:0", "-vf", filters, "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
    return VideoReader(args, info.path, width, height, out_fps, round(span * out_fps))


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
