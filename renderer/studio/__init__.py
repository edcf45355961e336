"""``dreamvid studio``: a local web studio over the same settings and render code as the CLI.

A FastAPI app (:mod:`.app`) serves one page (``static/``) and a JSON API; previews are dreamed in the
server process with the network loaded once (:mod:`.preview`), renders run one at a time in worker
processes (:mod:`.jobs`, :mod:`.worker`). Files are read and written only inside the workspace
(:mod:`.workspace`); every API request needs the per-launch token and the studio's own origin
(:mod:`.security`). Needs the ``studio`` extra: ``pip install 'dreamvid[studio]'``.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import webbrowser
from collections.abc import Callable
from pathlib import Path

from ..errors import DreamvidError

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _own_names(host: str) -> list[str]:
    """The names a browser may use for this machine when the studio listens on `host` (not loopback)."""
    names = [host]
    if _is_ip(host) and ipaddress.ip_address(host).is_unspecified:
        name = socket.gethostname()
        try:
            names += [name, *socket.gethostbyname_ex(name)[2]]
        except OSError:
            names.append(name)
    return names


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def serve(folder: str | Path = ".", host: str = LOOPBACK, port: int = 0, open_browser: bool = True,
          device: str = "auto", announce: Callable[[str], None] = print) -> None:
    """Run the studio on `folder` until interrupted (port 0: a free one). `announce` receives the URL."""
    try:
        import uvicorn

        from .app import create_app
        from .security import Guard, loopback_hosts
        from .workspace import Workspace
    except ImportError as exc:
        raise DreamvidError(f"the studio needs {exc.name}, which is not installed",
                            hint="pip install 'dreamvid[studio]'") from None
    import torch

    from .preview import PREVIEW_THREADS

    torch.set_num_threads(PREVIEW_THREADS)
    workspace = Workspace.open(folder)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DreamvidError(f"cannot listen on {host}:{port} ({exc.strerror})",
                            hint="choose another --port, or leave it out for a free one") from None
    port = sock.getsockname()[1]
    extra = [] if is_loopback(host) else _own_names(host)
    guard = Guard(loopback_hosts(port, extra))
    app = create_app(workspace, guard, device)
    shown = LOOPBACK if is_loopback(host) or not _is_ip(host) or ipaddress.ip_address(host).is_unspecified else host
    url = f"http://{shown}:{port}/"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3))
    announce(f"dreamvid studio on {workspace.root}: {url} (Ctrl-C to stop)")
    if open_browser:
        threading.Timer(0.8, webbrowser.open, [url]).start()
    server.run(sockets=[sock])
