"""The experimenter's notes (:mod:`server.notes`).

- ``GET /api/notes``: the current session's notes (``?session=`` another's);
- ``POST /api/notes``: save a note on the current session (201 with the note as saved).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from lookwhere.notes import OperatorNote
from server.notes import NoteIn, NotesSection
from server.security import require_same_origin

router = APIRouter(prefix="/api", tags=["notes"])


@router.get("/notes", response_model=NotesSection)
async def get_notes(request: Request, session: str | None = None) -> NotesSection:
    """A session's notes, oldest first, and the trials they exclude."""
    try:
        return await run_in_threadpool(request.app.state.hub.notes_section, session)
    except ValueError as error:
        raise HTTPException(422, detail=str(error)) from None


@router.post("/notes", status_code=201, response_model=OperatorNote, dependencies=[Depends(require_same_origin)])
async def post_note(request: Request, note: NoteIn) -> OperatorNote:
    """Save a note on the current session: 409 before any session, 422 for a trial that has not
    started or a note without what its kind needs (free text, the trial to exclude)."""
    try:
        return await run_in_threadpool(request.app.state.hub.add_note, note)
    except ValueError as error:
        raise HTTPException(422, detail=str(error)) from None
    except LookupError as error:
        raise HTTPException(409, detail=str(error)) from None
