"""Encoding: output formats and their codecs, and :class:`SegmentWriter`, which encodes frames into
one segment of a resumable render."""

from __future__ import annotations

import enum
import os
from pathlib import Path
from types import TracebackType

import numpy as np

from ..errors import EncodeError, InputError
from .ffmpeg import Ffmpeg, StrPath, rate, url
from .files import remove
from .images import FRAME_NAME, check_frame, numbered_images, save_image


# Colour tagging for YUV outputs. Without it swscale converts RGB with the BT.601 matrix and leaves
# the file untagged, and players that assume BT.709 (most of them, for anything HD) shift the hues.
# The tags go on the frames (setparams): since ffmpeg 7 the encoder takes them from the frames, and
# the -color_primaries/-color_trc output options alone left both "unknown".
_BT709 = ["-vf", "scale=out_color_matrix=bt709:out_range=tv,"
                 "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv",
          "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]


class OutputFormat(enum.Enum):
    """Output kinds, chosen from the output path by :func:`output_format`."""

    MP4 = ".mp4"
    MOV = ".mov"
    WEBM = ".webm"
    GIF = ".gif"
    PNG_FOLDER = ""

    @property
    def is_folder(self) -> bool:
        """Output is a folder of ``frame_000001.png`` files."""
        return self is OutputFormat.PNG_FOLDER

    @property
    def needs_even_size(self) -> bool:
        """libx264 with yuv420p refuses odd widths and heights (prores and vp9 accept them)."""
        return self is OutputFormat.MP4

    @property
    def supports_audio(self) -> bool:
        return self in (OutputFormat.MP4, OutputFormat.MOV, OutputFormat.WEBM)

    @property
    def segment_suffix(self) -> str:
        """Extension of the segment files in the work folder (GIF: lossless FFV1 in Matroska)."""
        return ".mkv" if self is OutputFormat.GIF else self.value

    @property
    def audio_copy_codecs(self) -> frozenset[str]:
        """Source audio codecs this container takes as they are (pcm is not allowed in mp4)."""
        return _AUDIO_COPY[self]

    @property
    def default_crf(self) -> int | None:
        return {OutputFormat.MP4: 18, OutputFormat.WEBM: 30}.get(self)


_AUDIO_COPY = {
    OutputFormat.MP4: frozenset({"aac", "mp3", "alac"}),
    OutputFormat.MOV: frozenset({"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le"}),
    OutputFormat.WEBM: frozenset({"opus", "vorbis"}),
    OutputFormat.GIF: frozenset(),
    OutputFormat.PNG_FOLDER: frozenset(),
}
AUDIO_ENCODE = {
    OutputFormat.MP4: ["-c:a", "aac", "-b:a", "192k"],
    OutputFormat.MOV: ["-c:a", "aac", "-b:a", "192k"],
    OutputFormat.WEBM: ["-c:a", "libopus", "-b:a", "128k"],
}


def output_format(path: StrPath) -> OutputFormat:
    """The output format for a path: by extension, or a PNG frame folder for a path with none.

    A string ending in ``/`` or an existing folder is always a frame folder.
    """
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or Path(text).is_dir() or not Path(text).suffix:
        return OutputFormat.PNG_FOLDER
    suffix = Path(text).suffix.lower()
    for fmt in OutputFormat:
        if fmt.value == suffix:
            return fmt
    raise InputError(f"unknown output type {suffix!r} in {text}",
                     hint="use .mp4, .mov, .webm, .gif, or a folder path ending in / for PNG frames")


def even_size(width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` rounded down to even numbers, as yuv420p (mp4) requires."""
    w, h = width - width % 2, height - height % 2
    if w < 2 or h < 2:
        raise InputError(f"frame size {width}x{height} is too small")
    return w, h


def _video_args(fmt: OutputFormat, crf: int | None, intra_only: bool = False, psy: bool = True) -> list[str]:
    """ffmpeg output arguments that encode one segment of ``fmt`` (the only place codecs are set).

    `intra_only`: every frame a keyframe (mp4, webm; ProRes always is), for loops. A predicted frame
    carries its predecessors' compression noise, a keyframe has its own: in a GOP stream the loop's
    seam (the last, predicted frame against the first, a keyframe) is the one pair of frames with
    unrelated noise, and shows (fractal-zoom, 48 frames at 320x180, crf 18: seam 1.51x the median
    frame-to-frame change; 0.59x in PNG). All-intra, every pair is alike: 0.92x, at twice the bytes
    and with consecutive frames 65 % more different (each has its own noise; crf 12 with GOPs: 1.13x
    at 2.2 times the bytes). VJ software plays loops from intra-only codecs for the same reason.

    `psy`: False turns off x264's psychovisual optimisations (mp4). They keep a texture's energy rather
    than its exact values, and each frame is coded anew where anything moves, so a fine texture that
    moves with the picture (a dream carried along a video) gets a slightly different grain in every
    frame. Off, the same frames flicker less as the warping error sees it, in 5-8 % fewer bytes (flow-dream
    at 320x180, 12 frames, crf 18: vtest 1.52 -> 1.50, bunny 1.30 -> 1.28, bikes 1.83 -> 1.77; lower
    crf does not help: crf 14 gives 1.54, 1.35, 1.87)."""
    crf = crf if crf is not None else fmt.default_crf
    keyframes = ["-g", "1"] if intra_only else []
    if fmt is OutputFormat.MP4:
        tuning = [] if psy else ["-x264-params", "psy=0"]
        return ["-c:v", "libx264", "-preset", "medium", "-crf", str(crf), *keyframes, *tuning, "-pix_fmt", "yuv420p",
                *_BT709]
    if fmt is OutputFormat.MOV:
        return ["-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le", *_BT709]
    if fmt is OutputFormat.WEBM:
        return ["-c:v", "libvpx-vp9", "-crf", str(crf), "-b:v", "0", "-row-mt", "1", *keyframes,
                "-pix_fmt", "yuv420p", *_BT709]
    if fmt is OutputFormat.GIF:
        return ["-c:v", "ffv1"]  # lossless RGB: the palette is computed once, over the whole render
    raise ValueError(f"{fmt} is not encoded by ffmpeg")


# --------------------------------------------------------------------------------------------------
# Segmented, resumable writing


def preview_path(output: StrPath) -> Path:
    """Where :func:`partial_preview` writes: ``<stem>.partial<ext>`` beside the output."""
    output = Path(output)
    return output.with_name(f"{output.stem}.partial{output.suffix}")


class SegmentWriter:
    """Encodes frames into one segment file (or, for PNG output, one folder of frames).

    Use as a context manager. Leaving the block, normally or by any exception (Ctrl-C included),
    closes ffmpeg's stdin so that the segment is finalized and playable with every frame written.
    A writer that received no frames leaves no file.

    Args:
        path: the segment file (extension ``fmt.segment_suffix``), or folder for PNG output.
        width, height: frame size in pixels; frames passed to :meth:`write` must be ``(height, width, 3)``.
        fps: frame rate written into the segment.
        fmt: the final output format (the segment uses its codec; GIF segments are lossless FFV1).
        crf: quality for mp4/webm (lower is better); None for the format's default.
        intra_only: every frame a keyframe (loops: see :func:`_video_args`).
        psy: False turns x264's psychovisual optimisations off (flow mode: see :func:`_video_args`).
    """

    def __init__(self, path: StrPath, width: int, height: int, fps: float, fmt: OutputFormat,
                 crf: int | None = None, intra_only: bool = False, psy: bool = True) -> None:
        self.path = Path(path)
        self.width, self.height, self.fps, self.fmt, self.crf = width, height, fps, fmt, crf
        self.intra_only, self.psy = intra_only, psy
        self.frames_written = 0
        self._ff: Ffmpeg | None = None
        if fmt.needs_even_size and (width % 2 or height % 2):
            raise InputError(f"{fmt.name.lower()} needs an even frame size, got {width}x{height}",
                             hint="round the size with even_size()")
        if not self.path.parent.is_dir():
            raise EncodeError(f"cannot write {self.path}: folder {self.path.parent} does not exist")

    def __enter__(self) -> SegmentWriter:
        if self.fmt.is_folder:
            self.path.mkdir(exist_ok=True)
            for old in numbered_images(self.path):  # a segment is rewritten from its first frame
                old.unlink()
        else:
            args = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
                    "-r", rate(self.fps), "-i", "pipe:0", "-an", *_video_args(self.fmt, self.crf, self.intra_only, self.psy),
                    "-y", url(self.path)]
            self._ff = Ffmpeg(args, stdin=True)
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one ``uint8 (height, width, 3)`` RGB frame. EncodeError if ffmpeg has died."""
        check_frame(frame, self.width, self.height)
        if self.fmt.is_folder:
            save_image(self.path / FRAME_NAME.format(self.frames_written + 1), frame)
        else:
            if self._ff is None:
                raise RuntimeError("SegmentWriter.write outside its with block")
            # poll() is a cheap waitpid: notice a dead ffmpeg now, not after the pipe buffer fills.
            if self._ff.proc.poll() is not None:
                self._fail()
            try:
                self._ff.stdin.write(np.ascontiguousarray(frame).data.cast("B"))
            except (BrokenPipeError, OSError):
                self._fail()
        self.frames_written += 1

    def _fail(self) -> None:
        assert self._ff is not None
        ff, self._ff = self._ff, None
        ff.stop()
        raise EncodeError(f"ffmpeg failed writing {self.path}: {ff.tail()}",
                          hint="check free disk space and that the folder is writable")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.fmt.is_folder and self.frames_written == 0:
            remove(self.path)
        if self._ff is None:
            return
        ff, self._ff = self._ff, None
        if self.frames_written == 0:
            ff.stop()
            self.path.unlink(missing_ok=True)
            return
        status = ff.finish()
        # An exception already on its way out (Ctrl-C, a dream error) is the one the user needs.
        if status != 0 and exc_type is None:
            raise EncodeError(f"ffmpeg failed writing {self.path}: {ff.tail()}",
                              hint="check free disk space and that the folder is writable")
