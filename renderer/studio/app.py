"""The studio's web application: the page, and a JSON API over the library.

Every ``/api`` route depends on the :class:`~renderer.studio.security.Guard` (host, origin, token) and
reads paths only through the :class:`~renderer.studio.workspace.Workspace`. Settings are checked by
:mod:`renderer.studio.settings` (the CLI's preset loading), previews dreamed by
:class:`~renderer.studio.preview.Previewer`, renders run by :class:`~renderer.studio.jobs.JobQueue`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from .. import media
from ..config import dump_toml, preset_names
from ..errors import DreamvidError
from ..models import RANDOM_WEIGHTS, available_models, load_backbone
from ..plan import RenderRequest
from ..sources import NOISE
from ..workdir import PARTIAL_SUFFIX
from .curves import curves
from .jobs import JobQueue
from .preview import InputSpec, PreviewCancelled, Previewer
from .security import Guard
from .settings import Checked, check, flatten, render_command, schema
from .workspace import PLAYABLE, RENDERS, FileKind, Workspace, WorkspaceError

STATIC = resources.files("renderer.studio") / "static"
#: Output formats the page offers for renders.
FORMATS = ("mp4", "webm", "gif", "mov")
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                               "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


class SettingsBody(BaseModel):
    """The page's settings: a preset (a shipped name or a workspace .toml), the page's values of every
    setting, and the input, soundtrack and length."""

    preset: str = "fractal-zoom"
    values: dict[str, Any] = Field(default_factory=dict)
    input: str = NOISE
    audio: str | None = None
    frames: int | None = Field(default=None, ge=1, le=100_000)


class PreviewBody(SettingsBody):
    frame: int = Field(default=0, ge=0)


class RenderBody(SettingsBody):
    format: str = "mp4"
    preview: bool = False


class PresetBody(SettingsBody):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    replace: bool = False


def create_app(workspace: Workspace, guard: Guard, device: str = "auto") -> FastAPI:
    """The studio for `workspace`, guarded by `guard`."""
    jobs = JobQueue(workspace)
    previewer = Previewer(workspace, device, rendering=lambda: jobs.rendering)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.close()
        previewer.close()

    app = FastAPI(title="dreamvid studio", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.jobs, app.state.previewer = jobs, previewer
    api = APIRouter(prefix="/api", dependencies=[Depends(guard)])

    @app.exception_handler(DreamvidError)
    async def _dreamvid_error(_: Request, exc: DreamvidError) -> JSONResponse:
        status = exc.status if isinstance(exc, WorkspaceError) else 422
        return JSONResponse({"error": str(exc)}, status_code=status, headers=_HEADERS)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        page = (STATIC / "index.html").read_text().replace("{{TOKEN}}", guard.token)
        return HTMLResponse(page.replace("{{WORKSPACE}}", _html_escape(workspace.root.name)), headers=_HEADERS)

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    # ------------------------------------------------------------------------------ workspace, presets

    def preset_ref(name: str) -> tuple[str, str]:
        """(what load_preset reads in this process, what the command and the worker read)."""
        if name.endswith(".toml"):
            return str(workspace.resolve(name)), name
        if name not in preset_names():
            raise HTTPException(404, f"unknown preset {name!r}")
        return name, name

    def checked(body: SettingsBody) -> Checked:
        result = check(preset_ref(body.preset)[0], body.values)
        if result.preset is None:
            raise _Invalid(result.errors)
        return result

    def spec(body: SettingsBody) -> InputSpec:
        for path in (body.input, body.audio):
            if path not in (None, NOISE):
                workspace.resolve(path)
        return InputSpec(body.input, body.audio, body.frames)

    @api.get("/state")
    def state() -> dict[str, Any]:
        files = [{"path": path, "kind": kind.value} for path, kind in workspace.files()]
        presets = list(preset_names()) + [f["path"] for f in files if f["kind"] == FileKind.PRESET.value
                                          and not f["path"].startswith(RENDERS + "/")]
        return {"workspace": workspace.root.name, "files": files, "presets": presets, "schema": schema(),
                "models": list(available_models()), "formats": FORMATS, "jobs": jobs.snapshot()}

    @api.get("/preset")
    def preset(name: str) -> dict[str, Any]:
        result = check(preset_ref(name)[0], {})
        if result.preset is None:
            raise _Invalid(result.errors)
        return {"name": name, "values": flatten(result.preset)}

    @api.get("/model")
    def model(name: str) -> dict[str, Any]:
        if name not in available_models():
            raise HTTPException(404, f"unknown model {name!r}")
        net = load_backbone(name, weights=RANDOM_WEIGHTS)  # names only
        layers = [n for n in net.layer_names() if "_pre_relu" not in n]
        return {"name": name, "layers": layers, "default_layer": net.default_layer,
                "classes": list(net.class_names())}

    @api.post("/check")
    def check_settings(body: SettingsBody) -> dict[str, Any]:
        result = check(preset_ref(body.preset)[0], body.values)
        request = _request(body, preset_ref(body.preset)[1], result.overrides, None, False)
        return {"errors": result.errors, "overrides": result.overrides, "command": render_command(request)}

    @api.post("/presets")
    def save_preset(body: PresetBody) -> dict[str, Any]:
        result = checked(body)
        path = workspace.resolve(f"{body.name}.toml", must_exist=False)
        if path.exists() and not body.replace:
            return JSONResponse({"exists": True, "path": workspace.relative(path),
                                 "error": f"{path.name} exists: replace it?"}, status_code=409, headers=_HEADERS)
        with media.atomic_path(path) as tmp:
            tmp.write_text(dump_toml(result.preset, [f"dreamvid preset saved by the studio (based on {body.preset})",
                                                     f"use it with: dreamvid render INPUT --preset {path.name}"]))
        return {"path": workspace.relative(path)}

    # ------------------------------------------------------------------------------ preview, curves

    @api.post("/input")
    async def input_info(body: SettingsBody) -> dict[str, Any]:
        result = checked(body)
        source = await asyncio.to_thread(previewer.source, spec(body), result.preset)
        return {"kind": source.kind.value, "width": source.width, "height": source.height, "fps": source.fps,
                "n_frames": source.n_frames, "seconds": source.seconds, "audio": source.audio is not None}

    @api.post("/preview")
    async def preview(body: PreviewBody) -> Response:
        result = checked(body)
        try:
            image = await previewer.preview(spec(body), result.preset, body.frame)
        except PreviewCancelled:
            return JSONResponse({"stale": True}, status_code=409, headers=_HEADERS)
        except DreamvidError as exc:
            raise _Invalid({_error_key(str(exc)): str(exc)}) from None
        return Response(image, media_type="image/jpeg", headers=_HEADERS)

    @api.post("/source-frame")
    async def source_frame(body: PreviewBody) -> Response:
        image = await previewer.source_image(spec(body), checked(body).preset, body.frame)
        return Response(image, media_type="image/jpeg", headers=_HEADERS)

    @api.post("/curves")
    async def plot(body: SettingsBody) -> dict[str, Any]:
        result = checked(body)

        def make() -> dict[str, Any]:
            source, timeline, features = previewer.timeline(spec(body), result.preset)
            return curves(source, timeline, features)
        try:
            return await asyncio.to_thread(make)
        except DreamvidError as exc:
            raise _Invalid({_error_key(str(exc)): str(exc)}) from None

    # ------------------------------------------------------------------------------------- renders

    @api.post("/render")
    def render(body: RenderBody) -> dict[str, Any]:
        result = checked(body)
        spec(body)
        if body.format not in FORMATS:
            raise HTTPException(422, f"unknown format {body.format!r}: choose one of {', '.join(FORMATS)}")
        output = _output_path(workspace, jobs, body)
        request = _request(body, preset_ref(body.preset)[1], result.overrides, output, body.preview)
        return jobs.submit(request, preview=body.preview).to_json()

    @api.post("/jobs/{job_id}/stop")
    def stop(job_id: str) -> dict[str, Any]:
        return _job_call(jobs.stop, job_id)

    @api.post("/jobs/{job_id}/resume")
    def resume(job_id: str) -> dict[str, Any]:
        return _job_call(jobs.resume, job_id)

    @api.get("/events")
    async def events(request: Request) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            seen = -1
            while not await request.is_disconnected():
                if jobs.version != seen:
                    seen = jobs.version
                    yield f"data: {json.dumps(jobs.snapshot())}\n\n"
                await asyncio.sleep(0.25)
        return StreamingResponse(stream(), media_type="text/event-stream", headers=_HEADERS)

    # --------------------------------------------------------------------------------------- files

    @api.get("/file")
    def file(path: str) -> FileResponse:
        resolved = workspace.resolve(path)
        if not resolved.is_file() or (resolved.suffix.lower() not in PLAYABLE | media.IMAGE_EXTENSIONS
                                      and resolved.suffix.lower() not in (".toml", ".wav", ".mp3", ".flac", ".ogg")):
            raise WorkspaceError(f"{path} is not a media file the studio serves", status=404)
        return FileResponse(resolved, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    @api.post("/upload")
    async def upload(request: Request, name: str) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > workspace.max_upload:
            raise WorkspaceError(f"{name} is larger than the upload limit of {workspace.max_upload / 1e6:g} MB",
                                 hint="copy large files into the workspace folder instead", status=413)
        path, kind = await workspace.save_upload(name, request.stream())
        return {"path": path, "kind": kind.value}

    app.include_router(api)
    return app


class _Invalid(HTTPException):
    """Settings the library refuses: 422 with the problems by key."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(422, {"errors": errors})


def _error_key(message: str) -> str:
    """The setting a library error names first (objective errors belong to dream.objective)."""
    head = message.partition(":")[0].strip()
    if "." in head and " " not in head:
        return head
    lowered = message.lower()
    return "dream.objective" if any(w in lowered for w in ("layer", "objective", "class", "channel")) else ""


def _request(body: SettingsBody, preset: str, overrides: list[str], output: Path | None, preview: bool) -> RenderRequest:
    return RenderRequest(input=body.input, output=output, preset=preset, overrides=tuple(overrides),
                         frames=body.frames, audio=None if body.audio is None else Path(body.audio),
                         preview=preview, overwrite=preview)


def _output_path(workspace: Workspace, jobs: JobQueue, body: RenderBody) -> Path:
    """renders/STEM.dream.EXT (previews: STEM.preview.mp4, replaced each time), never a name that an
    existing file, an unfinished render or a queued job already uses."""
    folder = workspace.folder(RENDERS)
    stem = "noise" if body.input == NOISE else Path(body.input).stem
    if body.preview:
        return Path(RENDERS) / f"{stem}.preview.mp4"
    taken = {job.output for job in jobs.jobs.values()}
    n = 1
    while True:
        name = f"{stem}.dream.{body.format}" if n == 1 else f"{stem}.dream-{n}.{body.format}"
        candidate = folder / name
        used = (candidate, candidate.with_suffix(".toml"), candidate.with_name(name + PARTIAL_SUFFIX))
        if str(Path(RENDERS) / name) not in taken and not any(p.exists() for p in used):
            return Path(RENDERS) / name
        n += 1


def _job_call(action: Any, job_id: str) -> dict[str, Any]:
    try:
        return action(job_id).to_json()
    except KeyError as exc:
        raise HTTPException(404 if "no job" in str(exc) else 409, str(exc.args[0])) from None


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
