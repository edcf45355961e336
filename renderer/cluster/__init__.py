"""Render farms: a render split into spans over Ray workers, and batches of renders spread over them.

- :mod:`.spans`: how a render is split (warm-up, seam blend, keyframe-aligned boundaries);
- :mod:`.worker`: what a worker does with a span (model loaded once, frames back as bytes);
- :mod:`.seams`: the cross-fade at each seam of a flow-mode render;
- :mod:`.driver`: the work folder's record of finished spans (resume), the final join;
- :mod:`.ray_backend`: Ray actors, retries, the progress board (the only module importing Ray);
- :mod:`.progress`: progress over all workers and per worker.

Ray is optional (``pip install 'dreamvid[cluster]'``); everything but :mod:`.ray_backend` works without it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..plan import RenderPlan
from .driver import ClusterRender, LocalExecutor, run_renders, split, whole
from .progress import ProgressSnapshot, ProgressTracker, ProgressView
from .spans import Span, SpanPlan, plan_spans

__all__ = ["ClusterRender", "LocalExecutor", "ProgressSnapshot", "ProgressTracker", "ProgressView", "Span",
           "SpanPlan", "plan_spans", "render_on_cluster", "run_renders", "split", "whole"]


def render_on_cluster(plan: RenderPlan, cluster: str | None, workers: int | None, *, device: str = "auto",
                      announce: Callable[[str], None] | None = None,
                      progress: Callable[[ProgressSnapshot], None] | None = None) -> Path:
    """Render `plan` on Ray: a running cluster (`cluster` = ``auto`` or ``ray://HOST:PORT``) or, with
    `cluster` None, a private instance of `workers` workers on this machine. Prints (`announce`) how
    the render is split. Returns the output path.

    Raises:
        InputError: Ray is not installed, or the cluster cannot be reached.
        RenderInterrupted: Ctrl-C; the finished spans are kept for ``--resume``.
    """
    from .ray_backend import RayExecutor, require_ray

    require_ray()
    with RayExecutor(cluster, workers) as executor:
        render = split(plan, executor.workers, device)
        if announce:
            announce(render.describe(executor.workers))
        (output,) = run_renders([render], executor, progress, announce)
    return output
