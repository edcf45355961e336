"""What a render starts from: a video, a still image, a folder of numbered frames, or noise.

:func:`open_source` decides the frame size, frame rate, frame count and soundtrack span once, and
returns a :class:`Source` whose :meth:`Source.frames` yields uint8 (H,W,3) RGB frames (or ``None`` for
each frame of a noise render). Decoding happens on the caller's thread; the pipeline prefetches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import cv2
import numpy as np

from . import media
from .media.probe import header
from .errors import InputError

NOISE = "noise"
NOISE_SIZE = (640, 360)


class SourceKind(Enum):
    VIDEO = "video"
    IMAGE = "image"
    FOLDER = "folder"
    NOISE = "noise"


@dataclass(frozen=True)
class Source:
    """A planned input. ``width``/``height`` are the render size, ``n_frames`` the frames to render
    (an estimate for video, exact otherwise), ``audio`` the soundtrack span (or None), ``native`` the
    input's own ``(width, height)`` (None for noise)."""

    kind: SourceKind
    path: Path | None
    width: int
    height: int
    fps: float
    n_frames: int
    start: float
    end: float | None
    audio: media.AudioSource | None
    native: tuple[int, int] | None = None

    @property
    def seconds(self) -> float:
        return self.n_frames / self.fps

    @property
    def stretched(self) -> bool:
        """Whether the render size changes the input's aspect ratio by more than 1 % (frames are
        resized to the size asked for, not cropped: a 4:3 clip rendered at 16:9 is widened)."""
        if self.native is None:
            return False
        return abs(math.log(self.width * self.native[1] / (self.height * self.native[0]))) > 0.01

    def frames(self, first: int = 0) -> Iterator[np.ndarray | None]:
        """The source frames at the render size, ``uint8 (height, width, 3)`` RGB, from index
        ``first`` on (None for each noise frame).

        Frame ``k`` is the same array whatever ``first`` is. A video seeks to just before frame
        ``first`` instead of decoding from ``start`` (see :func:`media.read_video`); images, folders
        and noise skip at no cost. Nothing is yielded when ``first >= n_frames``.
        """
        if first < 0:
            raise ValueError(f"first frame must be >= 0, got {first}")
        if first >= self.n_frames:
            return
        if self.kind is SourceKind.VIDEO:
            with media.read_video(self.path, size=(self.width, self.height), fps=self.fps,
                                  start=self.start, end=self.end, first=first) as reader:
                yield from reader
        elif self.kind is SourceKind.IMAGE:
            image = _fit(media.load_image(self.path), self.width, self.height)
            for _ in range(first, self.n_frames):
                yield image
        elif self.kind is SourceKind.FOLDER:
            for path in media.list_frame_folder(self.path)[first:self.n_frames]:
                yield _fit(media.load_image(path), self.width, self.height)
        else:
            for _ in range(first, self.n_frames):
                yield None


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    shrink = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)


MAX_SIDE = 16384  # pixels per side: more than 8K in either direction is a typo, not a render
# Bytes per pixel the frame loop holds at the least: about eight full-frame float32 RGB tensors
# (source, previous dream, its carry, flows, the reference palette), whatever the tiling.
_BYTES_PER_PIXEL = 8 * 3 * 4


def _render_size(native: tuple[int, int], size: tuple[int, int] | None, scale: float | None,
                 even: bool) -> tuple[int, int]:
    width, height = size or native
    if scale is not None:
        if not (math.isfinite(scale) and scale > 0):
            raise InputError(f"--scale must be a positive number, got {scale:g}")
        width, height = max(16, round(width * scale)), max(16, round(height * scale))
    _check_size(width, height)
    return media.even_size(width, height) if even else (width, height)


def _check_size(width: int, height: int) -> None:
    """Refuse a frame size before anything is allocated: at most MAX_SIDE per side, and frames
    that fit the memory available now."""
    if min(width, height) < 2:
        raise InputError(f"frame size {width}x{height} is too small", hint="use at least 2x2 (16x16 to dream)")
    if max(width, height) > MAX_SIDE:
        raise InputError(f"frame size {width}x{height} is too large: at most {MAX_SIDE} pixels per side",
                         hint="use --size or --scale to render smaller")
    available = _available_memory()
    needed = width * height * _BYTES_PER_PIXEL
    if available is not None and needed > available:
        raise InputError(f"frame size {width}x{height} needs about {needed / 2**30:.1f} GiB of memory, "
                         f"{available / 2**30:.1f} GiB is available", hint="use --size or --scale to render smaller")


def _available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _wanted_frames(frames: int | None, seconds: float | None, rate: float) -> int | None:
    """The frame count asked for with ``--frames`` or ``--seconds`` (None: not asked)."""
    if frames is None and seconds is None:
        return None
    if seconds is not None and not math.isfinite(seconds):
        raise InputError(f"--seconds must be a finite number, got {seconds}")
    # A hair below the product: 2 s at 25 fps is 50 frames, not 51 for a rounding error.
    wanted = frames if frames is not None else math.ceil(seconds * rate - 1e-9)
    if wanted < 1:
        raise InputError(f"nothing to render: {wanted} frames", hint="use --frames N or --seconds S > 0")
    return wanted


def open_source(spec: str, *, size: tuple[int, int] | None = None, scale: float | None = None,
                fps: float | None = None, default_fps: float = 24.0, frames: int | None = None,
                seconds: float | None = None, start: float = 0.0, end: float | None = None,
                audio: str | Path | None = None, no_audio: bool = False, even: bool = True) -> Source:
    """Plan the input of a render.

    Args:
        spec: a video file, an image file, a folder of numbered frames, or ``"noise"``.
        size: render size (width, height); default the input's (640x360 for noise). At most
            :data:`MAX_SIDE` per side, and frames must fit the memory available.
        scale: multiply the size by this (``--scale 0.5``).
        fps: output frame rate; default the video's own, else `default_fps`.
        frames / seconds: how many frames to render: of a video, from `start` (at most what it
            has); of an image or noise (default: the `audio` length, else 5 s); of a folder (at most
            its images).
        start / end: trim a video (seconds).
        audio: a soundtrack replacing the input's; `no_audio` drops sound.
        even: round the size down to even numbers (H.264 yuv420p needs it).

    Raises:
        InputError: a missing, empty, corrupt or unsuitable input, or settings it cannot meet
            (one line naming the file or the setting).
    """
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise InputError(f"--fps must be a positive number, got {fps:g}")
    path = None if spec == NOISE else Path(spec).expanduser()
    if path is not None and not path.exists():
        raise InputError(f"no such file: {path}", hint="check the input path (or use 'noise')")
    soundtrack = None if audio is None else Path(audio).expanduser()
    if soundtrack is not None and not no_audio:
        if not soundtrack.is_file():
            raise InputError(f"no such audio file: {soundtrack}", hint="check the --audio path")
        if header(soundtrack).audio_codec is None:
            raise InputError(f"{soundtrack} has no sound", hint="give --audio an audio file or a video with sound")
    if path is None:
        kind, native = SourceKind.NOISE, NOISE_SIZE
    elif path.is_dir():
        kind = SourceKind.FOLDER
        first = media.load_image(media.list_frame_folder(path)[0])
        native = (first.shape[1], first.shape[0])
    elif media.is_image(path):
        kind = SourceKind.IMAGE
        image = media.load_image(path)
        native = (image.shape[1], image.shape[0])
    else:
        kind = SourceKind.VIDEO
        info = media.probe(path)
        native = (info.width, info.height)
    width, height = _render_size(native, size, scale, even)

    if kind is SourceKind.VIDEO:
        rate = fps or info.fps
        wanted = _wanted_frames(frames, seconds, rate)
        stop = info.duration if end is None else min(end, info.duration)
        if not 0 <= start < info.duration:
            raise InputError(f"--start {start:g}s is outside {path} ({info.duration:.2f}s long)")
        if stop <= start:
            raise InputError(f"--end {end:g}s must come after --start {start:g}s")
        n_frames = max(1, round((stop - start) * rate))
        if wanted is not None and wanted < n_frames:
            n_frames, stop = wanted, start + wanted / rate
        own_audio = media.AudioSource(path, start, n_frames / rate) if info.has_audio else None
    else:
        rate = fps or default_fps
        wanted = _wanted_frames(frames, seconds, rate)
        if kind is SourceKind.FOLDER:
            n_frames = len(media.list_frame_folder(path))
            if wanted is not None:
                n_frames = min(n_frames, wanted)
        elif wanted is not None:
            n_frames = wanted
        elif soundtrack is not None:
            n_frames = math.ceil(media.read_audio(soundtrack, 8000).size / 8000 * rate)
        else:
            n_frames = round(5 * rate)
        if n_frames < 1:
            raise InputError(f"nothing to render: {n_frames} frames", hint="use --frames N or --seconds S > 0")
        start, stop, own_audio = 0.0, None, None
    if soundtrack is not None:
        chosen = media.AudioSource(soundtrack, 0.0, n_frames / rate)
    else:
        chosen = own_audio
    return Source(kind, path, width, height, rate, n_frames, start, stop if kind is SourceKind.VIDEO else None,
                  None if no_audio else chosen, None if kind is SourceKind.NOISE else native)
