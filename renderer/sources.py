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
    (an estimate for video, exact otherwise), ``audio`` the soundtrack span (or None)."""

    kind: SourceKind
    path: Path | None
    width: int
    height: int
    fps: float
    n_frames: int
    start: float
    end: float | None
    audio: media.AudioSource | None

    @property
    def seconds(self) -> float:
        return self.n_frames / self.fps

    def frames(self) -> Iterator[np.ndarray | None]:
        """The source frames at the render size, in order (None for each noise frame)."""
        if self.kind is SourceKind.VIDEO:
            with media.read_video(self.path, size=(self.width, self.height), fps=self.fps,
                                  start=self.start, end=self.end) as reader:
                yield from reader
        elif self.kind is SourceKind.IMAGE:
            image = _fit(media.load_image(self.path), self.width, self.height)
            for _ in range(self.n_frames):
                yield image
        elif self.kind is SourceKind.FOLDER:
            for path in media.list_frame_folder(self.path)[: self.n_frames]:
                yield _fit(media.load_image(path), self.width, self.height)
        else:
            for _ in range(self.n_frames):
                yield None


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    shrink = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)


def _render_size(native: tuple[int, int], size: tuple[int, int] | None, scale: float | None,
                 even: bool) -> tuple[int, int]:
    width, height = size or native
    if scale is not None:
        width, height = max(16, round(width * scale)), max(16, round(height * scale))
    return media.even_size(width, height) if even else (width, height)


def open_source(spec: str, *, size: tuple[int, int] | None = None, scale: float | None = None,
                fps: float | None = None, default_fps: float = 24.0, frames: int | None = None,
                seconds: float | None = None, start: float = 0.0, end: float | None = None,
                audio: str | Path | None = None, no_audio: bool = False, even: bool = True) -> Source:
    """Plan the input of a render.

    Args:
        spec: a video file, an image file, a folder of numbered frames, or ``"noise"``.
        size: render size (width, height); default the input's (640x360 for noise).
        scale: multiply the size by this (``--scale 0.5``).
        fps: output frame rate; default the video's own, else `default_fps`.
        frames / seconds: length of image and noise renders (default: the `audio` length, else 5 s).
        start / end: trim a video (seconds).
        audio: a soundtrack replacing the input's; `no_audio` drops sound.
        even: round the size down to even numbers (H.264 yuv420p needs it).
    """
    path = None if spec == NOISE else Path(spec).expanduser()
    if path is not None and not path.exists():
        raise InputError(f"no such file: {path}", hint="check the input path (or use 'noise')")
    soundtrack = None if audio is None else Path(audio).expanduser()
    if soundtrack is not None and not soundtrack.is_file():
        raise InputError(f"no such audio file: {soundtrack}")
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
        stop = info.duration if end is None else min(end, info.duration)
        if start < 0 or start >= info.duration:
            raise InputError(f"--start {start:g}s is outside {path.name} ({info.duration:.2f}s long)")
        if stop <= start:
            raise InputError(f"--end {end:g}s must come after --start {start:g}s")
        n_frames = max(1, round((stop - start) * rate))
        own_audio = media.AudioSource(path, start, n_frames / rate) if info.has_audio else None
    else:
        rate = fps or default_fps
        if kind is SourceKind.FOLDER:
            n_frames = len(media.list_frame_folder(path))
            if frames is not None or seconds is not None:
                n_frames = min(n_frames, frames or math.ceil(seconds * rate))
        elif frames is not None:
            n_frames = frames
        elif seconds is not None:
            n_frames = math.ceil(seconds * rate)
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
                  None if no_audio else chosen)
