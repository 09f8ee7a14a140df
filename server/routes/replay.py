"""Trial replay (:class:`server.replay.ReplayLibrary` on the hub).

- ``GET /replay``: the page (``?session=…&trial=…`` opens a trial; trials numbered from 0);
- ``GET /api/replay/sessions``: the sessions the server holds and their trials, newest first;
- ``GET /api/replay/sessions/{session}/trials/{trial}``: one trial's gaze, fixations, microphone
  levels, drift check, track loss and notes (404: no such session or trial).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from server.replay import ReplaySessions, ReplayTrial
from server.routes.dashboard import static_page

router = APIRouter(tags=["replay"])


@router.get("/replay", include_in_schema=False)
def replay_page(request: Request) -> FileResponse:
    return static_page(request, "replay.html")


@router.get("/api/replay/sessions", response_model=ReplaySessions)
async def list_sessions(request: Request) -> ReplaySessions:
    return await run_in_threadpool(request.app.state.hub.replay.sessions)


@router.get("/api/replay/sessions/{session}/trials/{trial}", response_model=ReplayTrial)
async def get_trial(request: Request, session: str, trial: int) -> ReplayTrial:
    hub = request.app.state.hub
    try:
        notes = await run_in_threadpool(hub.notes.notes, session)
        return await run_in_threadpool(hub.replay.trial, session, trial, notes=notes)
    except (KeyError, ValueError) as error:  # ValueError: not a session id
        raise HTTPException(404, detail=str(error.args[0]) if error.args else "not found") from None
