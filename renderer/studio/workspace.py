"""The studio's workspace: the one folder whose files the studio lists, serves and writes.

Every path that comes from the page is relative to the workspace and goes through
:meth:`Workspace.resolve`: absolute paths, ``..``, hidden names and symlinks that lead outside are
refused. Uploads are streamed to a temporary name, limited in size, checked by content (probed as the
renderer would open them) and only then given their final, non-clobbering name.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath

from .. import media
from ..errors import DreamvidError, InputError
from ..media.probe import header

#: Where renders and preview clips go, relative to the workspace.
RENDERS = "renders"
#: Where uploads go, relative to the workspace.
UPLOADS = "uploads"
#: Largest upload accepted by default (bytes).
MAX_UPLOAD = 1 << 30

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v", ".gif"})
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".opus"})
PLAYABLE = frozenset({".mp4", ".webm", ".gif", ".mov"})
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class FileKind(Enum):
    """What a workspace file is to the studio."""

    VIDEO = "video"
    IMAGE = "image"
    AUDIO = "audio"
    PRESET = "preset"


class WorkspaceError(DreamvidError):
    """A path the page may not use (outside the workspace, hidden, missing) or a refused upload;
    ``status`` is the HTTP status the server answers with."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, status: int = 403) -> None:
        super().__init__(message, hint)
        self.status = status


def kind_of(path: Path) -> FileKind | None:
    """The kind of a file by its extension (content is checked separately, on upload and use)."""
    suffix = path.suffix.lower()
    if suffix in media.IMAGE_EXTENSIONS:
        return FileKind.IMAGE
    if suffix in VIDEO_EXTENSIONS:
        return FileKind.VIDEO
    if suffix in AUDIO_EXTENSIONS:
        return FileKind.AUDIO
    if suffix == ".toml":
        return FileKind.PRESET
    return None


@dataclass(frozen=True)
class Workspace:
    """A folder the studio works in. ``root`` is resolved (symlinks followed) once."""

    root: Path
    max_upload: int = MAX_UPLOAD

    @classmethod
    def open(cls, folder: str | Path, max_upload: int = MAX_UPLOAD) -> Workspace:
        root = Path(folder).expanduser().resolve()
        if not root.is_dir():
            raise InputError(f"workspace {folder} is not a folder", hint="give dreamvid studio an existing folder")
        return cls(root, max_upload)

    # ---------------------------------------------------------------------------------------- paths

    def resolve(self, relative: str, *, must_exist: bool = True) -> Path:
        """The absolute path of `relative` (a path from the page), refusing anything that is not
        inside the workspace: absolute paths, ``..``, hidden parts, symlinks that leave it."""
        if not relative or "\x00" in relative or "\\" in relative:
            raise WorkspaceError(f"bad path {relative!r}", status=400)
        pure = PurePosixPath(relative)
        if pure.is_absolute() or any(part in ("..", "") or part.startswith(".") for part in pure.parts):
            raise WorkspaceError(f"{relative!r} is not a path inside the workspace",
                                 hint="use a path relative to the workspace, without '..' or hidden names")
        path = (self.root / pure).resolve()
        if not path.is_relative_to(self.root):
            raise WorkspaceError(f"{relative!r} leads outside the workspace (a symlink?)")
        if must_exist and not path.exists():
            raise WorkspaceError(f"no such file in the workspace: {relative}", status=404)
        return path

    def relative(self, path: Path) -> str:
        """`path` (inside the workspace) as the page names it: relative, with forward slashes."""
        return path.resolve().relative_to(self.root).as_posix()

    def folder(self, name: str) -> Path:
        """A studio folder (renders, uploads) inside the workspace, created when missing."""
        path = self.resolve(name, must_exist=False)
        path.mkdir(exist_ok=True)
        return path

    # -------------------------------------------------------------------------------------- listing

    def files(self, depth: int = 2) -> list[tuple[str, FileKind]]:
        """Media and preset files up to `depth` folders deep (hidden ones and partial renders skipped)."""
        found: list[tuple[str, FileKind]] = []
        self._walk(self.root, depth, found)
        return sorted(found)

    def _walk(self, folder: Path, depth: int, found: list[tuple[str, FileKind]]) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(".") or entry.name.endswith(".dreamvid-partial"):
                continue
            if not entry.resolve().is_relative_to(self.root):
                continue  # a symlink that leaves the workspace
            if entry.is_dir():
                if depth > 0:
                    self._walk(entry, depth - 1, found)
            elif (kind := kind_of(entry)) is not None and ".partial." not in entry.name:
                found.append((self.relative(entry), kind))

    # -------------------------------------------------------------------------------------- uploads

    def free_name(self, folder: Path, name: str) -> Path:
        """`folder/name`, or `folder/stem-2.ext`, ... : a name that replaces nothing."""
        candidate, n = folder / name, 1
        stem, suffix = Path(name).stem, Path(name).suffix
        while candidate.exists():
            n += 1
            candidate = folder / f"{stem}-{n}{suffix}"
        return candidate

    async def save_upload(self, filename: str, chunks: AsyncIterator[bytes]) -> tuple[str, FileKind]:
        """Write an upload into ``uploads/`` under a safe, free name; returns (relative path, kind).

        Refused: unknown extensions, more than ``max_upload`` bytes, and files that do not open as
        what their name says (an image that does not decode, a video or audio file ffmpeg cannot read).
        """
        name = _SAFE_NAME.sub("_", Path(filename or "").name).lstrip("._")[:120]
        kind = kind_of(Path(name))
        if not name or kind not in (FileKind.VIDEO, FileKind.IMAGE, FileKind.AUDIO):
            raise WorkspaceError(f"cannot upload {filename!r}: not a video, image or audio file",
                                 hint="upload .mp4 .mov .webm .gif, .png .jpg, or .wav .mp3 .flac files", status=415)
        folder = self.folder(UPLOADS)
        part = folder / f".upload-{os.getpid()}-{id(chunks)}{Path(name).suffix.lower()}"
        size = 0
        try:
            with open(part, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_upload:
                        raise WorkspaceError(f"{name} is larger than the upload limit of {self.max_upload / 1e6:g} MB",
                                             hint="copy large files into the workspace folder instead", status=413)
                    out.write(chunk)
            check_content(part, kind)
            final = self.free_name(folder, name)
            os.replace(part, final)
        finally:
            part.unlink(missing_ok=True)
        return self.relative(final), kind


def check_content(path: Path, kind: FileKind) -> None:
    """Open `path` the way a render would; WorkspaceError naming the file when it does not open."""
    try:
        if kind is FileKind.IMAGE:
            media.load_image(path)
        elif kind is FileKind.VIDEO:
            media.probe(path)
        elif header(path).audio_codec is None:
            raise InputError("no sound in it")
    except DreamvidError as exc:
        raise WorkspaceError(f"the upload is not a readable {kind.value} file ({exc.message})",
                             hint="upload a complete, valid file", status=415) from None
