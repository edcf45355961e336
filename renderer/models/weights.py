"""Finding and verifying weight files.

Lookup order for a weight file named ``FILE``: an explicit path (``--weights``), the folder in
``$DREAMVID_WEIGHTS``, the user cache (``$XDG_CACHE_HOME/dreamvid`` or ``~/.cache/dreamvid``), then the
copy packaged in ``renderer/data`` (inception5h ships there, so the default network needs no download).
Networks with nothing packaged (the torchvision ones) download through torchvision instead; that is
their module's business, and ``$DREAMVID_OFFLINE`` forbids it. Files are read with safetensors or
``torch.load(weights_only=True)``: never a full pickle.

Verification: a packaged file is checked against the sha256 of its bytes (a mismatch means a damaged
install). Any other inception5h file is checked by what was *loaded* (key names, shapes and a
fingerprint of the known-good values), so a faithful re-export such as the public ``inception5h.pth``
is accepted.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch

from ..errors import ModelError

ENV_DIR = "DREAMVID_WEIGHTS"
ENV_OFFLINE = "DREAMVID_OFFLINE"

#: Where packaged weight files live (module-level so a test can point it at a damaged copy).
DATA_DIR = Path(str(resources.files("renderer.data")))
#: Weight files that ship inside the package: file name -> sha256 of its bytes (hex).
PACKAGED_SHA256 = {"inception5h.safetensors": "aa9e05dbff1054ea58c3f4aa89cd3e842034bf7ad790c6c074b9c38c71d65954"}


def cache_dir() -> Path:
    """The user cache for weight files."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dreamvid"


def offline() -> bool:
    """True when ``$DREAMVID_OFFLINE`` forbids downloads."""
    return bool(os.environ.get(ENV_OFFLINE))


def env_dir(filenames: tuple[str, ...]) -> Path | None:
    """The folder named by ``$DREAMVID_WEIGHTS`` as an absolute path, or None when it is unset.

    A relative value is resolved against the current working directory when it is read (the folder the
    user ran from), once, so lookups and error messages show the same absolute path. The user asked for
    this folder explicitly, so a missing one is an error rather than a silent fall-through.
    """
    value = os.environ.get(ENV_DIR)
    if not value:
        return None
    folder = Path(os.path.abspath(Path(value).expanduser()))
    if not folder.is_dir():
        raise ModelError(f"${ENV_DIR} names a folder that does not exist: {folder}",
                         hint=f"create it and put {' or '.join(filenames)} into it, or unset ${ENV_DIR}")
    return folder


@lru_cache(maxsize=None)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a file's bytes; keyed by size and mtime too, so a changed file is hashed again."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ModelError unless the bytes of `path` hash to `expected` (hex sha256).

    Hashing the 28 MB inception5h file takes about 0.1 s; the result is remembered for the process.
    """
    stat = path.stat()
    got = _sha256(path.resolve(), stat.st_size, stat.st_mtime_ns)
    if got != expected:
        raise ModelError(f"packaged weights {path} are damaged (sha256 {got[:12]}..., expected {expected[:12]}...)",
                         hint="reinstall dreamvid")


def packaged_weights(filenames: tuple[str, ...]) -> Path | None:
    """The first of `filenames` that ships inside the package, or None if none does."""
    for name in filenames:
        if name in PACKAGED_SHA256 and (DATA_DIR / name).is_file():
            return DATA_DIR / name
    return None


def verified_by_hash(path: Path) -> bool:
    """For a packaged file: check its sha256 (ModelError if the install is damaged) and return True.
    For any other file return False: the caller verifies what it loads from it instead."""
    if path.name not in PACKAGED_SHA256 or path.resolve() != (DATA_DIR / path.name).resolve():
        return False
    verify_sha256(path, PACKAGED_SHA256[path.name])
    return True


def find_weights(filenames: tuple[str, ...], explicit: str | Path | None) -> Path | None:
    """The first existing file among: `explicit`, ``$DREAMVID_WEIGHTS``/name, cache/name, packaged name.

    Returns None when none exists (the caller decides whether to download).
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ModelError(f"weights file not found: {path}", hint="check the --weights path")
        return path
    folders = [folder for folder in (env_dir(filenames), cache_dir()) if folder is not None]
    for folder in folders:
        for name in filenames:
            if (folder / name).is_file():
                return folder / name
    return packaged_weights(filenames)


def searched_places(filenames: tuple[str, ...]) -> str:
    """Human-readable list of where :func:`find_weights` looks (for error messages)."""
    folder = env_dir(filenames)
    places = [f"${ENV_DIR}={folder}" if folder else f"${ENV_DIR} (unset)", str(cache_dir())]
    if any(name in PACKAGED_SHA256 for name in filenames):
        places.append(f"the package ({DATA_DIR})")
    return f"{', '.join(places)} for {' or '.join(filenames)}"


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


def check_state_dict_fits(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str,
                          network: str, optional: tuple[str, ...] = ()) -> None:
    """Raise one-line ModelError unless `state` has exactly the keys and shapes of `expected`.

    Args:
        state: the tensors read from `source`.
        expected: the target module's ``state_dict()``.
        source: the file (or URL) named in the message.
        network: the network's name, for the hint.
        optional: key suffixes that may be absent (BatchNorm's ``num_batches_tracked`` counter, which
            older checkpoints lack and PyTorch fills in).
    """
    missing = [k for k in expected if k not in state and not k.endswith(optional)]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        key = wrong[0]
        problems.append(f"{len(wrong)} with the wrong shape (e.g. {key}: {list(state[key].shape)}, "
                        f"expected {list(expected[key].shape)})")
    if problems:
        raise ModelError(f"{source} does not fit {network}: {', '.join(problems)}",
                         hint=f"is this a weight file for {network}?")


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
                                 hint="use a good copy, or remove this one: without it dreamvid uses the "
                                 "weights it ships with")
