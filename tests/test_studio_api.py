"""The studio's API: the security rules (token, origin, host, workspace paths, uploads), settings
checked at their key, presets saved only with consent, and a real preview frame."""

from __future__ import annotations

import io
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the studio extra is not installed: pip install -e '.[studio]'")
pytest.importorskip("httpx", reason="the API tests need httpx")

from fastapi.testclient import TestClient  # noqa: E402

from renderer.config import load_preset  # noqa: E402
from renderer.studio.app import create_app  # noqa: E402
from renderer.studio.security import Guard  # noqa: E402
from renderer.studio.settings import flatten  # noqa: E402
from renderer.studio.workspace import Workspace  # noqa: E402

from conftest import SAMPLES  # noqa: E402

HOST = "testserver"
ORIGIN = f"http://{HOST}"


def png_bytes(size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    shutil.copy(SAMPLES / "cat-pan.mp4", folder / "clip.mp4")
    (folder / "still.png").write_bytes(png_bytes())
    (tmp_path / "secret.png").write_bytes(png_bytes())
    return folder


@pytest.fixture
def studio(workspace: Path):
    guard = Guard({HOST})
    app = create_app(Workspace(workspace.resolve(), max_upload=64_000), guard, device="cpu")
    with TestClient(app) as client:
        client.headers.update({"X-Studio-Token": guard.token})
        client.token = guard.token
        yield client


def settings(values: dict | None = None, preset: str = "fractal-zoom", **extra) -> dict:
    base = flatten(load_preset(preset))
    return {"preset": preset, "values": {**base, **(values or {})}, "input": "clip.mp4", **extra}


# ------------------------------------------------------------------------------------------ token

def test_page_carries_the_token_and_refuses_framing(studio: TestClient) -> None:
    page = studio.get("/", headers={"X-Studio-Token": ""})
    assert page.status_code == 200
    assert f'content="{studio.token}"' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_api_needs_the_token(studio: TestClient, token: str | None) -> None:
    headers = {"X-Studio-Token": token} if token is not None else {}
    client_headers = studio.headers.copy()
    del studio.headers["X-Studio-Token"]
    try:
        assert studio.get("/api/state", headers=headers).status_code == 403
        assert studio.post("/api/presets", json={**settings(), "name": "x"}, headers=headers).status_code == 403
        assert studio.post("/api/render", json=settings(), headers=headers).status_code == 403
    finally:
        studio.headers = client_headers


def test_query_token_only_for_reading(studio: TestClient, workspace: Path) -> None:
    token = studio.headers.pop("X-Studio-Token")
    assert studio.get(f"/api/file?path=still.png&token={token}").status_code == 200
    response = studio.post(f"/api/presets?token={token}", json={**settings(), "name": "sneaky"})
    assert response.status_code == 403
    assert not (workspace / "sneaky.toml").exists()


# ------------------------------------------------------------------------------------ origin, host

@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Origin": f"{ORIGIN}.evil.example"}, {"Sec-Fetch-Site": "cross-site"}])
def test_foreign_pages_are_refused(studio: TestClient, workspace: Path, headers: dict) -> None:
    response = studio.post("/api/presets", json={**settings(), "name": "evil"}, headers=headers)
    assert response.status_code == 403
    assert not (workspace / "evil.toml").exists()


def test_own_origin_is_accepted(studio: TestClient) -> None:
    headers = {"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}
    assert studio.post("/api/check", json=settings(), headers=headers).status_code == 200


def test_other_host_names_are_refused(studio: TestClient) -> None:
    """A DNS-rebinding page reaches the port under its own name: refused even with the token."""
    assert studio.get("/api/state", headers={"Host": "evil.example"}).status_code == 403


# ------------------------------------------------------------------------------------------ paths

@pytest.mark.parametrize("path", ["../secret.png", "/etc/passwd", "sub/../../secret.png", ".hidden.png",
                                  "..\\secret.png", "link.png", "linked/secret.png"])
def test_paths_outside_the_workspace_are_refused(studio: TestClient, workspace: Path, path: str) -> None:
    (workspace / ".hidden.png").write_bytes(png_bytes())
    (workspace / "link.png").symlink_to(workspace.parent / "secret.png")
    (workspace / "linked").symlink_to(workspace.parent)
    response = studio.get("/api/file", params={"path": path})
    assert response.status_code in (400, 403), response.text
    response = studio.post("/api/input", json=settings(input=path))
    assert response.status_code in (400, 403), response.text


def test_files_inside_are_served_and_listed(studio: TestClient) -> None:
    assert studio.get("/api/file", params={"path": "still.png"}).content == png_bytes()
    files = {f["path"]: f["kind"] for f in studio.get("/api/state").json()["files"]}
    assert files == {"clip.mp4": "video", "still.png": "image"}


def test_audio_elsewhere_is_refused(studio: TestClient) -> None:
    assert studio.post("/api/render", json=settings(audio="../secret.png")).status_code == 403


# ----------------------------------------------------------------------------------------- uploads

def test_upload_is_checked_and_renamed(studio: TestClient, workspace: Path) -> None:
    response = studio.post("/api/upload", params={"name": "../../my photo.png"}, content=png_bytes())
    assert response.status_code == 200, response.text
    assert response.json() == {"path": "uploads/my_photo.png", "kind": "image"}
    again = studio.post("/api/upload", params={"name": "my photo.png"}, content=png_bytes())
    assert again.json()["path"] == "uploads/my_photo-2.png"  # nothing replaced
    assert (workspace / "uploads" / "my_photo.png").read_bytes() == png_bytes()


@pytest.mark.parametrize("name, content, status", [
    ("big.png", b"\x89PNG" + b"0" * 70_000, 413),         # over the limit
    ("fake.png", b"this is not an image", 415),            # content does not match
    ("fake.mp4", b"\x00" * 1000, 415),
    ("tool.sh", b"#!/bin/sh\nrm -rf /\n", 415),            # not media at all
    ("", png_bytes(), 415),
])
def test_bad_uploads_are_refused_and_leave_nothing(studio: TestClient, workspace: Path, name: str,
                                                   content: bytes, status: int) -> None:
    response = studio.post("/api/upload", params={"name": name}, content=content)
    assert response.status_code == status, response.text
    assert "error" in response.json()
    uploads = workspace / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_streamed_upload_over_the_limit_is_cut(studio: TestClient, workspace: Path) -> None:
    """No Content-Length to trust: the stream itself is counted."""
    chunks = (b"0" * 16_000 for _ in range(8))
    response = studio.post("/api/upload", params={"name": "big.mp4"}, content=chunks)
    assert response.status_code == 413
    assert list((workspace / "uploads").iterdir()) == []


# ---------------------------------------------------------------------------------------- settings

def test_schedule_errors_are_reported_at_their_key(studio: TestClient) -> None:
    body = settings({"motion.zoom": "0:(1), 2s:(1.5", "dream.steps": 4})
    result = studio.post("/api/check", json=body).json()
    assert list(result["errors"]) == ["motion.zoom"]
    assert "missing" in result["errors"]["motion.zoom"]
    unsafe = studio.post("/api/check", json=settings({"motion.angle": "__import__('os').system('true')"})).json()
    assert list(unsafe["errors"]) == ["motion.angle"]
    out_of_range = studio.post("/api/check", json=settings({"motion.mix": 3})).json()
    assert list(out_of_range["errors"]) == ["motion.mix"]
    assert studio.post("/api/preview", json=settings({"motion.zoom": "1 +"})).status_code == 422


def test_command_reproduces_the_settings(studio: TestClient) -> None:
    values = {"motion.zoom": "0:(1), 2s:(1.5 + 0.1*sin(t))", "dream.objective": "mixed5a", "dream.steps": 6,
              "color.match": 0.5, "description": "my look"}
    result = studio.post("/api/check", json=settings(values)).json()
    assert result["errors"] == {}
    assert result["command"].startswith("dreamvid render clip.mp4 --preset fractal-zoom --set ")
    assert flatten(load_preset("fractal-zoom", result["overrides"])) == settings(values)["values"]


def test_preset_save_asks_before_replacing(studio: TestClient, workspace: Path) -> None:
    first = studio.post("/api/presets", json={**settings({"dream.steps": 7}), "name": "my-look"})
    assert first.status_code == 200 and first.json()["path"] == "my-look.toml"
    assert load_preset(str(workspace / "my-look.toml")).dream.steps.constant == 7
    second = studio.post("/api/presets", json={**settings({"dream.steps": 8}), "name": "my-look"})
    assert second.status_code == 409 and second.json()["exists"]
    assert load_preset(str(workspace / "my-look.toml")).dream.steps.constant == 7
    third = studio.post("/api/presets", json={**settings({"dream.steps": 8}), "name": "my-look", "replace": True})
    assert third.status_code == 200
    assert load_preset(str(workspace / "my-look.toml")).dream.steps.constant == 8
    assert "my-look.toml" in studio.get("/api/state").json()["presets"]
    for bad in ("../evil", "/tmp/evil", ".hidden", "a/b"):
        assert studio.post("/api/presets", json={**settings(), "name": bad}).status_code == 422


def test_broken_settings_save_nothing(studio: TestClient, workspace: Path) -> None:
    response = studio.post("/api/presets", json={**settings({"dream.octaves": "2 +"}), "name": "broken"})
    assert response.status_code == 422
    assert "dream.octaves" in response.json()["detail"]["errors"]
    assert not (workspace / "broken.toml").exists()


def test_unknown_preset_is_refused(studio: TestClient) -> None:
    assert studio.get("/api/preset", params={"name": "../../etc/passwd"}).status_code in (403, 404)
    assert studio.get("/api/preset", params={"name": "nope"}).status_code == 404


# ----------------------------------------------------------------------------------------- preview

@pytest.fixture
def studio_threads():
    """Torch threads as the studio's server sets them (on a busy 2-core CPU, 1: see PREVIEW_THREADS)."""
    import torch

    from renderer.studio.preview import PREVIEW_THREADS

    before = torch.get_num_threads()
    torch.set_num_threads(PREVIEW_THREADS)
    yield
    torch.set_num_threads(before)


def test_preview_is_a_dreamed_frame(studio: TestClient, studio_threads: None) -> None:
    cheap = {"dream.objective": "mixed3a", "dream.first_steps": 2, "dream.first_octaves": 2}
    body = {**settings(cheap), "frame": 40}
    response = studio.post("/api/preview", json=body)
    assert response.status_code == 200, response.text
    dreamed = np.asarray(Image.open(io.BytesIO(response.content)))
    source = np.asarray(Image.open(io.BytesIO(studio.post("/api/source-frame", json=body).content)))
    assert dreamed.shape == source.shape == (180, 320, 3)
    # It dreamed (the same frame not dreamed differs by 0): at the presets' 360-px working size the dream
    # of a 320x180 frame is made at 640x360 and brought down, so its finest strokes average out (2.2).
    assert np.abs(dreamed.astype(float) - source).mean() > 1.5


def test_unknown_layer_is_reported_at_the_objective(studio: TestClient) -> None:
    response = studio.post("/api/preview", json={**settings({"dream.objective": "mixed9z"}), "frame": 0})
    assert response.status_code == 422
    assert "dream.objective" in response.json()["detail"]["errors"]


def test_curves_follow_the_schedule_and_the_soundtrack(studio: TestClient) -> None:
    body = settings({"motion.zoom": "0:(1), 48:(2)"})
    data = studio.post("/api/curves", json=body).json()
    assert list(data["values"]) == ["motion.zoom"]
    assert data["values"]["motion.zoom"][0] == 1 and data["values"]["motion.zoom"][-1] == 2
    assert data["n_frames"] == 96 and len(data["waveform"]) > 100


# ----------------------------------------------------------------------------------------- renders

@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in this process for the test, as in a background job started by a script."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def wait_job(client: TestClient, job_id: str, done: Callable[[dict], bool], timeout: float = 180.0) -> dict:
    """Poll the studio's job list until `done(job)` holds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = next(j for j in client.get("/api/state").json()["jobs"] if j["id"] == job_id)
        if done(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not get there: {job}")


@pytest.mark.slow
def test_render_stops_resumably_and_resumes(studio: TestClient, workspace: Path, sigint_ignored: None) -> None:
    """Stop = SIGINT to the worker: the render saves its state; resume finishes it, in a worker process.
    With SIGINT ignored in the studio, as when a script starts it in the background (the worker
    inherited that, and Stop did nothing until it restored the default)."""
    body = settings({"output.size": "64x36", "dream.first_steps": 1, "dream.first_octaves": 1, "dream.steps": 1,
                     "dream.octaves": 1}, frames=60)
    job = studio.post("/api/render", json=body).json()
    assert job["status"] == "queued" and job["output"] == "renders/clip.dream.mp4"
    assert "--frames 60" in job["command"] and "-o renders/clip.dream.mp4" in job["command"]
    second = studio.post("/api/render", json=body).json()          # one at a time: the second waits
    assert second["output"] == "renders/clip.dream-2.mp4"
    wait_job(studio, job["id"], lambda j: j["done"] >= 3)
    assert next(j for j in studio.get("/api/state").json()["jobs"] if j["id"] == second["id"])["status"] == "queued"
    assert studio.post(f"/api/jobs/{second['id']}/stop").json()["status"] == "stopped"
    studio.post(f"/api/jobs/{job['id']}/stop")
    stopped = wait_job(studio, job["id"], lambda j: j["status"] != "running")
    assert stopped["status"] == "stopped" and stopped["resumable"], stopped
    assert (workspace / "renders" / "clip.dream.mp4.dreamvid-partial").is_dir()
    studio.post(f"/api/jobs/{job['id']}/resume")
    finished = wait_job(studio, job["id"], lambda j: j["status"] in ("done", "failed"))
    assert finished["status"] == "done", finished
    assert finished["done"] == finished["total"] == 60
    assert (workspace / "renders" / "clip.dream.mp4").is_file()
    assert not (workspace / "renders" / "clip.dream.mp4.dreamvid-partial").exists()
