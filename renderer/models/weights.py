"""Finding, downloading and verifying weight files.

Lookup order for a weight file named ``FILE``: an explicit path (``--weights``), the directory in
``$DREAMVID_WEIGHTS``, the user cache (``$XDG_CACHE_HOME/dreamvid`` or ``~/.cache/dreamvid``), then a
download into that cache (not when ``$DREAMVID_OFFLINE`` is set). Files are read with safetensors or
``torch.load(weights_only=True)``: never a full pickle.

A download cannot be checked against a file hash we know (the public ``inception5h.pth`` has no
published one), so what was *loaded* is verified instead: key names, shapes and a fingerprint (sum and
sum of absolute values of every tensor) computed from the known-good file.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.request
from importlib import resources
from pathlib import Path

import torch

from ..errors import ModelError

ENV_DIR = "DREAMVID_WEIGHTS"
ENV_OFFLINE = "DREAMVID_OFFLINE"


def cache_dir() -> Path:
    """The user cache for downloaded weights."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dreamvid"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` or ``.pth``/``.pt`` state dict (tensors only)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, wrong format, pickle with code objects...
        raise ModelError(f"cannot read weights {path}: {str(exc).splitlines()[0]}",
                         hint="use a .safetensors or .pth state dict; delete it if it is a broken download") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} is not a state dict of tensors")
    return state


def find_weights(filenames: tuple[str, ...], explicit: str | Path | None) -> Path | None:
    """The first existing file among: explicit path, $DREAMVID_WEIGHTS/<name>, cache/<name>."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ModelError(f"weights file not found: {path}", hint="check the --weights path")
        return path
    dirs = [Path(os.environ[ENV_DIR]).expanduser()] if os.environ.get(ENV_DIR) else []
    dirs.append(cache_dir())
    for folder in dirs:
        for name in filenames:
            if (folder / name).is_file():
                return folder / name
    return None


def searched_places(filenames: tuple[str, ...]) -> str:
    """Human-readable list of where :func:`find_weights` looks (for error messages)."""
    dirs = ([f"${ENV_DIR}={os.environ[ENV_DIR]}"] if os.environ.get(ENV_DIR) else [f"${ENV_DIR} (unset)"])
    return f"{', '.join(dirs)}, {cache_dir()} for {' or '.join(filenames)}"


def download(url: str, filename: str) -> Path:
    """Download `url` into the cache as `filename` (atomically). Raises ModelError when offline."""
    if os.environ.get(ENV_OFFLINE):
        raise ModelError(f"download disabled by ${ENV_OFFLINE}")
    target = cache_dir() / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(f"cannot download {url}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def load_fingerprint(name: str) -> dict[str, tuple[list[int], float, float]]:
    """The packaged fingerprint of a known-good weight file: {key: (shape, sum, abs sum)}."""
    text = resources.files("renderer.data").joinpath(f"{name}-fingerprint.json").read_text()
    return json.loads(text)


def verify_fingerprint(state: dict[str, torch.Tensor], expected: dict, source: Path) -> None:
    """Check key names, shapes and value fingerprints (relative tolerance 1e-4: survives re-export
    through another float32 toolchain, catches truncated, shuffled or different weights)."""
    for key, (shape, total, abs_total) in expected.items():
        if key not in state:
            raise ModelError(f"{source} lacks tensor {key}", hint="it is not an inception5h weight file")
        tensor = state[key].double()
        if list(tensor.shape) != shape:
            raise ModelError(f"{source}: {key} has shape {list(tensor.shape)}, expected {shape}")
        got = (float(tensor.sum()), float(tensor.abs().sum()))
        for value, want in zip(got, (total, abs_total)):
            if abs(value - want) > 1e-4 * max(abs(want), 1.0):
                raise ModelError(f"{source}: values of {key} differ from the known-good inception5h weights",
                                 hint="delete the file and download it again")
