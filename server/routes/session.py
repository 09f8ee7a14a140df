"""``GET /api/session``: the current session and the pooled totals."""

from __future__ import annotations

from fastapi import APIRouter, Request

router = APIRouter(prefix="/api", tags=["session"])


@router.get("/session")
def get_session(request: Request) -> dict:
    """Session id, participant, trial (0-based) and planned trials, image shown, pooled counts,
    ignored records by reason, and the current trial's onset and planned duration."""
    return request.app.state.hub.session()
