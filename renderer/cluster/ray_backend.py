"""Running spans on Ray: one actor per worker holding its loaded model, a progress board, retries.

* ``connect(None, n)`` starts a private Ray instance on this machine with `n` CPUs (one
  single-threaded worker each, a 200 MB object store, no dashboard); ``connect("auto")`` or
  ``connect("ray://HOST:PORT")`` joins a running cluster, with a worker per GPU (else per CPU) unless
  `workers` says how many.
* A worker is an actor (:class:`renderer.cluster.worker.ModelCache` inside, so the network is loaded
  once per worker). Ray restarts an actor whose process dies (``max_restarts``) and runs the span it
  had again (``max_task_retries``), on whichever node has room; should an actor be lost for good, the
  driver starts another and hands it the span.
* Workers report frames to a small board actor (no CPU reserved); the driver polls it for progress.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import DreamvidError, InputError
from .progress import ProgressSnapshot, ProgressTracker
from .worker import ModelCache, SpanJob, SpanResult, run_span

#: Object store of a private Ray instance (bytes): finished spans pass through it.
OBJECT_STORE_BYTES = 200 * 2**20
#: How often an actor is restarted, and a span retried on it, before the driver replaces the actor.
RESTARTS = 3
#: Times the driver hands a span to a fresh actor after Ray gave up on one.
RESUBMITS = 2
POLL_S = 0.5
INSTALL_HINT = "install it with: pip install 'dreamvid[cluster]'"


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError("rendering on a cluster needs Ray, which is not installed", hint=INSTALL_HINT) from None
    return ray


class SpanWorker:
    """A Ray actor's body: renders spans with its model cache, reporting frames to the board."""

    def __init__(self, board: str, name: str, threads: int) -> None:
        import ray
        import torch

        torch.set_num_threads(threads)
        self.board, self.name = ray.get_actor(board), name
        self.models = ModelCache()

    def render(self, job: SpanJob) -> SpanResult:
        key = (job.render, job.span.index)
        pid = os.getpid()
        return run_span(job, self.models, self.name,
                        lambda frames: self.board.report.remote(self.name, key, job.label, frames, pid))


class ProgressBoard:
    """A Ray actor's body: the latest frame count of every span, as workers report them."""

    def __init__(self) -> None:
        self.reports: dict[tuple, tuple[str, str, int, int]] = {}

    def report(self, worker: str, key: tuple, label: str, frames: int, pid: int) -> None:
        self.reports[key] = (worker, label, frames, pid)

    def snapshot(self) -> dict[tuple, tuple[str, str, int, int]]:
        return dict(self.reports)


class RayExecutor:
    """Spans on Ray actors. Use as a context manager: leaving it ends the actors and, for a private
    instance, Ray itself (nothing is left running)."""

    def __init__(self, cluster: str | None, workers: int | None) -> None:
        self.ray = require_ray()
        ray = self.ray
        if cluster is None:
            self.workers = workers or 1
            # Ray turns token authentication on for a new local instance and says so on stderr: for a
            # private instance that this process starts and stops, there is nothing for the user to do.
            logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
            ray.init(num_cpus=self.workers, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
            gpus = 0
        else:
            try:
                ray.init(address=cluster, log_to_driver=False, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise InputError(f"cannot connect to the Ray cluster at {cluster}: {str(exc).splitlines()[0]}",
                                 hint="start it with `ray start --head` or give its ray://HOST:PORT") from None
            resources = ray.cluster_resources()
            gpus = int(resources.get("GPU", 0))
            self.workers = workers or gpus or max(1, int(resources.get("CPU", 1)))
        options = {"num_cpus": 1, "num_gpus": 1 if gpus else 0, "max_restarts": RESTARTS,
                   "max_task_retries": RESTARTS}
        self._worker_class = ray.remote(**options)(SpanWorker)
        # Named, so that workers find it by name (a handle as a constructor argument would not survive restarts).
        self._board_name = f"dreamvid-progress-{os.getpid()}-{id(self)}"
        self.board = ray.remote(num_cpus=0)(ProgressBoard).options(name=self._board_name).remote()
        self.actors = [self._actor(i) for i in range(self.workers)]
        self._spawned = self.workers

    def _actor(self, i: int) -> Any:
        return self._worker_class.remote(self._board_name, f"worker {i + 1}", 1)

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the actors and disconnect (a private instance shuts down with them)."""
        if self.ray.is_initialized():
            for actor in [*self.actors, self.board]:
                self.ray.kill(actor, no_restart=True)
            self.ray.shutdown()

    def run(self, jobs: list[SpanJob], done: Callable[[SpanResult], None], tracker: ProgressTracker,
            progress: Callable[[ProgressSnapshot], None] | None) -> None:
        """Hand jobs to idle actors until all are done; a span whose actor is lost for good goes to a
        fresh actor (at most RESUBMITS times)."""
        ray = self.ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

        queue, idle = deque(jobs), deque(self.actors)
        pending: dict[Any, tuple[SpanJob, Any]] = {}
        resubmits: dict[tuple[int, int], int] = {}
        while queue or pending:
            while queue and idle:
                job, actor = queue.popleft(), idle.popleft()
                pending[actor.render.remote(job)] = (job, actor)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for key, (worker, label, frames, pid) in ray.get(self.board.snapshot.remote()).items():
                tracker.report(worker, key, label, frames, pid)
            if progress:
                progress(tracker.snapshot())
            for ref in ready:
                job, actor = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    raise cause if isinstance(cause, DreamvidError) else exc
                except (ActorDiedError, ActorUnavailableError, RayActorError):
                    key = (job.render, job.span.index)
                    resubmits[key] = resubmits.get(key, 0) + 1
                    if resubmits[key] > RESUBMITS:
                        raise DreamvidError(f"{job.label} failed on {resubmits[key]} workers",
                                            hint="check the workers' logs, then run the same command with --resume")
                    self.actors.remove(actor)
                    fresh = self._actor(self._spawned)
                    self._spawned += 1
                    self.actors.append(fresh)
                    idle.append(fresh)
                    queue.appendleft(job)
                    continue
                idle.append(actor)
                tracker.report(result.worker, (job.render, job.span.index), job.label, result.frames)
                done(result)
                if progress:
                    progress(tracker.snapshot())
