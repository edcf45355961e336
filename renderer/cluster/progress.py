"""Progress of a render spread over workers: the whole render (frames per second over all workers,
ETA) and each worker (its span, frames, frames per second).

:class:`ProgressTracker` turns reports ``(worker, span key, frames dreamed in that span so far)`` into
:class:`ProgressSnapshot` values; a retried span simply reports from 0 again (the latest report of a
span counts). :class:`ProgressView` draws snapshots with rich, on stderr.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class WorkerProgress:
    """One worker: what it is rendering (``label``: "OUTPUT span i/n"), frames dreamed since the run
    started, and its rate (those frames per second of wall time since the run started)."""

    name: str
    label: str
    frames: int
    fps: float
    pid: int | None = None   # the worker's process id, where it said


@dataclass(frozen=True)
class ProgressSnapshot:
    """The whole run: frames dreamed (warm-up included) of `total`, the rate over all workers (frames
    per second since the run started, frames done before a resume not counted) and the time left (s,
    None until there is a rate)."""

    done: int
    total: int
    fps: float
    eta_s: float | None
    workers: tuple[WorkerProgress, ...]


@dataclass
class ProgressTracker:
    """Collects reports from workers; `total` frames to dream in the run, `done` already (resume)."""

    total: int
    done: int = 0
    began: float = field(default_factory=time.monotonic)
    _spans: dict[Hashable, tuple[str, int]] = field(default_factory=dict)   # span key -> (worker, frames)
    _workers: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # worker -> (latest span's label, pid)

    def report(self, worker: str, key: Hashable, label: str, frames: int, pid: int | None = None) -> None:
        """`worker` (process `pid`) has dreamed `frames` frames of the span `key` (named `label`) so far."""
        self._spans[key] = (worker, frames)
        known = self._workers.get(worker, (label, None))[1]
        self._workers[worker] = (label, pid if pid is not None else known)

    def finish(self) -> ProgressSnapshot:
        """The last snapshot, once every span is in: its total is the frames actually dreamed (a header
        that promised a frame more than the stream holds would otherwise leave the bar short of 100 %)."""
        self.total = self.done + sum(frames for _, frames in self._spans.values())
        return self.snapshot()

    def snapshot(self) -> ProgressSnapshot:
        now = time.monotonic()
        new = sum(frames for _, frames in self._spans.values())
        elapsed = max(now - self.began, 1e-6)
        fps = new / elapsed
        done = min(self.done + new, self.total)
        eta = (self.total - done) / fps if fps > 0 else None
        workers = []
        for name, (label, pid) in sorted(self._workers.items()):
            frames = sum(f for w, f in self._spans.values() if w == name)
            workers.append(WorkerProgress(name, label, frames, frames / elapsed, pid))
        return ProgressSnapshot(done, self.total, fps, eta, tuple(workers))


def rate_text(fps: float) -> str:
    """``2.50 fps`` or, below one frame a second, ``3.1 s/frame``."""
    if fps <= 0:
        return ""
    return f"{fps:.2f} fps" if fps >= 1 else f"{1 / fps:.1f} s/frame"


class ProgressView:
    """A rich display on stderr: a bar for the whole render, a line per worker. Use as a context
    manager; it returns the callback that takes snapshots (None when `quiet`)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __enter__(self) -> Callable[[ProgressSnapshot], None] | None:
        if self.quiet:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("{task.description:>18}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
                             console=Console(stderr=True), transient=False)
        self._bar.__enter__()
        self._total = self._bar.add_task("all workers", total=None, rate="", eta="")
        self._rows: dict[str, int] = {}
        return self.show

    def show(self, snap: ProgressSnapshot) -> None:
        eta = "" if snap.eta_s is None else f"ETA {time.strftime('%H:%M:%S', time.gmtime(snap.eta_s))}"
        self._bar.update(self._total, completed=snap.done, total=snap.total, rate=rate_text(snap.fps), eta=eta)
        for worker in snap.workers:
            if worker.name not in self._rows:
                self._rows[worker.name] = self._bar.add_task(worker.name, total=None, rate="", eta="")
            self._bar.update(self._rows[worker.name], completed=worker.frames, rate=rate_text(worker.fps),
                             eta=worker.label)

    def __exit__(self, *exc: object) -> None:
        if not self.quiet:
            self._bar.__exit__(*exc)
