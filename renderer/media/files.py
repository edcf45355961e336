"""Writing files so that a reader never sees half of one: :func:`atomic_path`, and folder helpers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .ffmpeg import StrPath


@contextmanager
def atomic_path(path: StrPath) -> Iterator[Path]:
    """Write ``path`` (a file or a folder) under a hidden temporary name beside it, renamed onto
    ``path`` when the block succeeds and removed when it fails, so nobody ever sees half of it.

    The temporary name keeps the extension (``.out.tmp.mp4``), so ffmpeg and Pillow pick the format
    from it. A file replaces an existing file in one rename. A folder replaces an existing one by
    three: the old one is moved aside, the new one renamed in, the old one deleted (and put back if
    the second rename fails). Whether replacing is allowed is the caller's decision::

        with atomic_path(output) as tmp:
            tmp.write_text(text)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    remove(tmp)  # left by a run that was killed
    try:
        yield tmp
        if tmp.is_dir() and path.exists():
            _swap_folder(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        remove(tmp)


def _swap_folder(new: Path, path: Path) -> None:
    old = path.with_name(f".{path.name}.old")
    remove(old)
    os.replace(path, old)
    try:
        os.replace(new, path)
    except OSError:
        os.replace(old, path)  # the swap failed half-way: put the old one back
        raise
    remove(old)


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
