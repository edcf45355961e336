"""What is in a media file: ``ffmpeg -i`` headers parsed into :class:`VideoInfo`, and frame counts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg

from ..errors import EncodeError, InputError
from .ffmpeg import StrPath, call, meaningful, run, url
from .images import numbered_images


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg says about a video file.

    ``width``/``height`` are the displayed size (after the rotation in the file's metadata, which
    ffmpeg applies when decoding); ``fps`` the average frame rate; ``duration`` in seconds;
    ``n_frames`` an estimate, ``round(duration * fps)``. ``start_time`` is the timestamp (s) of the
    file's start (0 in mp4; MPEG-TS often starts at 1.4 s), ``container`` ffmpeg's demuxer name
    (``"mov,mp4,m4a,3gp,3g2,mj2"``), ``pixel_format`` the decoder's (``"yuv420p"``, ``"bgra"``).
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
    start_time: float = 0.0
    container: str = ""
    pixel_format: str = ""

    @property
    def has_alpha(self) -> bool:
        """The frames carry transparency (animated GIF, VP9 or ProRes 4444 with alpha)."""
        return bool(_ALPHA_FORMAT.match(self.pixel_format))

    @property
    def has_index(self) -> bool:
        """The container has an index of keyframes (mp4/mov, Matroska/WebM), so a seek lands
        on the keyframe at or before its target; others (MPEG-TS, ...) seek by guessing."""
        return self.can_seek and any(name in _INDEXED for name in self.container.split(","))

    @property
    def can_seek(self) -> bool:
        """False for raw streams (``.h264``) without timestamps, in which ffmpeg cannot seek."""
        return self.container not in _RAW_STREAMS


_ALPHA_FORMAT = re.compile(r"(yuva|gbrap|ya\d|rgba|bgra|argb|abgr|rgb32|bgr32)")
_INDEXED = frozenset({"mov", "mp4", "matroska", "webm"})
_RAW_STREAMS = frozenset({"h264", "hevc", "mpegvideo", "m4v", "rawvideo", "vvc", "obu", "ivf"})


@dataclass(frozen=True)
class Header:
    """The parts of ``ffmpeg -i`` we use; ``video`` is the first video stream's text block."""

    duration: float | None
    video: str | None
    audio_codec: str | None
    start_time: float = 0.0
    container: str = ""


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_START = re.compile(r"Duration: .*?, start: (-?\d+(?:\.\d+)?)")
_CONTAINER = re.compile(r"^Input #0, (.+?), from ", re.MULTILINE)
_PIXEL_FORMAT = re.compile(r"Video: [^,]*, (\w+)")
_SIZE = re.compile(r"[\s,](\d+)x(\d+)(?=[\s,\[]|$)")  # not the "0x31637661" of a codec tag
_FPS = re.compile(r"([\d.]+)(k?) (fps|tbr)\b")
_ROTATION = re.compile(r"display ?matrix: rotation of (-?[\d.]+) degrees", re.IGNORECASE)


def header(path: Path) -> Header:
    """Run ``ffmpeg -i path`` and parse its stream listing; InputError if it is not media."""
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a media file")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes)", hint="re-export or re-download it")
    # Without an output file ffmpeg prints the header and exits 1: the status means nothing here.
    _, _, text = call(["-loglevel", "info", "-i", url(path)])
    if "Input #0" not in text:
        raise InputError(f"cannot read {path}: {meaningful(text.splitlines())}",
                         hint="is it a video, image or audio file, and complete?")
    match = _DURATION.search(text)
    duration = int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3]) if match else None
    blocks = re.split(r"\n(?=\s*Stream #)", text)
    video = next((b for b in blocks if re.match(r"\s*Stream #.*?: Video: ", b)
                  and "(attached pic)" not in b.splitlines()[0]), None)  # cover art is not a video
    audio = next((b for b in blocks if re.match(r"\s*Stream #.*?: Audio: ", b)), None)
    audio_codec = re.search(r"Audio: (\w+)", audio)[1] if audio else None  # type: ignore[index]
    start = _START.search(text)
    container = _CONTAINER.search(text)
    return Header(duration, video, audio_codec, float(start[1]) if start else 0.0,
                  container[1] if container else "")


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
    head = header(path)
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
    pixel_format = _PIXEL_FORMAT.search(head.video.splitlines()[0])
    return VideoInfo(path, width, height, fps, duration, max(1, round(duration * fps)),
                     head.audio_codec is not None, head.audio_codec, codec, head.start_time, head.container,
                     pixel_format[1] if pixel_format else "")


def _first_frame_problem(path: Path) -> str | None:
    """None if the first video frame decodes, else what ffmpeg said. Catches an intact header over
    missing or undecodable data before a render starts, not an hour into it."""
    args = ["-nostdin", "-i", url(path), "-map", "0:v:0", "-frames:v", "1",
            "-vf", "scale=8:8", "-pix_fmt", "gray", "-f", "rawvideo", "pipe:1"]
    status, frame, err = call(args)
    if status == 0 and len(frame) == 64:
        return None
    return meaningful(err.splitlines()) if err.strip() else "ffmpeg decoded nothing"


def count_frames_and_secs(path: StrPath) -> tuple[int, float]:
    """Exact frame count and duration (s) of a file's first video stream, by reading its packets.

    Fast (no decoding); used to verify segments on resume and where the header has no duration.
    """
    try:
        n, secs = imageio_ffmpeg.count_frames_and_secs(url(Path(path)))
    except (RuntimeError, OSError) as exc:
        raise EncodeError(f"cannot count the frames of {path}: {str(exc).strip().splitlines()[-1]}") from exc
    return int(n), float(secs)


def count_frames(path: StrPath) -> int:
    """Exact number of frames in a video file, or of PNG frames in a frame folder."""
    path = Path(path)
    if path.is_dir():
        return len(numbered_images(path))
    return count_frames_and_secs(path)[0]


@dataclass(frozen=True)
class Packets:
    """The timestamps of a file's first video stream, packet by packet in decode order.

    ``dts``, ``pts`` and ``duration`` are integers in units of ``time_base`` (seconds), as the
    container stores them (an mp4 edit list already applied, so the first frame shows at pts 0).
    """

    time_base: Fraction
    dts: list[int]
    pts: list[int]
    duration: list[int]

    def __len__(self) -> int:
        return len(self.pts)


_CRC_LINE = re.compile(r"^0,\s*(-?\d+),\s*(-?\d+),\s*(-?\d+),", re.MULTILINE)
_CRC_TB = re.compile(r"^#tb 0: (\d+)/(\d+)", re.MULTILINE)


def video_packets(path: StrPath) -> Packets:
    """Read the packet timestamps of ``path``'s first video stream (no decoding: fast).

    Raises:
        EncodeError: ffmpeg cannot read the file.
    """
    path = Path(path)
    text = run(["-nostdin", "-i", url(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "pipe:1"],
               f"reading the packets of {path}").decode("ascii", "replace")
    tb = _CRC_TB.search(text)
    rows = [tuple(int(v) for v in row) for row in _CRC_LINE.findall(text)]
    return Packets(Fraction(int(tb[1]), int(tb[2])) if tb else Fraction(1, 1),
                   [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
