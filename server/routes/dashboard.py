"""The dashboard page (static HTML; its script talks to the API and the WebSocket)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from server.security import TOKEN_COOKIE

router = APIRouter(tags=["dashboard"])


def static_page(request: Request, name: str) -> FileResponse:
    """The page ``server/static/<name>``, setting the token cookie so its own requests carry it."""
    from server.app import STATIC_DIR

    response = FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-store"})
    token = request.app.state.config.token
    if token is not None:  # the page's own requests then carry it
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
    return response


@router.get("/", include_in_schema=False)
def index(request: Request) -> FileResponse:
    return static_page(request, "index.html")
