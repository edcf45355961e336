"""Nothing lost, ever: `kill -9` at any moment, a disk that fills up mid-render, then `--resume`
gives exactly the frames of an uninterrupted render. Real processes, real signals, a real tiny file system."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ffmpeg_children
from renderer import media
from renderer.workdir import WorkDir

pytestmark = pytest.mark.slow

#: A render with several segments (48 frames each) that takes a few seconds: noise needs no decoder.
RENDER = [sys.executable, "-m", "renderer.cli", "render", "noise", "--size", "64x48", "--frames", "110", "--quiet",
          "--set", "dream.working_size=0", "--set", "dream.steps=1", "--set", "dream.octaves=1", "--set", "dream.first_steps=2",
          "--set", "dream.first_octaves=1", "--set", "dream.objective=mixed3a", "--set", "motion.zoom=1.3",
          "--set", "dream.variety=1", "--set", "color.detail=0.25", "--set", "color.match=0.25"]  # controllers' states resume too


def frames_of(path: Path) -> list[np.ndarray]:
    if path.is_dir():
        return [media.load_image(p) for p in media.list_frame_folder(path)]
    return list(media.read_video(path))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, list[np.ndarray]]:
    folder = tmp_path_factory.mktemp("whole")
    found = {}
    for name in ("frames/", "clip.mp4"):
        subprocess.run([*RENDER, "-o", str(folder / name)], check=True, capture_output=True)
        found[name] = frames_of(folder / name.rstrip("/"))
    return found


def _wait_for(predicate, timeout: float = 900.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError("the render did not get there in time")
        time.sleep(0.02)


@pytest.mark.parametrize("name", ["frames/", "clip.mp4"])
def test_kill_9_at_any_moment_then_resume_gives_the_same_frames(tmp_path, uninterrupted, name):
    """Killed five times at random moments (before, inside and between segments, during the join),
    each time resumed; the result is frame for frame the uninterrupted render."""
    out = tmp_path / name
    target = tmp_path / name.rstrip("/")
    work = WorkDir(target, media.output_format(out))
    rng = random.Random(7)
    kills = 0
    for attempt in range(5):
        process = subprocess.Popen([*RENDER, "-o", str(out), "--resume"], stderr=subprocess.PIPE, text=True)
        # Kill somewhere between the start of the loop and the end of the render.
        try:
            _wait_for(lambda: work.exists() or process.poll() is not None)
        except TimeoutError:
            pass
        time.sleep(rng.uniform(0.0, 2.5))
        if process.poll() is None:
            process.kill()
            kills += 1
        _, err = process.communicate(timeout=60)
        _wait_for(lambda: not ffmpeg_children(process.pid))
        if process.returncode == 0:
            break
        assert process.returncode == -signal.SIGKILL, err
    finished = subprocess.run([*RENDER, "-o", str(out), "--resume"], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert kills >= 2, "the render finished before it could be killed: make it longer"
    got, want = frames_of(target), uninterrupted[name]
    assert len(got) == len(want) == 110
    for index, (a, b) in enumerate(zip(got, want)):
        assert np.array_equal(a, b), f"frame {index} differs after {kills} kills"
    assert not work.exists()


@pytest.fixture
def tiny_disk(tmp_path) -> Path:
    """A real 3 MB file system (tmpfs, needs root: CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny file system needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_gives_one_line_and_a_resumable_render(tiny_disk, uninterrupted):
    """The disk fills up while the render runs (another program wrote a big file): one clear line, exit
    non-zero, nothing corrupt; with space freed, --resume completes with the uninterrupted frames."""
    out = tiny_disk / "frames"
    work = WorkDir(out, media.output_format(f"{out}/"))
    process = subprocess.Popen([*RENDER, "-o", f"{out}/"], stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: any(work.path.glob("segment_00000/*.png")))
    filler = tiny_disk / "filler"
    with open(filler, "wb") as f:  # take every remaining byte
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    _, err = process.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert process.returncode not in (0, -signal.SIGKILL) and len(lines) == 1, err
    assert "space" in lines[0] and "--resume" in lines[0] and "Traceback" not in err
    assert not out.exists() and not ffmpeg_children(process.pid)

    filler.unlink()
    resumed = subprocess.run([*RENDER, "-o", f"{out}/", "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    got = frames_of(out)
    assert len(got) == 110 and all(np.array_equal(a, b) for a, b in zip(got, uninterrupted["frames/"]))
