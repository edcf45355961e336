"""Shared fixtures. The real inception5h weights are the ones the package ships (renderer/data)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from renderer import media
from renderer.frames import to_tensor

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
torch.set_num_threads(max(1, min(os.cpu_count() or 1, 4)))


@pytest.fixture(scope="session")
def inception():
    """The real inception5h network (the packaged weights), on the CPU."""
    from renderer.models import load_backbone

    return load_backbone("inception5h")


def sample_image(name: str, size: tuple[int, int] | None = None) -> torch.Tensor:
    """A shipped sample photo as (1,3,H,W) in [0,1]; `size` is (h, w)."""
    from renderer.dream.engine import resize

    image = to_tensor(media.load_image(SAMPLES / name))
    return resize(image, size) if size else image


@pytest.fixture
def chelsea_small() -> torch.Tensor:
    return sample_image("chelsea.jpg", (120, 180))


def ffmpeg(*args: str) -> None:
    """Run the bundled ffmpeg quietly (test media generation)."""
    subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def ffmpeg_children(parent: int | None = None) -> list[int]:
    """Pids of ffmpeg processes whose parent is `parent` (default: this process), zombies included."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if int(rest[1]) == parent and "ffmpeg" in comm:
            found.append(int(entry.name))
    return found


def audio_seconds(path: Path) -> float:
    """Duration of a file's audio stream, by decoding it."""
    return len(media.read_audio(path, sample_rate=48000)) / 48000


def x264_options(path: Path) -> str:
    """The settings libx264 wrote into a file's H.264 stream (its SEI message), e.g. ``"... psy=1 ..."``."""
    data = Path(path).read_bytes()
    start = data.find(b"options: ")
    assert start >= 0, f"{path} has no x264 settings in its stream"
    return data[start:data.find(b"\0", start)].decode("ascii", "replace")


def uint8_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def dreamvid(capsys, monkeypatch, *args: object) -> tuple[int, str, str]:
    """Run the CLI in-process as a user would; returns (exit code, stdout, stderr)."""
    from renderer.cli import main

    monkeypatch.setattr(sys, "argv", ["dreamvid", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err
