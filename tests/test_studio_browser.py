"""The studio in a real browser (Debian's chromium driven by Playwright), against a real server
started by ``dreamvid studio``: choose a clip, change the layer and see the preview change, type a
broken schedule and see the error at its key, render a short clip to 100 %, play it, save a preset.

Set ``STUDIO_SCREENSHOTS=folder`` to keep screenshots (a laptop window and a narrow one).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytest.importorskip("fastapi", reason="the studio extra is not installed: pip install -e '.[studio]'")

RENDER_TIMEOUT_MS = 240_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`dreamvid studio` on a free port in a workspace holding the sample clip; yields (url, workspace)."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    shutil.copy(SAMPLES / "cat-pan.mp4", workspace / "cat-pan.mp4")
    process = subprocess.Popen([sys.executable, "-m", "renderer.cli", "studio", str(workspace), "--no-browser"],
                               cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, f"the studio did not start: {line}{process.stderr.read() if process.poll() is not None else ''}"
        yield match[0], workspace
    finally:
        process.terminate()
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def preview_digest(page) -> str:
    """A digest of the preview image's bytes (the image the page shows now)."""
    return page.evaluate("""async () => {
        const bytes = new Uint8Array(await (await fetch(document.querySelector('#preview').src)).arrayBuffer());
        let h = 0; for (const b of bytes) h = (h * 31 + b) >>> 0; return bytes.length + ':' + h; }""")


def wait_preview_after(page, seq: str, timeout: float = 60_000) -> str:
    page.wait_for_function(f"document.querySelector('#preview').dataset.seq > {seq}", timeout=timeout)
    return page.eval_on_selector("#preview", "img => img.dataset.seq")


def test_studio_in_a_browser(server: tuple[str, Path]) -> None:
    url, workspace = server
    shots = os.environ.get("STUDIO_SCREENSHOTS")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            # bypass_csp: Playwright's waits evaluate script, which the studio's policy forbids.
            context = browser.new_context(bypass_csp=True, viewport={"width": 1366, "height": 800})
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)

            # choose the clip: a first preview arrives
            page.wait_for_selector("#input option[value='cat-pan.mp4']", state="attached")
            page.select_option("#input", "cat-pan.mp4")
            page.wait_for_function("document.querySelector('#input-info').textContent.includes('96 frames')")
            seq = wait_preview_after(page, "0")
            page.wait_for_function("!document.querySelector('#spinner').offsetParent || document.querySelector('#spinner').hidden")
            first = preview_digest(page)
            if shots:
                page.screenshot(path=f"{shots}/studio-laptop.png")

            # change the layer: the preview changes
            page.select_option("#layer", "mixed3a")
            seq = wait_preview_after(page, seq)
            assert preview_digest(page) != first
            assert page.input_value("#objective") == "mixed3a"
            assert "dream.objective=mixed3a" in page.text_content("#command")

            # a broken schedule: the error shows at its key, and goes when fixed
            zoom = page.locator(".field[data-key='motion.zoom']")
            zoom.locator("button.toggle").click()
            zoom.locator("textarea").fill("0:(1), 2s:(1.5")
            error = zoom.locator(".error")
            error.wait_for(state="visible")
            assert "motion.zoom" in error.text_content() and "missing" in error.text_content()
            zoom.locator("textarea").fill("0:(1), 2s:(1.5)")
            error.wait_for(state="hidden")
            page.wait_for_function("document.querySelector('#legend').textContent.includes('motion.zoom')")

            # a short, small render reaches 100 % and plays
            page.fill("#frames", "3")
            page.dispatch_event("#frames", "change")
            page.locator("details.group > summary", has_text="output").click()
            size = page.locator(".field[data-key='output.size'] input")
            size.fill("160x90")
            size.dispatch_event("change")
            page.wait_for_function("document.querySelector('#command').textContent.includes('--frames 3')")
            page.click("#render")
            job = page.locator("li.job").first
            page.wait_for_selector("li.job[data-percent='100'] .status.done", timeout=RENDER_TIMEOUT_MS)
            assert "3/3 frames" in job.text_content()
            assert (workspace / "renders" / "cat-pan.dream.mp4").is_file()
            assert (workspace / "renders" / "cat-pan.dream.toml").is_file()
            job.locator("button", has_text="play").click()
            page.wait_for_function("""() => { const v = document.querySelector('#player');
                return !v.hidden && v.readyState >= 2 && !v.error && v.duration > 0; }""", timeout=30_000)
            assert page.locator("#renders li", has_text="cat-pan.dream.mp4").count() == 1

            # save a preset; saving again asks before replacing
            page.fill("#preset-name", "cat-look")
            page.click("#save-preset")
            page.wait_for_function("document.querySelector('#notice').textContent.includes('saved cat-look.toml')")
            assert "mixed3a" in (workspace / "cat-look.toml").read_text()
            page.click("#save-preset")
            page.locator("#notice button", has_text="Replace").click()
            page.wait_for_function("document.querySelector('#notice').textContent.includes('saved cat-look.toml')")
            assert page.locator("#preset option[value='cat-look.toml']").count() == 1

            if shots:
                page.screenshot(path=f"{shots}/studio-laptop-rendered.png")
                page.set_viewport_size({"width": 420, "height": 900})
                page.screenshot(path=f"{shots}/studio-narrow.png", full_page=True)
            assert errors == []
        finally:
            browser.close()
