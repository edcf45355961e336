"""Batches: several renders, each with its own input, presets and output, from one jobs file.

``jobs.toml`` is a list of ``[[job]]`` tables; each takes the options of ``dreamvid render``::

    [[job]]
    input = "intro.mp4"
    output = "intro.dream.mp4"
    preset = ["flow-dream", "mylook.toml"]   # one name or path, or layers
    set = ["dream.steps=2"]                   # --set KEY=VALUE overrides
    seconds = 10
    size = "640x360"

    [[job]]
    input = "noise"
    output = "zoom.mp4"
    frames = 240

Relative paths (input, output, audio, preset files) are taken from the jobs file's folder. Every job
is planned (:func:`renderer.plan.plan_render`) before the first starts, so a typo in job 5 fails
before job 1 has written anything. With ``resume``, a job whose output exists and has no unfinished
render beside it is done and skipped; the others continue or start.

Locally the jobs run one after the other (each resumable as any render is); on Ray
(:mod:`renderer.cluster`) they are spread over the workers, one job per worker at a time.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import parse_size
from .errors import DreamvidError, PresetError
from .plan import RenderPlan, RenderRequest, default_output, plan_render
from .sources import NOISE
from .workdir import WorkDir
from . import media

#: Job keys -> (RenderRequest field, expected types).
_KEYS: dict[str, tuple[str, tuple[type, ...]]] = {
    "input": ("input", (str,)), "output": ("output", (str,)), "preset": ("preset", (str, list)),
    "set": ("overrides", (list,)), "frames": ("frames", (int,)), "seconds": ("seconds", (int, float)),
    "start": ("start", (int, float)), "end": ("end", (int, float)), "size": ("size", (str,)),
    "scale": ("scale", (int, float)), "fps": ("fps", (int, float)), "audio": ("audio", (str,)),
    "no_audio": ("no_audio", (bool,)), "crf": ("crf", (int,)), "seed": ("seed", (int,)),
    "bpm": ("bpm", (int, float)), "device": ("device", (str,)), "preview": ("preview", (bool,)),
}


def load_jobs(path: Path, *, resume: bool = False, overwrite: bool = False) -> list[RenderRequest]:
    """The render requests of a jobs file, checked for form (keys, types, duplicate outputs).

    Raises:
        PresetError: an unreadable file, no jobs, an unknown key (with a suggestion) or a value of the
            wrong type, named by job number and key.
    """
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PresetError(f"{path}: cannot read the jobs ({str(exc).splitlines()[0]})",
                          hint="write a list of [[job]] tables, see README (batches)") from None
    extra = set(data) - {"job"}
    jobs = data.get("job")
    if extra or not isinstance(jobs, list) or not jobs:
        raise PresetError(f"{path}: expected [[job]] tables" + (f", found {', '.join(sorted(extra))}" if extra else ""),
                          hint="write each render as a [[job]] table with input = ... and output = ...")
    folder = path.parent
    requests, outputs = [], {}
    for number, job in enumerate(jobs, 1):
        request = _request(job, number, path, folder, resume, overwrite)
        out = Path(request.output or default_output(request.input, request.preview)).resolve()
        if out in outputs:
            raise PresetError(f"{path}: jobs {outputs[out]} and {number} both write {out}", hint="give each job its own output")
        outputs[out] = number
        requests.append(request)
    return requests


def _request(job: dict[str, Any], number: int, path: Path, folder: Path, resume: bool, overwrite: bool) -> RenderRequest:
    where = f"{path}: job {number}"
    for key, value in job.items():
        if key not in _KEYS:
            close = difflib.get_close_matches(key, _KEYS, n=1)
            raise PresetError(f"{where}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                              hint=f"use {', '.join(_KEYS)}")
        types = _KEYS[key][1]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise PresetError(f"{where}: {key} = {value!r} should be {' or '.join(t.__name__ for t in types)}")
    if "input" not in job:
        raise PresetError(f"{where}: no input", hint='add input = "clip.mp4" (or "noise")')
    fields: dict[str, Any] = {_KEYS[k][0]: v for k, v in job.items()}
    local = (lambda p: folder / Path(p).expanduser() if not Path(p).expanduser().is_absolute() else Path(p).expanduser())
    if fields["input"] != NOISE:
        fields["input"] = str(local(fields["input"]))
    if "audio" in fields:
        fields["audio"] = local(fields["audio"])
    if "output" in fields:  # keeps a trailing "/" (a folder of PNG frames), which Path would drop
        fields["output"] = str(local(fields["output"])) + ("/" if fields["output"].endswith("/") else "")
    presets = fields.get("preset", "fractal-zoom")
    presets = [presets] if isinstance(presets, str) else presets
    if not presets or not all(isinstance(p, str) for p in presets):
        raise PresetError(f"{where}: preset should be a name or a list of names")
    fields["preset"] = tuple(str(local(p)) if p.endswith(".toml") else p for p in presets)
    if not all(isinstance(s, str) for s in fields.get("overrides", [])):
        raise PresetError(f"{where}: set should be a list of \"KEY=VALUE\" strings")
    fields["overrides"] = tuple(fields.get("overrides", ()))
    if "size" in fields:
        fields["size"] = parse_size(fields["size"], f"{where}: size")
    return RenderRequest(**fields, resume=resume, overwrite=overwrite)


def is_done(request: RenderRequest) -> bool:
    """Whether a job has finished: its output exists and no unfinished render is beside it."""
    named = request.output or default_output(request.input, request.preview)
    output = Path(named)
    return output.exists() and not WorkDir(output, media.output_format(named)).exists()


def plan_jobs(requests: list[RenderRequest], path: Path) -> list[RenderPlan]:
    """Plan every job before any starts; an error names its job. With ``resume``, finished jobs are left out."""
    plans = []
    for number, request in enumerate(requests, 1):
        if request.resume and is_done(request):
            continue
        try:
            plans.append(plan_render(request))
        except DreamvidError as exc:
            raise type(exc)(f"{path}: job {number}: {exc.message}", hint=exc.hint) from exc
    return plans


def run_local(plans: list[RenderPlan], announce: Callable[[str], None] | None = None,
              progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Render the planned jobs one after the other in this process; `progress` counts frames over the
    whole batch. Returns the outputs."""
    from .pipeline import render

    total = sum(plan.source.n_frames for plan in plans)
    done, outputs = 0, []
    for number, plan in enumerate(plans, 1):
        if announce:
            announce(f"job {number}/{len(plans)}: {plan.source.path or 'noise'} -> {plan.output}")
        offset = done
        outputs.append(render(plan, progress and (lambda n, _total, offset=offset: progress(offset + n, total))))
        done += plan.source.n_frames
    return outputs

