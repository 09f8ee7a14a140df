"""The dashboard page (static HTML; its script talks to the API and the WebSocket)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from server.security import TOKEN_COOKIE

router = APIRouter(tags=["dashboard"])


@router.get("/", include_in_schema=False)
def index(request: Request) -> FileResponse:
    from server.app import STATIC_DIR

    response = FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})
    token = request.app.state.config.token
    if token is not None:  # the page's own requests then carry it
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
    return response
