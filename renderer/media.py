"""Frame sources and sinks over ffmpeg pipes: probing, decoding, encoding, images, audio mux.

Conventions at this boundary:

- a frame is a numpy ``uint8`` array of shape ``(H, W, 3)``, RGB, C-contiguous; the pipeline converts
  to and from torch tensors itself;
- times are in seconds, frame rates in frames per second, sizes are ``(width, height)`` in pixels;
- audio is float32 mono in ``[-1, 1]``.

Frames travel through pipes as ``rgb24`` rawvideo, never through temporary image files. Every ffmpeg
process started here is reaped before the call that started it returns (or, for a reader, when the
reader is exhausted or closed): see :class:`_Ffmpeg`. Encoders run in their own process group so a
Ctrl-C in the terminal reaches Python only, and we close ffmpeg's stdin ourselves so it writes a
playable file with every frame it was given.

A render writes into a work folder beside its output (:func:`partial_dir`): one segment file per
:class:`SegmentWriter` session, which makes an interrupted render resumable; :func:`finalize`
concatenates the segments (and muxes the soundtrack) into the output, atomically.
"""

from __future__ import annotations

import enum
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO, Union

import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageOps

from .errors import EncodeError, InputError

StrPath = Union[str, "os.PathLike[str]"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
FRAME_NAME = "frame_{:06d}.png"  # numbering starts at 1, like ffmpeg's image2 muxer
PARTIAL_SUFFIX = ".dreamvid-partial"

# Colour tagging for YUV outputs. Without it swscale converts RGB with the BT.601 matrix and leaves
# the file untagged, and players that assume BT.709 (most of them, for anything HD) shift the hues.
_BT709 = ["-vf", "scale=out_color_matrix=bt709:out_range=tv",
          "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]
_GIF_GRAPH = "split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=sierra2_4a"


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (or ``$IMAGEIO_FFMPEG_EXE``)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def _url(path: Path) -> str:
    """A local path as an ffmpeg URL: without ``file:``, "take:2.mp4" would be protocol "take"."""
    return f"file:{path}"


# --------------------------------------------------------------------------------------------------
# ffmpeg processes and their stderr


_LOG_PREFIX = re.compile(r"^(\[[^\]]+ @ 0x[0-9a-f]+\]\s*)+")
# Lines that add nothing: the file name is already in our message, and ffmpeg's threads each
# report the failure again on their way out.
_NOISE = ("At least one output file must be specified", "Conversion failed!", "Exiting normally",
          "Error opening input file ", "Error opening output file ", "Task finished with error code",
          "Terminating thread with return code")


def _meaningful(lines: Sequence[str]) -> str:
    """ffmpeg's stderr as one line: the first informative line (usually the cause) and the last
    (usually the consequence), log prefixes dropped."""
    kept = [line for line in (_LOG_PREFIX.sub("", raw).strip() for raw in lines)
            if line and not line.startswith(_NOISE)]
    if not kept:
        return "no message from ffmpeg"
    return kept[0] if kept[0] == kept[-1] else f"{kept[0]} ... {kept[-1]}"


class _Ffmpeg:
    """One running ffmpeg: the Popen plus a thread that drains stderr into a short tail.

    Draining stderr in a thread means ffmpeg never blocks on a full stderr pipe while we block on
    its stdin or stdout. The process gets its own session so that a terminal Ctrl-C does not kill
    it half-way through a file; we end it ourselves in :meth:`finish` or :meth:`stop`.
    """

    def __init__(self, args: Sequence[str], *, stdin: bool = False, stdout: bool = False) -> None:
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", *args]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._lines: deque[str] = deque(maxlen=40)
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            self._lines.append(raw.decode("utf-8", "replace").rstrip())
        self.proc.stderr.close()

    def tail(self) -> str:
        """What ffmpeg said on stderr, as one line (see :func:`_meaningful`)."""
        self._drain.join(timeout=2.0)  # the process has exited: let the thread catch the last lines
        return _meaningful(list(self._lines))

    def finish(self) -> int:
        """Close stdin so ffmpeg flushes and finalizes its output, wait for it; the exit status."""
        try:
            _close_quietly(self.proc.stdin)
            self.proc.wait()
        finally:
            self.stop()  # a Ctrl-C during the wait still reaps the process
        return self.proc.returncode

    def stop(self, grace_s: float = 2.0) -> None:
        """End ffmpeg now (terminate, then kill after ``grace_s``), wait for it, close its pipes."""
        _close_quietly(self.proc.stdin)
        _close_quietly(self.proc.stdout)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._drain.join(timeout=2.0)


def _close_quietly(stream: IO[bytes] | None) -> None:
    if stream is not None:
        # BrokenPipeError while flushing to a dead process: there is nothing left to save.
        with suppress(OSError):
            stream.close()


def _call(args: Sequence[str]) -> tuple[int, bytes, str]:
    """Run ffmpeg to completion: exit status, stdout, stderr (whole outputs in memory)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", *args]
    # subprocess.run kills and waits for the child if we are interrupted.
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    return done.returncode, done.stdout, done.stderr.decode("utf-8", "replace")


def _run(args: Sequence[str], what: str) -> bytes:
    """Run ffmpeg to completion and return its stdout; EncodeError naming ``what`` on failure."""
    status, out, err = _call(args)
    if status != 0:
        raise EncodeError(f"ffmpeg failed {what}: {_meaningful(err.splitlines())}")
    return out


def _rate(fps: float) -> str:
    """A frame rate as ffmpeg reads it exactly (``24000/1001`` rather than ``23.976023976``)."""
    return str(Fraction(fps).limit_denominator(1001))


# --------------------------------------------------------------------------------------------------
# Probing


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg says about a video file.

    ``width``/``height`` are the displayed size (after the rotation in the file's metadata, which
    ffmpeg applies when decoding); ``fps`` the average frame rate; ``duration`` in seconds;
    ``n_frames`` an estimate, ``round(duration * fps)``.
    """

    path: Path
    width: int
    height: int
    fps: float
    duration: float
    n_frames: int
    has_audio: bool
    audio_codec: str | None
    video_codec: str


@dataclass(frozen=True)
class _Header:
    """The parts of ``ffmpeg -i`` we use; ``video`` is the first video stream's text block."""

    duration: float | None
    video: str | None
    audio_codec: str | None


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_SIZE = re.compile(r"[\s,](\d+)x(\d+)(?=[\s,\[]|$)")  # not the "0x31637661" of a codec tag
_FPS = re.compile(r"([\d.]+)(k?) (fps|tbr)\b")
_ROTATION = re.compile(r"display ?matrix: rotation of (-?[\d.]+) degrees", re.IGNORECASE)


def _header(path: Path) -> _Header:
    """Run ``ffmpeg -i path`` and parse its stream listing; InputError if it is not media."""
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a media file")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes)", hint="re-export or re-download it")
    # Without an output file ffmpeg prints the header and exits 1: the status means nothing here.
    _, _, text = _call(["-loglevel", "info", "-i", _url(path)])
    if "Input #0" not in text:
        raise InputError(f"cannot read {path}: {_meaningful(text.splitlines())}",
                         hint="is it a video, image or audio file, and complete?")
    match = _DURATION.search(text)
    duration = int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3]) if match else None
    blocks = re.split(r"\n(?=\s*Stream #)", text)
    video = next((b for b in blocks if re.match(r"\s*Stream #.*?: Video: ", b)
                  and "(attached pic)" not in b.splitlines()[0]), None)  # cover art is not a video
    audio = next((b for b in blocks if re.match(r"\s*Stream #.*?: Audio: ", b)), None)
    audio_codec = re.search(r"Audio: (\w+)", audio)[1] if audio else None  # type: ignore[index]
    return _Header(duration, video, audio_codec)


def _snap_ntsc(fps: float) -> float:
    """ffmpeg prints 24000/1001 as "23.98": give back the exact NTSC rate so timing does not drift."""
    for base in (24, 30, 48, 60, 120, 240):
        if abs(fps - base * 1000 / 1001) < 0.006:
            return base * 1000 / 1001
    return fps


def _parse_video(block: str) -> tuple[str, int, int, float | None]:
    """Codec, displayed width and height, and frame rate (None if unknown) of a video stream."""
    first = block.splitlines()[0]
    codec = re.search(r"Video: (\w+)", first)[1]  # type: ignore[index]
    size = _SIZE.search(first.split("Video:", 1)[1])
    if size is None:
        raise ValueError(f"no frame size in {first!r}")
    width, height = int(size[1]), int(size[2])
    rates = {kind: float(value) * (1000 if k else 1) for value, k, kind in _FPS.findall(first)}
    fps = rates.get("fps") or rates.get("tbr")
    rotation = _ROTATION.search(block)
    if rotation and round(abs(float(rotation[1]))) % 180 == 90:
        width, height = height, width  # ffmpeg autorotates when decoding
    return codec, width, height, _snap_ntsc(fps) if fps else None


def probe(path: StrPath) -> VideoInfo:
    """Describe a video file (see :class:`VideoInfo`).

    Raises:
        InputError: the file is missing, empty, not media or corrupt, has no video stream, or has
            no decodable frames.
    """
    path = Path(path)
    head = _header(path)
    if head.video is None:
        raise InputError(f"{path} has no video stream",
                         hint="to use it as a soundtrack pass it with --audio")
    try:
        codec, width, height, fps = _parse_video(head.video)
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot read {path}: unexpected stream description from ffmpeg") from exc
    duration = head.duration
    if not duration or not fps:
        # No duration in the header (raw streams, some mkv): count by reading the packets.
        try:
            n, duration = count_frames_and_secs(path)
        except EncodeError as exc:
            raise InputError(exc.message) from exc
        fps = fps or (n / duration if duration > 0 else None)
    problem = _first_frame_problem(path)
    if not duration or not fps or problem:
        raise InputError(f"{path} has no decodable video frames" + (f": {problem}" if problem else ""),
                         hint="re-export or re-download it")
    return VideoInfo(path, width, height, fps, duration, max(1, round(duration * fps)),
                     head.audio_codec is not None, head.audio_codec, codec)


def _first_frame_problem(path: Path) -> str | None:
    """None if the first video frame decodes, else what ffmpeg said. Catches an intact header over
    missing or undecodable data before a render starts, not an hour into it."""
    args = ["-nostdin", "-i", _url(path), "-map", "0:v:0", "-frames:v", "1",
            "-vf", "scale=8:8", "-pix_fmt", "gray", "-f", "rawvideo", "pipe:1"]
    status, frame, err = _call(args)
    if status == 0 and len(frame) == 64:
        return None
    return _meaningful(err.splitlines()) if err.strip() else "ffmpeg decoded nothing"


def count_frames_and_secs(path: StrPath) -> tuple[int, float]:
    """Exact frame count and duration (s) of a file's first video stream, by reading its packets.

    Fast (no decoding); used to verify segments on resume and where the header has no duration.
    """
    try:
        n, secs = imageio_ffmpeg.count_frames_and_secs(_url(Path(path)))
    except (RuntimeError, OSError) as exc:
        raise EncodeError(f"cannot count the frames of {path}: {str(exc).strip().splitlines()[-1]}") from exc
    return int(n), float(secs)


def count_frames(path: StrPath) -> int:
    """Exact number of frames in a video file, or of PNG frames in a frame folder."""
    path = Path(path)
    if path.is_dir():
        return len(_numbered_images(path))
    return count_frames_and_secs(path)[0]


# --------------------------------------------------------------------------------------------------
# Still images and frame folders


def is_image(path: StrPath) -> bool:
    """Whether ``path`` names a still image, by its extension."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def load_image(path: StrPath) -> np.ndarray:
    """Read an image as ``uint8 (H, W, 3)`` RGB, upright (EXIF orientation applied).

    Transparency is composited onto black.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                rgba = img.convert("RGBA")
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read image {path}: {reason}", hint="is it a complete image file?") from exc


def save_image(path: StrPath, array: np.ndarray) -> None:
    """Write a ``uint8 (H, W, 3)`` RGB array as an image (format from the extension), atomically."""
    path = Path(path)
    _check_frame(array)
    try:
        with _atomic_path(path) as tmp:
            Image.fromarray(array, "RGB").save(tmp)
    except OSError as exc:
        raise EncodeError(f"cannot write image {path}: {exc.strerror or exc}") from exc


def _natural_key(name: str) -> list[int | str]:
    # re.split with a group alternates text and digits, so keys compare str to str and int to int.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _numbered_images(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir()
             if p.is_file() and is_image(p) and not p.name.startswith(".") and re.search(r"\d", p.name)]
    return sorted(files, key=lambda p: _natural_key(p.name))


def list_frame_folder(path: StrPath) -> list[Path]:
    """The numbered image files in a folder, in natural order (``f2.png`` before ``f10.png``).

    Hidden files (our own temporaries among them) and images without a number are ignored.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"no such folder: {path}")
    frames = _numbered_images(path)
    if not frames:
        raise InputError(f"no numbered images in {path}",
                         hint=f"expected files like frame_0001.png ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return frames


# --------------------------------------------------------------------------------------------------
# Decoding


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
    ff = _Ffmpeg(args, stdout=True)
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


def _span_args(start: float, end: float | None) -> list[str]:
    """Input options selecting ``[start, end)`` seconds. Before ``-i``, ``-ss`` seeks fast and then
    decodes up to the exact time; it is left out at 0 because raw streams without timestamps
    (``.h264``) yield nothing after any seek."""
    args = ["-ss", f"{start:.6f}"] if start > 0 else []
    return args + (["-t", f"{end - start:.6f}"] if end is not None else [])


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
    filters = f"fps={_rate(out_fps)}" + (f",scale={width}:{height}:flags=lanczos" if size else "")
    args = ["-nostdin", *_span_args(start, end), "-i", _url(info.path),
            "-map", "0:v:0", "-vf", filters, "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
    return VideoReader(args, info.path, width, height, out_fps, round(span * out_fps))


def read_audio(path: StrPath, sample_rate: int = 22050, start: float = 0.0,
               end: float | None = None) -> np.ndarray:
    """Decode a file's first audio stream as float32 mono ``(n_samples,)`` at ``sample_rate`` Hz.

    ``start``/``end`` select a span in seconds. Works for video files with sound and audio files.
    """
    path = Path(path)
    if _header(path).audio_codec is None:
        raise InputError(f"{path} has no audio stream", hint="choose a file with sound")
    if end is not None and end <= start:
        raise InputError(f"end {end:g}s must come after start {start:g}s")
    args = ["-nostdin", *_span_args(start, end), "-i", _url(path),
            "-map", "0:a:0", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "pipe:1"]
    data = _run(args, f"decoding the audio of {path}")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)  # a writable, native-order copy


# --------------------------------------------------------------------------------------------------
# Output formats


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
_AUDIO_ENCODE = {
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


def _video_args(fmt: OutputFormat, crf: int | None) -> list[str]:
    """ffmpeg output arguments that encode one segment of ``fmt`` (the only place codecs are set)."""
    crf = crf if crf is not None else fmt.default_crf
    if fmt is OutputFormat.MP4:
        return ["-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-pix_fmt", "yuv420p", *_BT709]
    if fmt is OutputFormat.MOV:
        return ["-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le", *_BT709]
    if fmt is OutputFormat.WEBM:
        return ["-c:v", "libvpx-vp9", "-crf", str(crf), "-b:v", "0", "-row-mt", "1",
                "-pix_fmt", "yuv420p", *_BT709]
    if fmt is OutputFormat.GIF:
        return ["-c:v", "ffv1"]  # lossless RGB: the palette is computed once, over the whole render
    raise ValueError(f"{fmt} is not encoded by ffmpeg")


# --------------------------------------------------------------------------------------------------
# Segmented, resumable writing


def partial_dir(output: StrPath) -> Path:
    """The work folder of a render to ``output``: ``<output>.dreamvid-partial`` beside it."""
    output = Path(output)
    return output.with_name(output.name + PARTIAL_SUFFIX)


def segment_path(work_dir: StrPath, index: int, fmt: OutputFormat) -> Path:
    """Path of segment ``index`` (0-based) in a work folder; sorted names sort in render order."""
    return Path(work_dir) / f"segment_{index:05d}{fmt.segment_suffix}"


def preview_path(output: StrPath) -> Path:
    """Where :func:`partial_preview` writes: ``<stem>.partial<ext>`` beside the output."""
    output = Path(output)
    return output.with_name(f"{output.stem}.partial{output.suffix}")


def _check_frame(frame: np.ndarray, width: int | None = None, height: int | None = None) -> None:
    """Frames here are ``uint8 (H, W, 3)``; a wrong one is a bug in the caller, hence ValueError."""
    ok_shape = frame.ndim == 3 and frame.shape[2] == 3
    if width is not None and height is not None:
        ok_shape = frame.shape == (height, width, 3)
    if frame.dtype != np.uint8 or not ok_shape:
        want = f"({height}, {width}, 3)" if width is not None else "(H, W, 3)"
        raise ValueError(f"expected a uint8 {want} frame, got {frame.dtype} {frame.shape}")


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
    """

    def __init__(self, path: StrPath, width: int, height: int, fps: float, fmt: OutputFormat,
                 crf: int | None = None) -> None:
        self.path = Path(path)
        self.width, self.height, self.fps, self.fmt, self.crf = width, height, fps, fmt, crf
        self.frames_written = 0
        self._ff: _Ffmpeg | None = None
        if fmt.needs_even_size and (width % 2 or height % 2):
            raise InputError(f"{fmt.name.lower()} needs an even frame size, got {width}x{height}",
                             hint="round the size with even_size()")
        if not self.path.parent.is_dir():
            raise EncodeError(f"cannot write {self.path}: folder {self.path.parent} does not exist")

    def __enter__(self) -> SegmentWriter:
        if self.fmt.is_folder:
            self.path.mkdir(exist_ok=True)
            for old in _numbered_images(self.path):  # a segment is rewritten from its first frame
                old.unlink()
        else:
            args = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
                    "-r", _rate(self.fps), "-i", "pipe:0", "-an", *_video_args(self.fmt, self.crf),
                    "-y", _url(self.path)]
            self._ff = _Ffmpeg(args, stdin=True)
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one ``uint8 (height, width, 3)`` RGB frame. EncodeError if ffmpeg has died."""
        _check_frame(frame, self.width, self.height)
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
            _remove(self.path)
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


# --------------------------------------------------------------------------------------------------
# Finalizing: segments (+ soundtrack) -> output


@dataclass(frozen=True)
class AudioSource:
    """The span of a soundtrack to mux: from ``start`` (s) for ``duration`` (s; None: as long as
    the video)."""

    path: Path
    start: float = 0.0
    duration: float | None = None


@contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """A hidden temporary name beside ``path`` (same extension, so ffmpeg and Pillow pick the
    format), renamed onto ``path`` if the block succeeds and removed if it fails."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_output(output: Path, fmt: OutputFormat, overwrite: bool) -> None:
    folder = output.parent
    if not folder.is_dir():
        raise InputError(f"output folder {folder} does not exist",
                         hint="create it or choose another output path")
    if not os.access(folder, os.W_OK):
        raise InputError(f"cannot write to output folder {folder}", hint="choose another output path")
    if output.exists() and not overwrite:
        raise InputError(f"{output} exists",
                         hint="pass --overwrite to replace it, or choose another output path")
    if output.is_dir() and not fmt.is_folder:
        raise InputError(f"{output} is a folder", hint="choose a file name for the output")


def finalize(segments: Sequence[StrPath], output: StrPath, fmt: OutputFormat, fps: float, *,
             audio: AudioSource | None = None, overwrite: bool = False) -> Path:
    """Join the segments into ``output``, with the soundtrack span if given; the output path.

    mp4/mov/webm segments are concatenated without re-encoding; GIF segments are encoded with a
    palette computed over the whole render; PNG segment folders are linked into one folder with
    continuous numbering. The result is written under a temporary name and renamed into place only
    when complete, so a failure never leaves half a file and never touches an existing output.
    The segments are left in place (the caller removes the work folder). Audio is skipped for
    formats without it (GIF, PNG): the caller warns.

    Raises:
        InputError: ``output`` exists and not ``overwrite``; its folder is missing or read-only;
            the audio file has no sound or ``audio.start`` is past its end.
        EncodeError: ffmpeg failed (its message is quoted).
    """
    output = Path(output)
    if not segments:
        raise InputError(f"nothing to write to {output}: no frames were rendered")
    _check_output(output, fmt, overwrite)
    if fmt.is_folder:
        return _finalize_folder([Path(s) for s in segments], output)
    with _atomic_path(output) as tmp:
        _concat([Path(s) for s in segments], tmp, fmt, fps, audio if fmt.supports_audio else None)
    return output


def partial_preview(segments: Sequence[StrPath], output: StrPath, fmt: OutputFormat,
                    fps: float) -> Path | None:
    """Join the finished segments into ``<stem>.partial<ext>`` beside ``output`` (no audio), so an
    interrupted render leaves something to watch. Returns its path; None for PNG output or when
    there are no segments yet. Replaces an older preview."""
    if fmt.is_folder or not segments:
        return None
    target = preview_path(output)
    with _atomic_path(target) as tmp:
        _concat([Path(s) for s in segments], tmp, fmt, fps, None)
    return target


def _concat(segments: list[Path], dest: Path, fmt: OutputFormat, fps: float,
            audio: AudioSource | None) -> None:
    """Run ffmpeg's concat demuxer over ``segments`` into ``dest`` (+ audio span)."""
    fd, list_name = tempfile.mkstemp(prefix="dreamvid-concat-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for seg in segments:
                quoted = _url(seg.resolve()).replace("'", "'\\''")  # the concat list's quoting
                f.write(f"file '{quoted}'\n")
        args = ["-f", "concat", "-safe", "0", "-i", list_name]
        if audio is not None:
            n_frames = sum(count_frames(s) for s in segments)
            args += _audio_input(audio, n_frames / fps, fmt, fps)
        if fmt is OutputFormat.GIF:
            args += ["-filter_complex", f"[0:v]{_GIF_GRAPH}"]
        else:
            args += ["-map", "0:v:0", "-c:v", "copy"]
            if audio is not None:
                args += ["-map", "1:a:0"]
        if fmt in (OutputFormat.MP4, OutputFormat.MOV):
            args += ["-movflags", "+faststart"]  # index first: playable while streaming
        _run([*args, "-y", _url(dest)], f"writing {dest.name}")
    finally:
        os.unlink(list_name)


def _audio_input(audio: AudioSource, video_s: float, fmt: OutputFormat, fps: float) -> list[str]:
    """Input and codec arguments that add ``audio``'s span, never longer than the video."""
    path = Path(audio.path)
    head = _header(path)
    if head.audio_codec is None:
        raise InputError(f"{path} has no audio stream", hint="choose a file with sound for --audio")
    if head.duration is not None and audio.start >= head.duration:
        raise InputError(f"audio start {audio.start:g}s is past the end of {path} ({head.duration:g}s)")
    span = min(video_s, audio.duration) if audio.duration is not None else video_s
    if span <= 0:
        raise InputError(f"audio duration must be positive, got {audio.duration:g}s")
    # Stream copy cuts at packet boundaries (~20-40 ms): only exact when nothing needs cutting, i.e.
    # the whole soundtrack fits in the video. Otherwise re-encode, which cuts to the sample.
    fits = audio.start == 0 and head.duration is not None and head.duration <= span + 0.5 / fps
    codec = ["-c:a", "copy"] if fits and head.audio_codec in fmt.audio_copy_codecs else _AUDIO_ENCODE[fmt]
    return [*_span_args(audio.start, audio.start + span), "-i", _url(path), *codec]


def _finalize_folder(segments: list[Path], output: Path) -> Path:
    """Number the frames of the segment folders 1..N in a temporary folder, then swap it in."""
    tmp = output.with_name(f".{output.name}.tmp")
    old = output.with_name(f".{output.name}.old")
    for stale in (tmp, old):
        _remove(stale)
    try:
        tmp.mkdir()
        n = 0
        for seg in segments:
            for frame in _numbered_images(seg):
                n += 1
                _link_or_copy(frame, tmp / FRAME_NAME.format(n))
        if output.exists():  # overwrite was checked: move the old one aside, swap, then delete it
            os.replace(output, old)
        os.replace(tmp, output)
    except OSError as exc:
        if old.exists() and not output.exists():
            os.replace(old, output)  # the swap failed half-way: put the old output back
        raise EncodeError(f"cannot write frames to {output}: {exc.strerror or exc}") from exc
    finally:
        _remove(tmp)
    _remove(old)
    return output


def _remove(path: Path) -> None:
    """Delete a file or folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    # A hard link keeps the segments intact (resume still works if finalizing fails) at no cost.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
