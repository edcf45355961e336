"""Writing files so that a reader never sees half of one: :func:`atomic_path`, and folder helpers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A hidden temporary name beside ``path`` (same extension, so ffmpeg and Pillow pick the
    format), renamed onto ``path`` if the block succeeds and removed if it fails."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove(path: Path) -> None:
    """Delete a file or folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (copy where links are impossible, e.g. across file systems)."""
    # A hard link keeps the segments intact (resume still works if finalizing fails) at no cost.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
