"""The studio's render queue: one render at a time, each in a worker process, others waiting.

Jobs live in the server, not in the page: closing the tab changes nothing, and reopening it shows
them again. Stopping a running job sends its process SIGINT, which the render answers like Ctrl-C
(state saved, resumable); resuming queues the same request with ``resume=True``.
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import deque
from enum import Enum
from typing import Any

from ..plan import RenderRequest
from . import worker
from .settings import render_command
from .workspace import Workspace

#: Seconds a stopping worker gets before it is killed when the server shuts down.
STOP_GRACE_S = 30.0


class JobStatus(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclasses.dataclass
class Job:
    """One render (or preview clip) and what is known of its progress."""

    id: str
    request: RenderRequest
    preview: bool
    status: JobStatus = JobStatus.QUEUED
    done: int = 0
    total: int = 0
    fps: float | None = None
    eta: float | None = None
    message: str = ""
    warnings: list[str] = dataclasses.field(default_factory=list)
    _clock: tuple[float, int] | None = None   # (time, frames done) at the first progress report

    @property
    def output(self) -> str:
        return str(self.request.output)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "preview": self.preview, "status": self.status.value, "done": self.done,
                "total": self.total, "fps": self.fps, "eta": self.eta, "message": self.message,
                "warnings": self.warnings, "output": self.output, "input": self.request.input,
                "command": render_command(self.request),
                "resumable": self.status is JobStatus.STOPPED and not self.preview}

    def progress(self, done: int, total: int) -> None:
        """Record a progress report; frames per second and ETA are measured from the first report
        (the first frame, dreamed fully, and the start-up are left out)."""
        now = time.monotonic()
        self.done, self.total = done, max(total, done)
        if self._clock is None:
            self._clock = (now, done)
            return
        t0, d0 = self._clock
        if done > d0 and now > t0:
            self.fps = (done - d0) / (now - t0)
            self.eta = (self.total - done) / self.fps


class JobQueue:
    """Runs submitted jobs one after another, each in a fresh worker process."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.jobs: dict[str, Job] = {}
        self.version = 0                     # bumped on every change (the event stream watches it)
        self._pending: deque[Job] = deque()
        self._ids = itertools.count(1)
        self._process: multiprocessing.process.BaseProcess | None = None
        self._running: Job | None = None
        self._lock = threading.Condition()
        self._closed = False
        self._context = multiprocessing.get_context("spawn")  # no forked copy of the server's threads
        self._thread = threading.Thread(target=self._loop, daemon=True, name="dreamvid-jobs")
        self._thread.start()

    # --------------------------------------------------------------------------------- the page's

    def submit(self, request: RenderRequest, preview: bool = False) -> Job:
        with self._lock:
            job = Job(f"j{next(self._ids)}", request, preview)
            self.jobs[job.id] = job
            self._enqueue(job)
            return job

    def stop(self, job_id: str) -> Job:
        """Stop a job: a waiting one leaves the queue, a running one is interrupted (resumable)."""
        with self._lock:
            job = self._job(job_id)
            if job.status is JobStatus.QUEUED:
                self._pending.remove(job)
                self._finish(job, JobStatus.STOPPED, "stopped before it started")
            elif job is self._running and self._process is not None and self._process.pid:
                job.message = "stopping..."
                self._changed()
                os.kill(self._process.pid, signal.SIGINT)
            return job

    def resume(self, job_id: str) -> Job:
        """Queue a stopped render again, continuing from its saved state."""
        with self._lock:
            job = self._job(job_id)
            if job.status is not JobStatus.STOPPED or job.preview:
                raise KeyError(f"job {job_id} is {job.status.value}: only a stopped render can be resumed")
            job.request = dataclasses.replace(job.request, resume=True)
            job.message, job.fps, job.eta, job._clock = "", None, None, None
            self._enqueue(job)
            return job

    @property
    def rendering(self) -> bool:
        """Whether a render is running now."""
        return self._running is not None

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [job.to_json() for job in self.jobs.values()]

    def close(self) -> None:
        """Stop the running job (its state is saved) and the queue."""
        with self._lock:
            self._closed = True
            self._pending.clear()
            process = self._process
            self._lock.notify_all()
        if process is not None and process.is_alive() and process.pid:
            os.kill(process.pid, signal.SIGINT)
            process.join(STOP_GRACE_S)
            if process.is_alive():
                process.kill()
        self._thread.join(STOP_GRACE_S)

    # ----------------------------------------------------------------------------------- internal

    def _job(self, job_id: str) -> Job:
        if job_id not in self.jobs:
            raise KeyError(f"no job {job_id}")
        return self.jobs[job_id]

    def _enqueue(self, job: Job) -> None:
        job.status = JobStatus.QUEUED
        self._pending.append(job)
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._lock.notify_all()

    def _finish(self, job: Job, status: JobStatus, message: str) -> None:
        job.status, job.message = status, message
        job.eta = 0.0 if status is JobStatus.DONE else None
        self._changed()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                job = self._pending.popleft()
                job.status, self._running = JobStatus.RUNNING, job
                events = self._context.Queue()
                self._process = self._context.Process(
                    target=worker.run, args=(worker.request_fields(job.request), str(self.workspace.root), events),
                    name=f"dreamvid-render-{job.id}")
                self._process.start()
                self._changed()
            self._watch(job, self._process, events)
            with self._lock:
                self._process, self._running = None, None
                self._changed()

    def _watch(self, job: Job, process: multiprocessing.process.BaseProcess, events: Any) -> None:
        """Apply the worker's events to `job` until the process ends."""
        ended = False
        while not ended:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                if not process.is_alive():
                    process.join()
                    with self._lock:
                        if job.status is JobStatus.RUNNING:
                            self._finish(job, JobStatus.FAILED, f"the render process ended (exit code {process.exitcode})")
                    return
                continue
            with self._lock:
                kind = event[0]
                if kind == "planned":
                    job.total = event[1]
                elif kind == "progress":
                    job.progress(event[1], event[2])
                elif kind == "warning":
                    job.warnings.append(event[1])
                else:
                    status = {"done": JobStatus.DONE, "stopped": JobStatus.STOPPED}.get(kind, JobStatus.FAILED)
                    if status is JobStatus.DONE:
                        job.done = job.total = max(job.done, job.total)
                        event = (kind, f"wrote {self.workspace.relative(self.workspace.root / event[1])}")
                    self._finish(job, status, event[1])
                    ended = True
                self._changed()
        process.join()
