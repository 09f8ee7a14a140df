"""The naming task's review page and its API (:class:`server.review.ReviewLibrary` on ``app.state.review``).

- ``GET /review``: the page;
- ``GET /api/review/sessions``: the sessions with audio under the library's roots;
- ``GET /api/review/sessions/{key}/trials``: a session's trials and their review state;
- ``GET /api/review/sessions/{key}/trials/{trial}``: waveform, automatic utterances, latest review;
- ``GET /api/review/sessions/{key}/trials/{trial}/audio.wav``: the recording, for playback;
- ``POST /api/review/sessions/{key}/trials/{trial}``: save a review (appended to the session's
  ``voice_corrections.jsonl``; 201 with the entry written).

Sessions and trials are looked up in what the library found; a path is never built from a request.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from server.review import ReviewIn, SessionList, TrialDetail, TrialList
from server.routes.dashboard import static_page
from server.security import require_same_origin

router = APIRouter(tags=["review"])


def _not_found(error: KeyError) -> HTTPException:
    return HTTPException(404, detail=str(error.args[0]) if error.args else "not found")


@router.get("/review", include_in_schema=False)
def review_page(request: Request) -> FileResponse:
    return static_page(request, "review.html")


@router.get("/api/review/sessions", response_model=SessionList)
async def list_sessions(request: Request) -> SessionList:
    return await run_in_threadpool(request.app.state.review.session_list)


@router.get("/api/review/sessions/{key}/trials", response_model=TrialList)
async def list_trials(request: Request, key: str) -> TrialList:
    try:
        return await run_in_threadpool(request.app.state.review.trial_list, key)
    except KeyError as error:
        raise _not_found(error) from None


@router.get("/api/review/sessions/{key}/trials/{trial}", response_model=TrialDetail)
async def get_trial(request: Request, key: str, trial: int) -> TrialDetail:
    """The trial's waveform, automatic utterances (detected on first request, then cached), its
    latest review and the names it may get."""
    try:
        return await run_in_threadpool(request.app.state.review.trial_detail, key, trial)
    except KeyError as error:
        raise _not_found(error) from None


@router.get("/api/review/sessions/{key}/trials/{trial}/audio.wav")
def get_audio(request: Request, key: str, trial: int) -> FileResponse:
    try:
        audio = request.app.state.review.audio_trial(key, trial)
    except KeyError as error:
        raise _not_found(error) from None
    return FileResponse(audio.file, media_type="audio/wav")


@router.post("/api/review/sessions/{key}/trials/{trial}", status_code=201, dependencies=[Depends(require_same_origin)])
async def save_review(request: Request, key: str, trial: int, review: ReviewIn) -> dict:
    """Append the trial's corrected utterances; 404 for an unknown trial, 422 for an invalid list."""
    try:
        saved = await run_in_threadpool(request.app.state.review.save, key, trial, review)
    except KeyError as error:
        raise _not_found(error) from None
    except ValueError as error:
        raise HTTPException(422, detail=str(error)) from None
    return saved.model_dump(by_alias=True)
