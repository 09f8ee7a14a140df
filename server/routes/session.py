"""``GET /api/session``: the current session and the pooled totals."""

from __future__ import annotations

from fastapi import APIRouter, Request

from server.sections import SessionReport

router = APIRouter(prefix="/api", tags=["session"])


@router.get("/session", response_model=SessionReport)
def get_session(request: Request) -> SessionReport:
    """Session id, participant, trial (0-based) and planned trials, image shown, pooled counts,
    ignored records by reason, and the current trial's onset and planned duration."""
    return request.app.state.hub.session()
