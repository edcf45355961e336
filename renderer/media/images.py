"""Still images and folders of numbered frames: ``uint8 (H, W, 3)`` RGB arrays in and out."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import EncodeError, InputError
from .ffmpeg import StrPath
from .files import atomic_path

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
FRAME_NAME = "frame_{:06d}.png"  # numbering starts at 1, like ffmpeg's image2 muxer


def check_frame(frame: np.ndarray, width: int | None = None, height: int | None = None) -> None:
    """Frames here are ``uint8 (H, W, 3)``; a wrong one is a bug in the caller, hence ValueError."""
    ok_shape = frame.ndim == 3 and frame.shape[2] == 3
    if width is not None and height is not None:
        ok_shape = frame.shape == (height, width, 3)
    if frame.dtype != np.uint8 or not ok_shape:
        want = f"({height}, {width}, 3)" if width is not None else "(H, W, 3)"
        raise ValueError(f"expected a uint8 {want} frame, got {frame.dtype} {frame.shape}")


def is_image(path: StrPath) -> bool:
    """Whether ``path`` names a still image, by its extension."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def load_image(path: StrPath) -> np.ndarray:
    """Read an image as ``uint8 (H, W, 3)`` RGB, upright (EXIF orientation applied).

    Transparency is composited onto white, the way image viewers, browsers and editors' "flatten"
    show a logo or a cut-out (onto black, its edges and shadows would vanish into the background).
    Grayscale, palette and CMYK images are converted to RGB (CMYK without a colour profile: naively).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                rgba = img.convert("RGBA")
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read image {path}: {reason}", hint="is it a complete image file?") from exc


def save_image(path: StrPath, array: np.ndarray) -> None:
    """Write a ``uint8 (H, W, 3)`` RGB array as an image (format from the extension), atomically."""
    path = Path(path)
    check_frame(array)
    try:
        with atomic_path(path) as tmp:
            Image.fromarray(array, "RGB").save(tmp)
    except OSError as exc:
        raise EncodeError(f"cannot write image {path}: {exc.strerror or exc}") from exc


def _natural_key(name: str) -> list[int | str]:
    # re.split with a group alternates text and digits, so keys compare str to str and int to int.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def numbered_images(folder: Path) -> list[Path]:
    """The numbered, visible image files in ``folder``, in natural order (no checks)."""
    files = [p for p in folder.iterdir()
             if p.is_file() and is_image(p) and not p.name.startswith(".") and re.search(r"\d", p.name)]
    return sorted(files, key=lambda p: _natural_key(p.name))


def list_frame_folder(path: StrPath) -> list[Path]:
    """The numbered image files in a folder, in natural order (``f2.png`` before ``f10.png``).

    Hidden files (our own temporaries among them) and images without a number are ignored.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"no such folder: {path}")
    frames = numbered_images(path)
    if not frames:
        raise InputError(f"no numbered images in {path}",
                         hint=f"expected files like frame_0001.png ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return frames
