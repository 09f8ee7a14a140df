"""Trial replay (issue 15): any trial of any session the server received, live or finished, rebuilt
from its journal for the page ``/replay`` (:mod:`server.routes.replay`, ``static/replay.js``).

A session's journal (``<data_dir>/stream/<session>.msgpack``, :mod:`server.journal`) holds every
record the experiment streamed, in order; a trial's are those between its (last) ``trial_start`` and
the next trial's: the gaze samples the task streamed once per frame (display pixels, mapped here to
image pixels with the trial's geometry), its fixations, microphone levels and recording, and its
drift check and track loss. Times are ms from the image onset. Of a trial run again after an
aborted run, the last run is shown (as the analysis counts it). The experimenter's notes on the
trial come from :class:`server.notes.NoteBook`.

The trial's **audio** is the recording the task streamed (``mic_audio`` records of issue 14: the
samples of the trial's WAV, so a live session replays too); a trial without streamed audio (an
older experiment, or a session streamed without it) takes the WAV of its session folder when the
server knows that folder (``lookwhere serve --sessions``, :meth:`server.review.ReviewLibrary.recording`).
Its voice onsets are found by the offline detector (:func:`analysis.voice.detect.detect_utterances`,
the code and defaults of ``lookwhere analyze``) on the recording so far, once per recording and
length (cached).

Memory: the records of the :data:`CACHED_SESSIONS` sessions replayed last are kept (the least
recently used dropped beyond; the streamed audio's samples are not kept but read from the file when
a trial's audio is asked for): about 32 MB for a 200-trial session of 85,000 records, whose journal
holds 104 MB (measured with tracemalloc), so about 100 MB in all. Each journal is read on from where
it was last read when it grew, so a live session costs only its new records (reading that session's
whole journal once took 6 s on the 2-core machine). Every session's list of trials is kept (a few KB
each), so listing the sessions reads a journal again only when it grew. Sessions are named by their
id (a UUID, checked), so a path is never built from what a client sends.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import uuid
import wave
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import msgpack
import numpy as np
from pydantic import BaseModel, ConfigDict

from analysis.voice.detect import VoiceParams
from lookwhere import protocol
from lookwhere.notes import OperatorNote
from lookwhere.protocol import (
    DriftCheck,
    FixationRecord,
    GazeSample,
    MicAudio,
    MicLevel,
    Record,
    SessionStart,
    TrialEnd,
    TrialQualityRecord,
    TrialStart,
)
from server.review import Envelope, envelope

if TYPE_CHECKING:
    from analysis.voice.recordings import AudioTrial

__all__ = [
    "CACHED_SESSIONS",
    "ReplayAudio",
    "ReplayLibrary",
    "ReplaySession",
    "ReplaySessions",
    "ReplayTrial",
    "ReplayUtterance",
    "TrialEntry",
    "read_trial",
]

logger = logging.getLogger(__name__)

#: Sessions whose records are kept in memory (the live one and the last replayed, say).
CACHED_SESSIONS = 3
_CACHED_DETECTIONS = 256  # recordings' voice onsets kept (a 5 s trial's detection takes ~0.5 s)

#: Where a replayed trial's audio comes from.
AudioSource = Literal["stream", "session folder"]
#: Looks up the WAV of a trial of a session in the session folders the server knows (or None).
RecordingLookup = Callable[[str, int], "AudioTrial | None"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class TrialEntry(_Model):
    """A trial of a session: its image, and whether its (last) run ended or was aborted."""

    trial: int
    image: str
    ended: bool
    aborted: bool


class ReplaySession(_Model):
    session: str
    participant: str
    tracker: str
    wall_time_s: float
    trials: list[TrialEntry]


class ReplaySessions(_Model):
    """``GET /api/replay/sessions``: the sessions the server holds, newest first."""

    sessions: list[ReplaySession]


class GazeTrace(_Model):
    """The streamed gaze samples, columns of one length: ms from the onset, image pixels (origin
    top-left; None: no position), pupil (tracker units; None where the task did not stream it)."""

    t_ms: list[float]
    x_image_px: list[float | None]
    y_image_px: list[float | None]
    pupil: list[float | None]


class ReplayFixation(_Model):
    """One fixation: start and end in ms from the onset, its mean position in image pixels."""

    start_ms: float
    end_ms: float
    duration_ms: float
    x_image_px: float
    y_image_px: float
    eye: str


class MicTrace(_Model):
    """Microphone level per block: ms from the onset, RMS in dBFS (None: digital silence)."""

    t_ms: list[float]
    rms_dbfs: list[float | None]


class ReplayUtterance(_Model):
    """A voice onset and offset, ms from the image onset; ``confidence`` as the detector's."""

    onset_ms: float
    offset_ms: float
    confidence: float


class ReplayAudio(_Model):
    """The trial's recording: where it comes from, its first sample's time (ms from the image
    onset), length and rate, its waveform (:func:`server.review.envelope`, full scale ±1) and the
    voice onsets the detector (``detector``: its method and options, or ``none: <why>``) found."""

    source: AudioSource
    offset_ms: float
    duration_ms: float
    rate_hz: int
    envelope: Envelope
    utterances: list[ReplayUtterance]
    detector: str


class ReplayTrial(_Model):
    """``GET /api/replay/sessions/{session}/trials/{trial}``: one trial, everything the page draws.

    ``shown_ms``: onset to offset (None while the trial runs); ``drift`` and ``quality`` the
    trial's drift check and track loss (None: not streamed); ``audio`` its recording (None:
    ``no_audio`` says why)."""

    session: str
    participant: str
    trial: int
    image: str
    image_width_px: int
    image_height_px: int
    stimulus_duration_ms: float
    shown_ms: float | None
    ended: bool
    aborted: bool
    gaze: GazeTrace
    fixations: list[ReplayFixation]
    mic: MicTrace
    drift: dict[str, float | str | int | None] | None
    quality: dict[str, float | int | None] | None
    notes: list[OperatorNote]
    audio: ReplayAudio | None = None
    no_audio: str | None = None


@dataclass
class _Run:
    """The records of one run of a trial, from its ``trial_start``."""

    start: TrialStart
    end: TrialEnd | None = None
    quality: TrialQualityRecord | None = None
    gaze: list[GazeSample] = field(default_factory=list)
    fixations: list[FixationRecord] = field(default_factory=list)
    mic: list[MicLevel] = field(default_factory=list)
    audio: list[MicAudio] = field(default_factory=list)


_RUN_LISTS = {"gaze": "gaze", "fixation": "fixations", "mic_level": "mic", "mic_audio": "audio"}  # kind → _Run list
_RUN_LAST = {"trial_end": "end", "trial_quality": "quality"}  # record kind → _Run field


def _last_run(records: list[Record], trial: int) -> tuple[str, _Run | None, DriftCheck | None]:
    """The participant, the last run of ``trial`` (None: it never started) and its drift check."""
    participant, run, drift = "", None, None
    for record in records:
        if isinstance(record, SessionStart):
            participant = record.participant
        elif getattr(record, "trial", None) != trial:
            continue
        elif isinstance(record, TrialStart):  # a new run: the earlier one's data is void
            run = _Run(record)
        elif isinstance(record, DriftCheck):  # it comes before its run's start
            drift = record
        elif run is not None and record.kind in _RUN_LISTS:
            getattr(run, _RUN_LISTS[record.kind]).append(record)
        elif run is not None and record.kind in _RUN_LAST:
            setattr(run, _RUN_LAST[record.kind], record)
    return participant, run, drift


def read_trial(records: list[Record], trial: int) -> ReplayTrial:
    """The replay of ``trial`` from a session's records (in ``seq`` order).

    Raises
    ------
    KeyError
        The session has no such trial.
    """
    participant, run, drift = _last_run(records, trial)
    if run is None:
        raise KeyError(f"trial {trial + 1} (index {trial}) has not started in this session")
    return _replay(participant, run, drift)


def _replay(participant: str, run: _Run, drift: DriftCheck | None) -> ReplayTrial:
    """The replay of one run of a trial (without its audio)."""
    trial = run.start.trial
    start, end, quality, gaze, mic = run.start, run.end, run.quality, run.gaze, run.mic
    onset = start.onset_session_ms
    x, y = start.geometry().display_to_image([g.x_display_px for g in gaze], [g.y_display_px for g in gaze])
    return ReplayTrial(
        session=start.session,
        participant=participant,
        trial=trial,
        image=start.image,
        image_width_px=start.image_width_px,
        image_height_px=start.image_height_px,
        stimulus_duration_ms=start.stimulus_duration_ms,
        shown_ms=None if end is None else end.offset_session_ms - onset,
        ended=end is not None,
        aborted=end is not None and end.aborted,
        gaze=GazeTrace(
            t_ms=[g.t_session_ms - onset for g in gaze],
            x_image_px=[_finite(float(v)) for v in x],
            y_image_px=[_finite(float(v)) for v in y],
            pupil=[_finite(g.pupil) for g in gaze],
        ),
        fixations=[
            ReplayFixation(
                start_ms=f.start_ms,
                end_ms=f.end_ms,
                duration_ms=f.duration_ms,
                x_image_px=f.x_image_px,
                y_image_px=f.y_image_px,
                eye=f.eye,
            )
            for f in run.fixations
        ],
        mic=MicTrace(t_ms=[m.t_session_ms - onset for m in mic], rms_dbfs=[_finite(m.rms_dbfs) for m in mic]),
        drift=None
        if drift is None
        else {"offset_deg": _finite(drift.offset_deg), "outcome": drift.outcome, "attempts": drift.attempts},
        quality=None
        if quality is None
        else {
            "samples": quality.samples,
            "track_loss": _finite(quality.track_loss),
            "blinks": quality.blinks,
            "mean_pupil": _finite(quality.mean_pupil),
        },
        notes=[],
    )


def _session_entry(records: list[Record]) -> ReplaySession | None:
    """The session and its trials (None before its ``session_start``)."""
    start = next((r for r in records if isinstance(r, SessionStart)), None)
    if start is None:
        return None
    trials: dict[int, TrialEntry] = {}
    for record in records:
        if isinstance(record, TrialStart):
            trials[record.trial] = TrialEntry(trial=record.trial, image=record.image, ended=False, aborted=False)
        elif isinstance(record, TrialEnd) and record.trial in trials:
            trials[record.trial] = trials[record.trial].model_copy(update={"ended": True, "aborted": record.aborted})
    return ReplaySession(
        session=start.session,
        participant=start.participant,
        tracker=start.tracker,
        wall_time_s=start.wall_time_s,
        trials=[trials[trial] for trial in sorted(trials)],
    )


@dataclass(frozen=True)
class _Journal:
    """A session's records read so far: ``size`` bytes of its journal (the next record's offset),
    its ``mic_audio`` records without their samples, which lie at ``audio_at[seq]`` (start, end
    bytes) in the file."""

    size: int
    records: list[Record]
    audio_at: dict[int, tuple[int, int]]


@dataclass(frozen=True)
class _Recording:
    """A trial's audio: mono float32 samples (full scale ±1), their rate, the first one's time
    from the image onset, and ``key``, which names this recording at this length (for the caches)."""

    source: AudioSource
    samples: np.ndarray
    rate_hz: int
    offset_ms: float
    key: tuple
    file: Path | None = None  # the session folder's WAV


class ReplayLibrary:
    """The sessions under ``<data_dir>/stream``, read from their journals (see the module notes on
    what is kept in memory).

    Parameters
    ----------
    data_dir : str or Path
        The server's data folder (``lookwhere serve --data``).
    voice_params : VoiceParams
        The voice detector's options (``lookwhere analyze``'s defaults).

    Notes
    -----
    Thread-safe: the routes call it from a thread pool. Journals are read outside the lock (two
    threads may read the same records once each: harmless).
    """

    def __init__(self, data_dir: str | Path, *, voice_params: VoiceParams = VoiceParams()) -> None:
        self.folder = Path(data_dir) / "stream"
        self.voice_params = voice_params
        self._lock = threading.Lock()
        self._journals: OrderedDict[str, _Journal] = OrderedDict()  # the CACHED_SESSIONS used last
        self._entries: dict[str, tuple[int, ReplaySession | None]] = {}  # session → (bytes read, its entry)
        self._detections: OrderedDict[tuple, tuple[list[ReplayUtterance], str]] = OrderedDict()

    def _path(self, session: str) -> Path:
        try:
            name = str(uuid.UUID(session))
        except ValueError:
            raise KeyError(f"no session {session!r}: session ids are UUIDs") from None
        path = self.folder / f"{name}.msgpack"
        if not path.is_file():
            raise KeyError(f"no session {session} in {self.folder}")
        return path

    def _journal(self, session: str, *, keep: bool = True) -> _Journal:
        """The session's records, read on from where they were last read when the journal grew;
        ``keep``: kept among the :data:`CACHED_SESSIONS` (else only when they were already)."""
        path = self._path(session)
        size = path.stat().st_size
        with self._lock:
            held = self._journals.get(session)
            if held is not None:
                self._journals.move_to_end(session)
                if held.size >= size:
                    return held
        records = [] if held is None else list(held.records)
        audio_at = {} if held is None else dict(held.audio_at)
        offset = 0 if held is None else held.size
        # a record being appended meanwhile is cut off by read_journal, and read next time
        for end, data in protocol.read_journal(path, start=offset):
            record = protocol.validate_map(data)
            if isinstance(record, MicAudio):  # ~88 KB/s of samples: read again when asked for
                audio_at[record.seq] = (offset, end)
                record = replace(record, pcm=b"")
            records.append(record)
            offset = end
        journal = _Journal(offset, records, audio_at)
        with self._lock:
            if keep or session in self._journals:
                self._journals[session] = journal
                self._journals.move_to_end(session)
                while len(self._journals) > CACHED_SESSIONS:
                    self._journals.popitem(last=False)
        return journal

    @property
    def held(self) -> list[str]:
        """The sessions whose records are in memory, least recently used first."""
        with self._lock:
            return list(self._journals)

    def records(self, session: str) -> list[Record]:
        """The session's records (KeyError: none held); ``mic_audio`` records without their samples."""
        return self._journal(session).records

    def sessions(self) -> ReplaySessions:
        """Every session with a ``session_start``, newest first."""
        entries = []
        for path in self.folder.glob("*.msgpack"):
            size = path.stat().st_size
            with self._lock:
                read, entry = self._entries.get(path.stem, (-1, None))
            if read < size:  # a session not listed yet, or one that grew
                journal = self._journal(path.stem, keep=False)  # listing does not push replayed sessions out
                entry = _session_entry(journal.records)
                with self._lock:
                    self._entries[path.stem] = (journal.size, entry)
            if entry is not None:
                entries.append(entry)
        return ReplaySessions(sessions=sorted(entries, key=lambda entry: entry.wall_time_s, reverse=True))

    def trial(
        self,
        session: str,
        trial: int,
        *,
        notes: Sequence[OperatorNote] = (),
        recordings: RecordingLookup | None = None,
    ) -> ReplayTrial:
        """One trial's replay, with the experimenter's notes on it and its audio (the streamed
        recording, else the session folder's WAV that ``recordings`` finds).

        Raises
        ------
        KeyError
            No such session or trial.
        """
        participant, run, drift = self._run(session, trial)
        replay = _replay(participant, run, drift)
        recording, why = self._recording(session, run, recordings)
        update: dict = {"notes": [note for note in notes if note.trial == trial], "no_audio": why}
        if recording is not None:
            utterances, detector = self._utterances(recording)
            update["audio"] = ReplayAudio(
                source=recording.source,
                offset_ms=recording.offset_ms,
                duration_ms=recording.samples.size * 1000.0 / recording.rate_hz,
                rate_hz=recording.rate_hz,
                envelope=envelope(recording.samples, recording.rate_hz),
                utterances=utterances,
                detector=detector,
            )
        return replay.model_copy(update=update)

    def wav(self, session: str, trial: int, *, recordings: RecordingLookup | None = None) -> bytes | Path:
        """The trial's audio for playback: the streamed samples as a 16-bit WAV, or the session
        folder's WAV file.

        Raises
        ------
        KeyError
            No such session or trial, or the trial has no audio.
        """
        _, run, _ = self._run(session, trial)
        recording, why = self._recording(session, run, recordings)
        if recording is None:
            raise KeyError(f"trial {trial + 1} has no audio: {why}")
        if recording.file is not None:
            return recording.file
        return _wav_bytes(recording.samples, recording.rate_hz)

    def _run(self, session: str, trial: int) -> tuple[str, _Run, DriftCheck | None]:
        participant, run, drift = _last_run(self.records(session), trial)
        if run is None:
            raise KeyError(f"trial {trial + 1} (index {trial}) has not started in session {session}")
        return participant, run, drift

    def _recording(
        self, session: str, run: _Run, recordings: RecordingLookup | None
    ) -> tuple[_Recording | None, str | None]:
        """The run's audio, and why there is none (None when there is)."""
        if run.audio:
            return self._streamed(session, run.audio), None
        if recordings is not None:
            found = recordings(session, run.start.trial)
            if found is not None:
                from analysis.voice.recordings import read_wav

                samples, rate_hz = read_wav(found.file)
                stat = found.file.stat()
                key = ("file", str(found.file), stat.st_size, stat.st_mtime_ns)
                return _Recording("session folder", samples, rate_hz, found.offset_ms, key, found.file), None
        return None, (
            "the task streamed no audio for this trial, and no session folder the server knows "
            "(lookwhere serve --sessions) holds its recording"
        )

    def _streamed(self, session: str, audio: list[MicAudio]) -> _Recording:
        """The run's streamed recording: its records' samples read from the journal, from the
        first on while they follow each other (they always do, the stream being gap-free)."""
        at = self._journal(session).audio_at
        chunks: list[bytes] = []
        n_samples = 0
        with open(self._path(session), "rb") as file:
            for record in audio:
                if record.first_sample != n_samples:
                    logger.warning(
                        "session %s trial %d: mic_audio seq %d starts at sample %d, not %d; the audio stops there",
                        session,
                        record.trial,
                        record.seq,
                        record.first_sample,
                        n_samples,
                    )
                    break
                start, end = at[record.seq]
                file.seek(start)
                full = cast(MicAudio, protocol.validate_map(msgpack.unpackb(file.read(end - start), raw=False)))
                chunks.append(full.pcm)
                n_samples += len(full.pcm) // 2
        first = audio[0]
        samples = np.frombuffer(b"".join(chunks), "<i2").astype(np.float32) / 32768.0
        key = ("stream", session, first.seq, n_samples)
        return _Recording("stream", samples, first.rate_hz, first.mic_offset_ms, key)

    def _utterances(self, recording: _Recording) -> tuple[list[ReplayUtterance], str]:
        """The voice onsets of a recording (ms from the image onset) and the detector that found
        them; cached per recording and length."""
        with self._lock:
            cached = self._detections.get(recording.key)
            if cached is not None:
                self._detections.move_to_end(recording.key)
                return cached
        from analysis.voice.detect import detect_utterances

        params = self.voice_params
        try:
            found = detect_utterances(recording.samples, recording.rate_hz, params=params)
        except ImportError as error:  # the Silero package is absent: no onsets, and why
            return [], f"none: {error}"
        result = (
            [
                ReplayUtterance(
                    onset_ms=recording.offset_ms + u.onset_ms,
                    offset_ms=recording.offset_ms + u.offset_ms,
                    confidence=u.confidence,
                )
                for u in found
            ],
            f"{params.method} (threshold {params.threshold}, min speech {params.min_speech_ms:g} ms)",
        )
        with self._lock:
            self._detections[recording.key] = result
            while len(self._detections) > _CACHED_DETECTIONS:
                self._detections.popitem(last=False)
        return result


def _wav_bytes(samples: np.ndarray, rate_hz: int) -> bytes:
    """A mono 16-bit WAV file of ``samples`` (float, full scale ±1)."""
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()
