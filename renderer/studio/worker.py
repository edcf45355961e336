"""A render in its own process: the studio's server hands it a request and reads its events.

The process plans and runs the render with the same library calls as ``dreamvid render``
(:func:`renderer.plan.plan_render`, :func:`renderer.pipeline.render`), from the workspace folder, so
relative paths mean what they mean in the command the page shows. SIGINT stops it the way Ctrl-C
stops the CLI: the render saves its state and can be resumed.

Events put on the queue, as tuples: ``("planned", total_frames)``, ``("progress", done, total)``,
``("warning", text)``, then one of ``("done", output)``, ``("stopped", text)``, ``("failed", text)``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import warnings
from pathlib import Path
from typing import Any

from ..errors import DreamvidError
from ..plan import RenderRequest

_PATH_FIELDS = ("output", "audio")


def request_fields(request: RenderRequest) -> dict[str, Any]:
    """A request as plain values that cross a process boundary."""
    fields = dataclasses.asdict(request)
    for name in _PATH_FIELDS:
        fields[name] = None if fields[name] is None else str(fields[name])
    return fields


def request_from(fields: dict[str, Any]) -> RenderRequest:
    """The inverse of :func:`request_fields`."""
    values = dict(fields)
    for name in _PATH_FIELDS:
        values[name] = None if values[name] is None else Path(values[name])
    for name in ("overrides", "size"):
        values[name] = None if values[name] is None else tuple(values[name])
    values["overrides"] = values["overrides"] or ()
    if isinstance(values.get("preset"), list):  # layered presets
        values["preset"] = tuple(values["preset"])
    return RenderRequest(**values)


def run(fields: dict[str, Any], workspace: str, events: Any) -> None:
    """Process entry point: render `fields` (see :func:`request_fields`) from `workspace`, reporting to
    the `events` queue. Never raises: every outcome is an event."""
    from ..devices import keep_freed_memory
    from ..pipeline import RenderInterrupted, render
    from ..plan import plan_render

    # Stop is a SIGINT. A studio started in the background by a script (`nohup dreamvid studio &`) has
    # SIGINT ignored, and so had this process: Stop did nothing and the render ran to its end.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(workspace)
    keep_freed_memory()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *args, **kwargs: events.put(("warning", str(message)))
        try:
            plan = plan_render(request_from(fields))
            events.put(("planned", plan.source.n_frames))
            result = render(plan, lambda done, total: events.put(("progress", done, total)))
            events.put(("done", str(result)))
        except RenderInterrupted as exc:
            events.put(("stopped", str(exc)))
        except KeyboardInterrupt:
            events.put(("stopped", "stopped before the first frame"))
        except DreamvidError as exc:
            events.put(("failed", str(exc)))
        except Exception as exc:  # a bug: still one line for the page
            events.put(("failed", f"internal error: {type(exc).__name__}: {exc}"))
