"""The naming task's review: recorded sessions, each trial's waveform, utterances and names, and
the reviewer's corrections (the page ``/review``, :mod:`server.routes.review`).

:class:`ReviewLibrary` finds the session folders under its roots (``lookwhere serve --sessions``,
by default its ``--data`` folder; ``lookwhere review PATH…``), lists their trials with audio and
gives, per trial, the waveform's envelope, the automatic utterances and names
(:func:`analysis.voice.recordings.find_utterances`, the code ``lookwhere voice detect`` and
``lookwhere analyze`` run, with the same defaults) and the latest saved review. A review is
appended to the session's ``voice_corrections.jsonl`` by
:func:`analysis.voice.corrections.save_correction`: automatic values are never written or
overwritten, and ``lookwhere analyze --dataset session`` uses the reviewed trials in place of the
automatic ones (recorded in its ``params.json``).

A client names a session by its key (a digest of its folder's path) and a trial by its index: both
are looked up in what the library found, so no path is ever built from what a client sends.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from analysis.voice.detect import VoiceParams
from lookwhere.transport import DEFAULT_HOST, is_loopback

__all__ = [
    "ReviewLibrary",
    "ReviewConfig",
    "ReviewSession",
    "SessionEntry",
    "SessionList",
    "TrialEntry",
    "TrialList",
    "Utterance",
    "TrialReviewView",
    "TrialDetail",
    "ReviewIn",
    "ENVELOPE_BIN_MS",
    "OVERVIEW_COLUMNS",
]

logger = logging.getLogger(__name__)

#: Width of one column of the waveform's envelope (min and max of the samples in it).
ENVELOPE_BIN_MS = 2.5
#: Columns of the small waveform shown beside each trial in the list.
OVERVIEW_COLUMNS = 96
_CACHED_ITEMS = 1024  # automatic results and overviews kept in memory (a trial's detection takes ~0.5 s)


# -- what the API answers ------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SessionEntry(_Model):
    """A session folder with audio: its key, who, where, and how many trials are reviewed."""

    key: str
    participant: str
    session: str
    folder: str
    n_trials: int
    n_reviewed: int


class SessionList(_Model):
    """``GET /api/review/sessions``: the sessions found under the roots, and the detector's options."""

    roots: list[str]
    sessions: list[SessionEntry]
    voice_params: VoiceParams
    names: bool


class TrialEntry(_Model):
    """One trial with audio; ``n_utterances`` is the reviewed count (None: not reviewed);
    ``overview`` the waveform's peak level in :data:`OVERVIEW_COLUMNS` columns (full scale 1)."""

    trial: int
    image: str
    reviewed: bool
    n_utterances: int | None
    overview: list[float]


class TrialList(_Model):
    session: SessionEntry
    trials: list[TrialEntry]


class Utterance(_Model):
    """One utterance, ms from the image onset; ``confidence`` and ``name_score`` for automatic ones."""

    onset_ms: float
    offset_ms: float
    word: str = ""
    name_class: str = ""
    confidence: float | None = None
    name_score: float | None = None


class TrialReviewView(_Model):
    """The latest saved review of a trial."""

    saved_unix_s: float
    reviewer: str
    utterances: list[Utterance]


class Envelope(_Model):
    """The waveform as columns of ``bin_ms``: the min and max sample (full scale ±1) of each."""

    bin_ms: float
    min: list[float]
    max: list[float]


class TrialDetail(_Model):
    """``GET /api/review/sessions/{key}/trials/{trial}``: what the page shows of one trial.

    ``offset_ms`` is the time of the WAV's first sample after the image onset (``aligned``: it was
    recorded), ``duration_ms`` the WAV's length; ``classes`` the image's object classes (empty:
    unknown), ``names`` every name of the synonyms file with its class.
    """

    session: str
    trial: int
    image: str
    offset_ms: float
    aligned: bool
    duration_ms: float
    rate_hz: int
    envelope: Envelope
    automatic: list[Utterance]
    method: str
    review: TrialReviewView | None
    classes: list[str]
    names: dict[str, str]


class CorrectedIn(_Model):
    onset_ms: float = Field(allow_inf_nan=False)
    offset_ms: float = Field(allow_inf_nan=False)
    word: str = Field("", max_length=100)
    name_class: str = Field("", max_length=100)


class ReviewIn(_Model):
    """``POST /api/review/sessions/{key}/trials/{trial}``: the trial's whole corrected list."""

    utterances: list[CorrectedIn] = Field(max_length=200)
    reviewer: str = Field("", max_length=40)


# -- the configuration of ``lookwhere review`` ---------------------------------------------------


class ReviewConfig(_Model):
    """``lookwhere review``: the session roots and where the page is served (the access rules of
    ``lookwhere serve``: loopback by default, elsewhere with a token)."""

    roots: tuple[Path, ...]
    bind: str = DEFAULT_HOST
    http_port: int = Field(8766, ge=0, le=65535)
    token: str | None = None

    @model_validator(mode="after")
    def _token(self) -> ReviewConfig:
        if self.token is None and not self.is_loopback:
            object.__setattr__(self, "token", secrets.token_urlsafe(18))
        return self

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.bind)


# -- the library ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewSession:
    """A session folder found under a root (``folder`` resolved)."""

    key: str
    folder: Path


class ReviewLibrary:
    """The sessions under ``roots`` and their trials' utterances, automatic and reviewed.

    Parameters
    ----------
    roots : iterable of path
        Session folders (holding ``trials.jsonl``) or folders of them, up to two levels down.
    params : VoiceParams
        The detector's options (default: ``lookwhere analyze``'s).
    names : bool
        Recognise the names (pocketsphinx), as ``lookwhere analyze`` does by default.
    synonyms : path, optional
        The synonyms file (default: the VOC classes' list).

    Notes
    -----
    Thread-safe: the routes call it from a thread pool. Detection runs one trial at a time (the
    Silero model keeps state), and saves of one library are serialised.
    """

    def __init__(
        self, roots: Iterable, *, params: VoiceParams = VoiceParams(), names: bool = True, synonyms=None
    ) -> None:
        self.roots = tuple(Path(root) for root in roots)
        self.params, self.names, self.synonyms = params, names, synonyms
        self._detect_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._cache: OrderedDict[tuple, list] = OrderedDict()  # automatic utterances and overviews
        self._names: dict[str, str] | None = None

    # -- sessions and trials ------------------------------------------------------------------------

    def sessions(self) -> list[ReviewSession]:
        """Every session folder under the roots (found anew on every call: sessions recorded while
        the server runs appear)."""
        found: dict[Path, ReviewSession] = {}
        for root in self.roots:
            for marker in _session_markers(root):
                folder = marker.parent.resolve()
                key = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
                found.setdefault(folder, ReviewSession(key, folder))
        return sorted(found.values(), key=lambda s: str(s.folder))

    def session(self, key: str) -> ReviewSession:
        """The session of ``key``; KeyError when no root holds it."""
        for session in self.sessions():
            if session.key == key:
                return session
        raise KeyError(f"no session {key!r} under {', '.join(map(str, self.roots))}")

    def entry(self, session: ReviewSession):
        """The session's :class:`SessionEntry`, or None when it has no audio."""
        trials = _audio_trials(session.folder)
        if not trials:
            return None
        reviews = _reviews(session.folder)
        return SessionEntry(
            key=session.key,
            participant=trials[0].participant,
            session=trials[0].session,
            folder=str(session.folder),
            n_trials=len(trials),
            n_reviewed=sum(t.trial in reviews for t in trials),
        )

    def session_list(self) -> SessionList:
        entries = [entry for session in self.sessions() if (entry := self.entry(session)) is not None]
        return SessionList(
            roots=[str(root) for root in self.roots], sessions=entries, voice_params=self.params, names=self.names
        )

    def trial_list(self, key: str) -> TrialList:
        """The trials with audio of session ``key``, with their review state."""
        session = self.session(key)
        entry = self.entry(session)
        if entry is None:
            raise KeyError(f"session {session.folder} has no trial with audio")
        reviews = _reviews(session.folder)
        trials = [
            TrialEntry(
                trial=t.trial,
                image=t.image,
                reviewed=t.trial in reviews,
                n_utterances=len(reviews[t.trial].utterances) if t.trial in reviews else None,
                overview=self.overview(t.file),
            )
            for t in _audio_trials(session.folder)
        ]
        return TrialList(session=entry, trials=trials)

    def audio_trial(self, key: str, trial: int):
        """The :class:`~analysis.voice.recordings.AudioTrial` of trial ``trial`` of session ``key``."""
        session = self.session(key)
        for candidate in _audio_trials(session.folder):
            if candidate.trial == trial:
                if not candidate.file.resolve().is_relative_to(session.folder):
                    raise KeyError(f"trial {trial}'s recording {candidate.file} lies outside its session folder")
                return candidate
        raise KeyError(f"session {session.folder} has no recorded trial {trial}")

    def recording(self, session_id: str, trial: int):
        """The :class:`~analysis.voice.recordings.AudioTrial` of trial ``trial`` of the session whose
        id (``config.json``'s ``session_id``) is ``session_id``, in a folder under the roots; None
        when no root holds it (the server knows the stream, not always the session folder)."""
        for session in self.sessions():
            for candidate in _audio_trials(session.folder):
                if (
                    candidate.session == session_id
                    and candidate.trial == trial
                    and candidate.file.resolve().is_relative_to(session.folder)
                ):
                    return candidate
        return None

    # -- one trial ----------------------------------------------------------------------------------

    def trial_detail(self, key: str, trial: int) -> TrialDetail:
        """Waveform, automatic utterances, latest review and the names of trial ``trial``."""
        from analysis.voice.recordings import read_wav

        audio = self.audio_trial(key, trial)
        samples, rate_hz = read_wav(audio.file)
        review = _reviews(audio.file.parent.parent).get(trial)
        return TrialDetail(
            session=audio.session,
            trial=trial,
            image=audio.image,
            offset_ms=audio.offset_ms,
            aligned=audio.aligned,
            duration_ms=samples.size * 1000.0 / rate_hz,
            rate_hz=rate_hz,
            envelope=envelope(samples, rate_hz),
            automatic=self.automatic(audio),
            method=self.params.method,
            review=None
            if review is None
            else TrialReviewView(
                saved_unix_s=review.saved_unix_s,
                reviewer=review.reviewer,
                utterances=[Utterance(**u.model_dump()) for u in review.utterances],
            ),
            classes=list(_image_classes(audio)),
            names=self.name_classes(),
        )

    def automatic(self, audio) -> list[Utterance]:
        """The automatic utterances of one recording (cached by file, size and modification time)."""
        from analysis.voice.recordings import find_utterances

        def detect() -> list[Utterance]:
            with self._detect_lock:  # the Silero model keeps state: one recording at a time
                table = find_utterances(
                    [audio.file], params=self.params, names=self.names, synonyms=self.synonyms, progress=False
                )
            return [
                Utterance(
                    onset_ms=row["onset_ms"],
                    offset_ms=row["offset_ms"],
                    word=_text(row.get("word")),
                    name_class=_text(row.get("name_class")),
                    confidence=_number(row["confidence"]),
                    name_score=_number(row.get("name_score")),
                )
                for row in table.to_dict("records")
            ]

        return self._cached("automatic", audio.file, detect)

    def overview(self, file: Path) -> list[float]:
        """The peak level of :data:`OVERVIEW_COLUMNS` columns of a recording (cached like :meth:`automatic`)."""
        from analysis.voice.recordings import read_wav

        def peaks() -> list[float]:
            samples, _ = read_wav(file)
            columns = np.array_split(np.abs(samples), OVERVIEW_COLUMNS) if samples.size else []
            return [round(float(c.max()), 3) if c.size else 0.0 for c in columns]

        return self._cached("overview", file, peaks)

    def _cached(self, kind: str, file: Path, compute: Callable[[], list]) -> list:
        """``compute()``'s result for ``file``, kept while the file's size and modification time stay."""
        stat = file.stat()
        key = (kind, str(file.resolve()), stat.st_size, stat.st_mtime_ns)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = compute()  # two threads may compute the same value once each: harmless
        with self._cache_lock:
            self._cache[key] = value
            while len(self._cache) > _CACHED_ITEMS:
                self._cache.popitem(last=False)
        return value

    def name_classes(self) -> dict[str, str]:
        """Every name of the synonyms file → its class (the page's choices)."""
        if self._names is None:
            from analysis.voice.names import read_synonyms

            table = read_synonyms() if self.synonyms is None else read_synonyms(self.synonyms)
            self._names = dict(zip(table["name"], table["class"]))
        return self._names

    def save(self, key: str, trial: int, review: ReviewIn):
        """Append the review of one trial (:func:`~analysis.voice.corrections.save_correction`),
        with the automatic values the reviewer saw; the entry written.

        Raises
        ------
        KeyError
            Unknown session or trial.
        ValueError
            An utterance whose offset is not after its onset.
        """
        from analysis.voice.corrections import save_correction

        audio = self.audio_trial(key, trial)
        automatic = self.automatic(audio)
        utterances = sorted((u.model_dump() for u in review.utterances), key=lambda u: u["onset_ms"])
        with self._save_lock:
            return save_correction(
                audio.file.parent.parent,
                trial=trial,
                image=audio.image,
                utterances=utterances,
                reviewer=review.reviewer,
                automatic={
                    "method": self.params.method,
                    "onsets_ms": [u.onset_ms for u in automatic],
                    "offsets_ms": [u.offset_ms for u in automatic],
                    "words": [u.word for u in automatic],
                },
            )


def envelope(samples: np.ndarray, rate_hz: int, *, bin_ms: float = ENVELOPE_BIN_MS) -> Envelope:
    """The min and max sample of every ``bin_ms`` column of a recording.

    Parameters
    ----------
    samples : ndarray, shape (N,)
        Mono samples, full scale ±1.
    rate_hz : int
        Their rate.

    Returns
    -------
    Envelope
        ``ceil(N / per_bin)`` columns (the last one may be shorter), rounded to 1e-4.
    """
    per_bin = max(int(round(bin_ms * rate_hz / 1000)), 1)
    n_bins = math.ceil(samples.size / per_bin)
    padded = np.pad(samples.astype(np.float32), (0, n_bins * per_bin - samples.size), mode="edge")
    columns = padded.reshape(n_bins, per_bin)
    return Envelope(
        bin_ms=per_bin * 1000.0 / rate_hz,
        min=np.round(columns.min(axis=1), 4).tolist(),
        max=np.round(columns.max(axis=1), 4).tolist(),
    )


def _session_markers(root: Path) -> Sequence[Path]:
    """The ``trials.jsonl`` of ``root`` itself or of folders up to two levels below it."""
    return [*root.glob("trials.jsonl"), *root.glob("*/trials.jsonl"), *root.glob("*/*/trials.jsonl")]


def _audio_trials(folder: Path):
    from analysis.voice.recordings import audio_trials

    try:
        return audio_trials([folder])
    except FileNotFoundError:
        return []


def _reviews(folder: Path):
    from analysis.voice.corrections import read_corrections

    return read_corrections(folder)


def _image_classes(audio) -> tuple[str, ...]:
    """The classes of the trial's image, from the manifest of the session's stimulus folder."""
    from analysis.voice.recordings import session_classes

    return session_classes([audio]).get(audio.image, ())


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _number(value) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)
