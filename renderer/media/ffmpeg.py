"""The ffmpeg process wrapper: the executable, running it, and turning its stderr into one line.

Every other module of :mod:`renderer.media` starts ffmpeg through :class:`Ffmpeg` (a running process
we stream to or from) or :func:`call` / :func:`run` (a process run to completion).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import threading
from collections import deque
from collections.abc import Sequence
from contextlib import suppress
from fractions import Fraction
from pathlib import Path
from typing import IO, Union

import imageio_ffmpeg

from ..errors import EncodeError

StrPath = Union[str, "os.PathLike[str]"]


#: Bitstream filters the pipeline needs: ``setts`` (ffmpeg 4.4+) puts joined segments on the frame grid.
#: imageio-ffmpeg 0.5 ships ffmpeg 4.2, which lacks it: every render would fail only at its very end.
REQUIRED_BSFS = ("setts",)


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (or ``$IMAGEIO_FFMPEG_EXE``), checked once per
    path to have what the pipeline needs.

    Raises:
        EncodeError: the binary does not run, or is too old (one line saying how to get a newer one).
    """
    return _checked(imageio_ffmpeg.get_ffmpeg_exe())


@functools.cache
def _checked(exe: str) -> str:
    fix = "pip install -U 'imageio-ffmpeg>=0.6' (it ships ffmpeg 7), or set IMAGEIO_FFMPEG_EXE to ffmpeg 4.4 or newer"
    try:
        listed = subprocess.run([exe, "-hide_banner", "-bsfs"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EncodeError(f"cannot run ffmpeg at {exe}: {exc}", hint=fix) from None
    missing = [name for name in REQUIRED_BSFS if name not in listed.stdout.split()]
    if missing:
        version = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=60)
        first = (version.stdout.splitlines() or ["an unknown version"])[0].strip()
        raise EncodeError(f"the ffmpeg at {exe} is too old ({first}): it lacks the {', '.join(missing)} filter",
                          hint=fix)
    return exe


def url(path: Path) -> str:
    """A local path as an ffmpeg URL: without ``file:``, "take:2.mp4" would be protocol "take"."""
    return f"file:{path}"


_LOG_PREFIX = re.compile(r"^(\[[^\]]+ @ 0x[0-9a-f]+\]\s*)+")
# Lines that add nothing: the file name is already in our message, and ffmpeg's threads each
# report the failure again on their way out.
_NOISE = ("At least one output file must be specified", "Conversion failed!", "Exiting normally",
          "Error opening input file ", "Error opening output file ", "Task finished with error code",
          "Terminating thread with return code")


def meaningful(lines: Sequence[str]) -> str:
    """ffmpeg's stderr as one line: the first informative line (usually the cause) and the last
    (usually the consequence), log prefixes dropped."""
    kept = [line for line in (_LOG_PREFIX.sub("", raw).strip() for raw in lines)
            if line and not line.startswith(_NOISE)]
    if not kept:
        return "no message from ffmpeg"
    return kept[0] if kept[0] == kept[-1] else f"{kept[0]} ... {kept[-1]}"


class Ffmpeg:
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
        """What ffmpeg said on stderr, as one line (see :func:`meaningful`)."""
        self._drain.join(timeout=2.0)  # the process has exited: let the thread catch the last lines
        return meaningful(list(self._lines))

    def complained(self) -> bool:
        """Whether ffmpeg wrote anything to stderr (at ``-loglevel error``: an error it survived)."""
        self._drain.join(timeout=2.0)
        return any(line.strip() for line in self._lines)

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


def call(args: Sequence[str]) -> tuple[int, bytes, str]:
    """Run ffmpeg to completion: exit status, stdout, stderr (whole outputs in memory)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", *args]
    # subprocess.run kills and waits for the child if we are interrupted.
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    return done.returncode, done.stdout, done.stderr.decode("utf-8", "replace")


def run(args: Sequence[str], what: str) -> bytes:
    """Run ffmpeg to completion and return its stdout; EncodeError naming ``what`` on failure."""
    status, out, err = call(args)
    if status != 0:
        raise EncodeError(f"ffmpeg failed {what}: {meaningful(err.splitlines())}")
    return out


def rate(fps: float) -> str:
    """A frame rate as ffmpeg reads it exactly (``24000/1001`` rather than ``23.976023976``)."""
    return str(Fraction(fps).limit_denominator(1001))


def span_args(start: float, end: float | None) -> list[str]:
    """Input options selecting ``[start, end)`` seconds. Before ``-i``, ``-ss`` seeks fast and then
    decodes up to the exact time; it is left out at 0 because raw streams without timestamps
    (``.h264``) yield nothing after any seek."""
    args = ["-ss", f"{start:.6f}"] if start > 0 else []
    return args + (["-t", f"{end - start:.6f}"] if end is not None else [])
