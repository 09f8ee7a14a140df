"""Trial replay (:class:`server.replay.ReplayLibrary` on the hub).

- ``GET /replay``: the page (``?session=…&trial=…`` opens a trial; trials numbered from 0);
- ``GET /api/replay/sessions``: the sessions the server holds and their trials, newest first;
- ``GET /api/replay/sessions/{session}/trials/{trial}``: one trial's gaze, fixations, microphone
  levels, drift check, track loss, notes, and its audio's waveform and voice onsets (404: no such
  session or trial);
- ``GET /api/replay/sessions/{session}/trials/{trial}/audio.wav``: the trial's audio, for playback
  (404: none).

The trial's audio is the streamed one, else the WAV of a session folder the review library
(``app.state.review``: ``lookwhere serve --sessions``) finds.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response
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
        return await run_in_threadpool(
            hub.replay.trial, session, trial, notes=notes, recordings=request.app.state.review.recording
        )
    except (KeyError, ValueError) as error:  # ValueError: not a session id
        raise _not_found(error) from None


@router.get("/api/replay/sessions/{session}/trials/{trial}/audio.wav")
async def get_audio(request: Request, session: str, trial: int) -> Response:
    try:
        audio = await run_in_threadpool(
            request.app.state.hub.replay.wav, session, trial, recordings=request.app.state.review.recording
        )
    except KeyError as error:
        raise _not_found(error) from None
    if isinstance(audio, Path):
        return FileResponse(audio, media_type="audio/wav")
    return Response(audio, media_type="audio/wav")


def _not_found(error: Exception) -> HTTPException:
    return HTTPException(404, detail=str(error.args[0]) if error.args else "not found")
