"""Reviewed utterances, saved beside the automatic ones and used by the analysis where present.

Automatic values are never edited: they are recomputed from the WAVs (``lookwhere voice detect``,
``lookwhere analyze``) with the parameters recorded beside them. A reviewer's decisions go into the
session folder, in ``voice_corrections.jsonl``: one JSON object per saved review of one trial,
appended (a later save of the same trial supersedes the earlier one, which stays as history)::

    {"schema": 1, "trial": 3, "image": "000010", "saved_unix_s": 1767225600.0, "reviewer": "AB",
     "utterances": [{"onset_ms": 812.0, "offset_ms": 1230.0, "word": "horse", "name_class": "horse"}],
     "automatic": {"method": "silero", "onsets_ms": [826.0]}}

``utterances`` is the whole corrected list of the trial (times in ms from image onset, the clock of
the automatic table), so an empty list says "reviewed: no speech", and a trial's automatic
utterances are replaced as a whole: no matching of corrected to automatic utterances is needed.
``word``/``name_class`` may be ``""`` (not named); ``automatic`` is what the reviewer saw, for the
record. :func:`save_correction` writes an entry (a review page calls it);
:func:`apply_corrections` makes the table the analysis uses and reports which trials it corrected.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analysis.outputs import sha256_of

__all__ = [
    "CORRECTIONS_FILE",
    "CorrectedUtterance",
    "TrialReview",
    "save_correction",
    "read_corrections",
    "apply_corrections",
]

logger = logging.getLogger(__name__)

CORRECTIONS_FILE = "voice_corrections.jsonl"
SCHEMA = 1


class CorrectedUtterance(BaseModel):
    """One utterance as the reviewer placed it (ms from image onset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    onset_ms: float
    offset_ms: float
    word: str = ""
    name_class: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> CorrectedUtterance:
        if not self.offset_ms > self.onset_ms:
            raise ValueError(f"offset_ms ({self.offset_ms}) must be after onset_ms ({self.onset_ms})")
        return self


class TrialReview(BaseModel):
    """One saved review of one trial (a line of ``voice_corrections.jsonl``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: int = Field(SCHEMA, alias="schema")
    trial: int = Field(ge=0)
    image: str
    saved_unix_s: float
    reviewer: str = ""
    utterances: tuple[CorrectedUtterance, ...]
    automatic: dict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _in_order(self) -> TrialReview:
        onsets = [u.onset_ms for u in self.utterances]
        if onsets != sorted(onsets):
            raise ValueError("utterances must be in time order")
        return self


def save_correction(
    session_folder,
    *,
    trial: int,
    image: str,
    utterances: Sequence[Mapping],
    reviewer: str = "",
    automatic: Mapping | None = None,
) -> TrialReview:
    """Append the review of one trial to the session's ``voice_corrections.jsonl``.

    Parameters
    ----------
    session_folder : path
        The session folder (it holds ``trials.jsonl``).
    trial : int
        Trial index.
    image : str
        The trial's image id (checked on reading against the automatic table).
    utterances : sequence of mappings
        The trial's whole corrected list: ``onset_ms``, ``offset_ms`` (ms from image onset) and
        optionally ``word``, ``name_class``; empty for "no speech".
    reviewer : str
        Who reviewed (initials).
    automatic : mapping, optional
        What the reviewer saw, kept for the record.

    Returns
    -------
    TrialReview
        The entry written (validated first: nothing is written when it is invalid).
    """
    folder = Path(session_folder)
    if not (folder / "trials.jsonl").is_file():
        raise FileNotFoundError(f"{folder} is not a session folder (no trials.jsonl)")
    review = TrialReview(
        trial=trial,
        image=image,
        saved_unix_s=time.time(),
        reviewer=reviewer,
        utterances=tuple(CorrectedUtterance(**u) for u in utterances),
        automatic=dict(automatic or {}),
    )
    with open(folder / CORRECTIONS_FILE, "a", encoding="utf-8") as handle:
        handle.write(review.model_dump_json(by_alias=True) + "\n")
    return review


def read_corrections(session_folder) -> dict[int, TrialReview]:
    """The latest review of each trial of a session (empty without a corrections file).

    Raises
    ------
    ValueError
        When a complete line is not a valid review (the message names the file and line). A torn
        last line (an interrupted save) is skipped with a warning.
    """
    path = Path(session_folder) / CORRECTIONS_FILE
    if not path.is_file():
        return {}
    latest: dict[int, TrialReview] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                logger.warning("%s line %d is incomplete (interrupted save); ignoring it", path, number)
                continue
            raise ValueError(f"{path} line {number} is not JSON: {error}") from None
        try:
            review = TrialReview.model_validate(data)
        except ValidationError as error:
            raise ValueError(f"{path} line {number} is not a valid review: {error}") from None
        if review.schema_ != SCHEMA:
            raise ValueError(f"{path} line {number} has schema {review.schema_}; this lookwhere reads {SCHEMA}")
        latest[review.trial] = review
    return latest


def apply_corrections(
    utterances: pd.DataFrame, sessions: Mapping[tuple[str, str], Path]
) -> tuple[pd.DataFrame, list[dict]]:
    """The utterances the analysis uses: each reviewed trial's list in place of the automatic one.

    Parameters
    ----------
    utterances : DataFrame
        The automatic table (:func:`~analysis.voice.recordings.detect_trials`, names optional).
    sessions : mapping (participant, session) → session folder
        Where to look for ``voice_corrections.jsonl``.

    Returns
    -------
    table : DataFrame
        ``utterances`` with a ``source`` column, ``"automatic"`` or ``"corrected"``; a corrected
        utterance has ``confidence`` NaN and the name the reviewer gave (``name_score`` NaN).
    record : list of dict
        Per corrections file: ``file``, ``sha256``, ``trials_corrected`` and ``reviewers``, for
        ``params.json``.

    Raises
    ------
    ValueError
        When a review names a different image than the trial's recording.
    """
    table = utterances.assign(source="automatic")
    key = list(zip(table["participant"], table["session"], table["trial"]))
    recorded = dict(zip(key, zip(table["file"], table["image"])))
    record: list[dict] = []
    replaced: set[tuple[str, str, int]] = set()  # (participant, session, trial)
    corrected: list[dict] = []
    for (participant, session), folder in sessions.items():
        reviews = read_corrections(folder)
        if not reviews:
            continue
        path = folder / CORRECTIONS_FILE
        for trial, review in sorted(reviews.items()):
            file, image = recorded.get((participant, session, trial), (str(folder), review.image))
            if image != review.image:
                raise ValueError(
                    f"{path}: the review of trial {trial} is for image {review.image}, but the trial showed {image}"
                )
            replaced.add((participant, session, trial))
            corrected.extend(
                {
                    "file": file,
                    "participant": participant,
                    "session": session,
                    "trial": trial,
                    "image": image,
                    "utterance": number,
                    "onset_ms": u.onset_ms,
                    "offset_ms": u.offset_ms,
                    "confidence": float("nan"),
                    "method": "review",
                    "aligned": True,
                    "word": u.word,
                    "name_class": u.name_class,
                    "name_score": float("nan"),
                    "source": "corrected",
                }
                for number, u in enumerate(review.utterances, 1)
            )
        record.append(
            {
                "file": str(path),
                "sha256": sha256_of([path])[str(path)],
                "trials_corrected": sorted(reviews),
                "reviewers": sorted({r.reviewer for r in reviews.values()}),
            }
        )
    table = table.loc[[k not in replaced for k in key]]
    if corrected:
        # The reviewer's names are kept even when the automatic table has none (names off).
        table = table.assign(
            **{
                c: pd.Series("", index=table.index, dtype="string")
                for c in ("word", "name_class")
                if c not in table.columns
            }
        )
        extra = pd.DataFrame(corrected)
        extra = extra[[c for c in table.columns if c in extra.columns]].astype(
            {c: table[c].dtype for c in table.columns if c in extra.columns}
        )
        table = pd.concat([table, extra], ignore_index=True)
    table = table.sort_values(["participant", "session", "trial", "onset_ms"], kind="stable").reset_index(drop=True)
    return table, record
