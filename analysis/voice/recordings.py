"""The per-trial recordings of naming sessions, and their utterances in image-relative time.

``lookwhere run`` writes one WAV per trial into the session's ``audio/`` folder and a row per trial
into ``trials.jsonl`` with ``mic_file`` (the WAV, relative to the session folder) and
``mic_offset_ms``: the time of the WAV's first sample minus the image onset (see
:meth:`experiment.microphone.Microphone.save`). So a time ``t`` ms into the WAV is
``t + mic_offset_ms`` ms after the image onset, the clock of the fixation table.

A WAV found outside a session folder (or not listed in its ``trials.jsonl``) has no recorded
offset: its times stay relative to its first sample (``aligned`` is False), and its trial and image
come from the task's file name ``trial<index>_<image>.wav`` when it has that form.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.voice.detect import VoiceParams, detect_utterances
from lookwhere.records import read_trial_rows

__all__ = [
    "AudioTrial",
    "UTTERANCE_COLUMNS",
    "audio_trials",
    "read_wav",
    "detect_trials",
    "empty_utterance_table",
    "find_utterances",
    "session_classes",
]

logger = logging.getLogger(__name__)

#: Columns of the utterance table, in order (times in ms from image onset).
UTTERANCE_COLUMNS = (
    "file",
    "participant",
    "session",
    "trial",
    "image",
    "utterance",
    "onset_ms",
    "offset_ms",
    "confidence",
    "method",
    "aligned",
)
_DTYPES = {
    "file": "string",
    "participant": "string",
    "session": "string",
    "trial": "int64",
    "image": "string",
    "utterance": "int64",
    "onset_ms": "float64",
    "offset_ms": "float64",
    "confidence": "float64",
    "method": "string",
    "aligned": "bool",
}
_TASK_WAV = re.compile(r"^trial(?P<trial>\d+)_(?P<image>.+)$")


@dataclass(frozen=True)
class AudioTrial:
    """One trial's recording and where it sits in time.

    Attributes
    ----------
    file : Path
        The WAV.
    participant, session : str
        From the session's ``config.json``; ``""`` outside a session.
    trial : int
        Trial index; -1 when unknown.
    image : str
        Image id; ``""`` when unknown.
    offset_ms : float
        Time of the WAV's first sample after the image onset (0 when not recorded).
    aligned : bool
        Whether ``offset_ms`` was recorded, i.e. the times are image-relative.
    """

    file: Path
    participant: str = ""
    session: str = ""
    trial: int = -1
    image: str = ""
    offset_ms: float = 0.0
    aligned: bool = False


def audio_trials(paths: Iterable) -> list[AudioTrial]:
    """The recordings at ``paths``: WAV files, folders of WAVs, session folders or folders of sessions.

    A session folder holds ``trials.jsonl``; its trials with a ``mic_file`` are listed in trial
    order. A WAV inside a session's ``audio/`` folder (given directly or through its folder) gets
    that session's row for it.

    Raises
    ------
    FileNotFoundError
        When a path does not exist, or when nothing at all was found.
    """
    found: dict[Path, AudioTrial] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; pass WAV files, audio folders or session folders")
        for trial in _trials_at(path):
            found.setdefault(trial.file.resolve(), trial)
    if not found:
        listed = ", ".join(str(p) for p in paths)
        raise FileNotFoundError(
            f"no recordings in {listed}: expected .wav files, or session folders (trials.jsonl "
            "with mic_file rows, as lookwhere run writes)"
        )
    return list(found.values())


def _trials_at(path: Path) -> list[AudioTrial]:
    if path.is_file():
        return [_wav_trial(path)]
    if (path / "trials.jsonl").is_file():
        return _session_trials(path)
    sessions = sorted(p.parent for p in path.glob("*/trials.jsonl"))
    if sessions:
        return [trial for session in sessions for trial in _session_trials(session)]
    return [_wav_trial(wav) for wav in sorted(path.glob("*.wav")) + sorted(path.glob("*.WAV"))]


def _session_ids(folder: Path) -> tuple[str, str]:
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    return str(config.get("participant") or folder.name), str(config.get("session_id") or folder.name)


def _session_trials(folder: Path) -> list[AudioTrial]:
    participant, session = _session_ids(folder)
    trials = []
    for row in read_trial_rows(folder):  # the last run of a trial run again
        if not row.get("mic_file"):
            continue
        file = folder / row["mic_file"]
        if not file.is_file():
            logger.warning("%s: trial %s lists %s, which is missing; left out", folder, row.get("trial"), file)
            continue
        offset = row.get("mic_offset_ms")
        trials.append(
            AudioTrial(
                file,
                participant,
                session,
                int(row["trial"]),
                str(row["image"]),
                float(offset or 0.0),
                offset is not None,
            )
        )
    return trials


def _wav_trial(path: Path) -> AudioTrial:
    session = path.parent.parent
    if (session / "trials.jsonl").is_file():
        for trial in _session_trials(session):
            if trial.file.resolve() == path.resolve():
                return trial
    match = _TASK_WAV.match(path.stem)
    if match is None:
        return AudioTrial(path)
    return AudioTrial(path, trial=int(match["trial"]), image=match["image"])


def read_wav(path) -> tuple[np.ndarray, int]:
    """The samples of a WAV file as mono float32 in [-1, 1], and its rate.

    Integer PCM is scaled by its full scale; several channels are averaged.

    Raises
    ------
    ValueError
        When the file is not a readable WAV (the message names it).
    """
    from scipy.io import wavfile

    try:
        rate_hz, data = wavfile.read(path)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path} is not a readable WAV file: {error}") from error
    if data.dtype == np.uint8:  # 8-bit WAV is offset binary
        data = (data.astype(np.float32) - 128) / 128
    elif np.issubdtype(data.dtype, np.integer):  # 24-bit arrives left-justified in int32
        data = data.astype(np.float32) / -float(np.iinfo(data.dtype).min)
    data = data.astype(np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)
    return data, int(rate_hz)


def empty_utterance_table() -> pd.DataFrame:
    """An utterance table with no rows."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in _DTYPES.items()})


def detect_trials(
    trials: Iterable[AudioTrial], *, params: VoiceParams = VoiceParams(), progress: bool = False
) -> pd.DataFrame:
    """Every utterance of every recording, in image-relative time.

    Parameters
    ----------
    trials : iterable of AudioTrial
        From :func:`audio_trials`.
    params : VoiceParams
        Detector options.
    progress : bool
        Show a progress bar.

    Returns
    -------
    DataFrame
        One row per utterance, columns :data:`UTTERANCE_COLUMNS`: ``utterance`` numbers them 1, 2, …
        within the trial; ``onset_ms``/``offset_ms`` are ms from the image onset (from the WAV's
        first sample when ``aligned`` is False); ``confidence`` in [0, 1] (see
        :class:`~analysis.voice.detect.Utterance`). A trial without speech has no row.

    Raises
    ------
    ValueError
        When a WAV cannot be read.
    """
    from tqdm.auto import tqdm

    trials = list(trials)
    rows = []
    for trial in tqdm(trials, desc="finding utterances", unit="trial", disable=not progress):
        samples, rate_hz = read_wav(trial.file)
        for number, utterance in enumerate(detect_utterances(samples, rate_hz, params=params), 1):
            rows.append(
                {
                    "file": str(trial.file),
                    "participant": trial.participant,
                    "session": trial.session,
                    "trial": trial.trial,
                    "image": trial.image,
                    "utterance": number,
                    "onset_ms": utterance.onset_ms + trial.offset_ms,
                    "offset_ms": utterance.offset_ms + trial.offset_ms,
                    "confidence": utterance.confidence,
                    "method": params.method,
                    "aligned": trial.aligned,
                }
            )
    if not rows:
        return empty_utterance_table()
    return pd.DataFrame(rows, columns=list(UTTERANCE_COLUMNS)).astype(_DTYPES)


def find_utterances(
    paths: Iterable,
    *,
    params: VoiceParams = VoiceParams(),
    names: bool = True,
    synonyms=None,
    stimuli=None,
    progress: bool = False,
) -> pd.DataFrame:
    """Every utterance in the recordings at ``paths``, with its name when ``names``.

    Parameters
    ----------
    paths : iterable of path
        WAV files, audio folders, session folders or folders of sessions (:func:`audio_trials`).
    params : VoiceParams
        Detector options.
    names : bool
        Recognise the name of each utterance (:mod:`analysis.voice.names`).
    synonyms : path, optional
        Synonyms file (default: the VOC classes' list).
    stimuli : path, optional
        Stimulus folder whose ``manifest.csv`` gives each image's classes; default: each session's
        own (``config.json``), when it has a manifest.

    Returns
    -------
    DataFrame
        :data:`UTTERANCE_COLUMNS`, plus ``word``, ``name_class``, ``name_score`` when ``names``.
    """
    trials = audio_trials(paths)
    table = detect_trials(trials, params=params, progress=progress)
    if not names:
        return table
    from analysis.voice.names import image_classes, read_synonyms, recognise_names

    classes_of = image_classes(stimuli) if stimuli is not None else session_classes(trials)
    return recognise_names(
        table,
        trials,
        classes_of=classes_of,
        synonyms=read_synonyms() if synonyms is None else read_synonyms(synonyms),
        progress=progress,
    )


def session_classes(trials: Iterable[AudioTrial]) -> dict[str, tuple[str, ...]]:
    """Image classes from the manifest of each session's stimulus folder (``config.json``)."""
    from analysis.voice.names import image_classes

    classes: dict[str, tuple[str, ...]] = {}
    for config in {trial.file.parent.parent / "config.json" for trial in trials}:
        if config.is_file():
            stimuli = json.loads(config.read_text(encoding="utf-8")).get("stimuli")
            if stimuli and Path(stimuli).is_dir():
                classes.update(image_classes(stimuli))
    return classes
