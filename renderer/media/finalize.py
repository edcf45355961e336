"""Finalizing a render: segments (+ soundtrack span) -> the output file or frame folder, atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import EncodeError, InputError
from .encode import AUDIO_ENCODE, OutputFormat, preview_path
from .ffmpeg import StrPath, rate, run, span_args, url
from .files import atomic_path, link_or_copy
from .images import FRAME_NAME, numbered_images
from .probe import Packets, header, video_packets

_GIF_GRAPH = "split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=sierra2_4a"


@dataclass(frozen=True)
class AudioSource:
    """The span of a soundtrack to mux: from ``start`` (s) for ``duration`` (s; None: as long as
    the video)."""

    path: Path
    start: float = 0.0
    duration: float | None = None


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
    with atomic_path(output) as tmp:
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
    with atomic_path(target) as tmp:
        _concat([Path(s) for s in segments], tmp, fmt, fps, None)
    return target


def _concat(segments: list[Path], dest: Path, fmt: OutputFormat, fps: float,
            audio: AudioSource | None) -> None:
    """Run ffmpeg's concat demuxer over ``segments`` into ``dest`` (+ audio span), every frame on
    the ``fps`` grid (see :func:`_frame_grid`)."""
    packets = [video_packets(seg) for seg in segments]
    fd, list_name = tempfile.mkstemp(prefix="dreamvid-concat-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for seg, seg_packets in zip(segments, packets):
                quoted = url(seg.resolve()).replace("'", "'\\''")  # the concat list's quoting
                # The exact length: otherwise the demuxer starts the next segment at this one's
                # container duration, rounded to the container's clock (1 ms in Matroska), and the
                # error adds up segment after segment.
                f.write(f"file '{quoted}'\nduration {len(seg_packets) / fps:.6f}\n")
        args = ["-f", "concat", "-safe", "0", "-i", list_name]
        if audio is not None:
            args += _audio_input(audio, sum(map(len, packets)) / fps, fmt, fps)
        if fmt is OutputFormat.GIF:
            args += ["-filter_complex", f"[0:v]{_GIF_GRAPH}"]
        else:
            args += ["-map", "0:v:0", "-c:v", "copy"]
            grid = _frame_grid(packets, fps)
            if grid is not None:
                args += ["-bsf:v", grid]
            if audio is not None:
                args += ["-map", "1:a:0"]
        if fmt in (OutputFormat.MP4, OutputFormat.MOV):
            args += ["-movflags", "+faststart"]  # index first: playable while streaming
        run([*args, "-y", url(dest)], f"writing {dest.name}")
    finally:
        os.unlink(list_name)


def _frame_grid(packets: Sequence[Packets], fps: float) -> str | None:
    """A ``setts`` bitstream filter that puts the joined segments' timestamps on the frame grid.

    Each segment is encoded on its own, and an encoder that reorders frames (x264's B-frames) starts
    decoding as many frames before showing as it has seen reason to: 2 in a full segment, 0 in one
    of 1 or 2 frames (the last one of a render, or one cut short by Ctrl-C). Joined as they are, the
    decode timestamps jump by the difference where such segments meet, and mp4/mov store the gaps
    between decode timestamps as the frame durations (``stts``): one frame lasts three frame times,
    the track is two frames too long, and ffprobe and editors read 50 frames at 25 fps as 24.04 fps,
    variable. Here every decode time becomes ``(n - D)`` frame times, D the largest delay of any
    segment, so each frame is decoded before it is shown and lasts exactly one frame time; the
    presentation times are snapped to the grid they are already within a microsecond of.

    None when a segment does not hold one frame per grid slot (nothing to fix that way).
    """
    frame_rate = Fraction(rate(fps))
    delay = 0
    for seg in packets:
        if not seg.pts or min(seg.pts) != seg.pts[0]:
            return None
        tick = 1 / (frame_rate * seg.time_base)  # one frame time in the segment's time base
        slots = [round((pts - seg.pts[0]) / tick) for pts in seg.pts]
        if sorted(slots) != list(range(len(slots))):
            return None
        delay = max(delay, *(index - slot for index, slot in enumerate(slots)))
    tick_expr = f"({frame_rate.denominator}/({frame_rate.numerator}*TB))"
    return (f"setts=pts=STARTPTS+round((PTS-STARTPTS)/{tick_expr})*{tick_expr}"
            f":dts=STARTPTS+(N-{delay})*{tick_expr}:duration={tick_expr}")


def _audio_input(audio: AudioSource, video_s: float, fmt: OutputFormat, fps: float) -> list[str]:
    """Input and codec arguments that add ``audio``'s span, never longer than the video."""
    path = Path(audio.path)
    head = header(path)
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
    codec = ["-c:a", "copy"] if fits and head.audio_codec in fmt.audio_copy_codecs else AUDIO_ENCODE[fmt]
    return [*span_args(audio.start, audio.start + span), "-i", url(path), *codec]


def _finalize_folder(segments: list[Path], output: Path) -> Path:
    """Number the frames of the segment folders 1..N in a temporary folder, then swap it in."""
    try:
        with atomic_path(output) as tmp:
            tmp.mkdir()
            n = 0
            for seg in segments:
                for frame in numbered_images(seg):
                    n += 1
                    link_or_copy(frame, tmp / FRAME_NAME.format(n))
    except OSError as exc:
        raise EncodeError(f"cannot write frames to {output}: {exc.strerror or exc}") from exc
    return output
