"""Who may read the dashboard: anyone on loopback; with the token elsewhere. WebSocket origins checked.

On loopback the ``Host`` header must name the loopback too: a web page whose own domain was
re-pointed at 127.0.0.1 (DNS rebinding) would otherwise pass as same-origin and read the data.
The token travels as ``?token=`` on the first page load, which sets an HttpOnly cookie so that the
page's own requests (images, API, WebSocket) carry it; tools may send ``Authorization: Bearer``.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, WebSocket, status

from lookwhere.transport import is_loopback

__all__ = ["TOKEN_COOKIE", "require_access", "require_same_origin", "websocket_allowed"]

TOKEN_COOKIE = "lookwhere_token"


def _offered_token(connection: Request | WebSocket) -> str | None:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return connection.query_params.get("token") or connection.cookies.get(TOKEN_COOKIE)


def _host_ok(connection: Request | WebSocket) -> bool:
    if not connection.app.state.config.is_loopback:
        return True  # the token guards a server bound elsewhere
    host = connection.headers.get("host", "")
    name = host[: host.find("]") + 1] if host.startswith("[") else host.rsplit(":", 1)[0]
    return is_loopback(name)


def _origin_ok(connection: Request | WebSocket) -> bool:
    """A browser's ``Origin`` names this server (tools send none)."""
    origin, host = connection.headers.get("origin"), connection.headers.get("host")
    return origin is None or origin in (f"http://{host}", f"https://{host}")


def _token_ok(connection: Request | WebSocket) -> bool:
    expected = connection.app.state.config.token
    if expected is None:
        return True
    offered = _offered_token(connection)
    return offered is not None and hmac.compare_digest(offered.encode(), expected.encode())


async def require_access(request: Request) -> None:
    """FastAPI dependency: 400 for a non-loopback ``Host`` on a loopback server; 401 unless the
    request carries the server's token (when it has one)."""
    if not _host_ok(request):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"host {request.headers.get('host')!r} is not this loopback server; "
            "open the dashboard at http://127.0.0.1:PORT/",
        )
    if not _token_ok(request):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="this server is not on loopback and needs its token: open the URL that "
            "`lookwhere serve` printed (…?token=…) or send 'Authorization: Bearer TOKEN'",
        )


async def require_same_origin(request: Request) -> None:
    """FastAPI dependency of the routes that write: 403 for a browser request from another site.

    A page elsewhere may send a form to a loopback server (the browser sends it without asking),
    and its ``Host`` is the server's own; its ``Origin`` is not. Tools send no ``Origin``."""
    if not _origin_ok(request):
        origin, host = request.headers.get("origin"), request.headers.get("host")
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"origin {origin!r} is not this server ({host!r})")


def websocket_allowed(websocket: WebSocket) -> str | None:
    """Why a WebSocket must be refused (``None``: allowed).

    A browser always sends ``Origin``; it must be this server's own page, so another site open in
    the experimenter's browser cannot read the stream. Tools without ``Origin`` need the token only.
    """
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    if not _host_ok(websocket):
        return f"host {host!r} is not this loopback server"
    if not _origin_ok(websocket):
        return f"origin {origin!r} is not this server ({host!r})"
    if not _token_ok(websocket):
        return "missing or wrong token"
    return None
