"""Who may drive the studio: the page it served, in this browser, on this machine.

Three checks, applied to every API route as one FastAPI dependency (:meth:`Guard.__call__`):

* **Host**: the request must name one of the server's own addresses (``127.0.0.1:PORT``,
  ``localhost:PORT``): a DNS-rebinding page that reaches the port under another name is refused.
* **Origin**: a request that states an ``Origin`` (or ``Sec-Fetch-Site``) must come from the studio's
  own origin: another web page open in the same browser cannot use it.
* **Token**: a random per-launch token, written into the page the server serves, must accompany the
  request (``X-Studio-Token`` header; media elements and the event stream, which cannot set
  headers, may give it as ``?token=`` on GET requests only).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from fastapi import HTTPException, Request

TOKEN_HEADER = "x-studio-token"
_SAFE_METHODS = frozenset({"GET", "HEAD"})


def loopback_hosts(port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` values a studio listening on `port` answers to."""
    names = ["127.0.0.1", "localhost", "[::1]", *extra]
    return frozenset(f"{name}:{port}" for name in names)


class Guard:
    """The per-launch token and the hosts the studio answers to."""

    def __init__(self, hosts: Iterable[str], token: str | None = None) -> None:
        self.hosts = frozenset(h.lower() for h in hosts)
        self.token = token or secrets.token_urlsafe(32)

    def __call__(self, request: Request) -> None:
        """Raise 403 unless the request comes from the studio's own page (see the module docstring)."""
        host = request.headers.get("host", "").lower()
        if host not in self.hosts:
            raise HTTPException(403, f"refused: this studio does not answer to host {host!r}")
        origin = request.headers.get("origin")
        if origin is not None and origin.lower() != f"{request.url.scheme}://{host}":
            raise HTTPException(403, f"refused: requests from {origin} are not allowed")
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise HTTPException(403, f"refused: a {site} request")
        given = request.headers.get(TOKEN_HEADER)
        if given is None and request.method in _SAFE_METHODS:
            given = request.query_params.get("token")
        if given is None or not secrets.compare_digest(given, self.token):
            raise HTTPException(403, "refused: missing or wrong studio token (reload the studio page)")
