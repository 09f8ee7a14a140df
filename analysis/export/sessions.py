"""One recorded session as the tables an export writes: per recording segment, each eye's samples
and events on the tracker clock, and the trials.

A session folder (``lookwhere run``'s ``OUT/<participant>/``) holds two records of the eyes; the
export takes, per session, the first that is there:

1. the tracker's file, ``<edf_name>.edf`` for each recording segment (or its ``edf2asc``
   conversion; :func:`analysis.readers.session_edf.session_edfs`), read with
   :func:`analysis.readers.eyelink.read_recording`: every sample at the tracker's rate, each eye's
   fixations, saccades and blinks with their positions, and every message;
2. the link record: the gaze samples the task streamed (one per display frame while an image was
   up; ``stream.journal`` holds them when the session ran with ``--server``), the fixations of
   ``fixations.csv`` and the image onsets and offsets of ``trials.jsonl`` as the task's
   ``IMAGE_ONSET``/``IMAGE_OFFSET`` messages. The link carries no saccades or blinks.

A session with neither keeps its trials only (:attr:`Segment.source` ``"none"``).

Times stay on the tracker clock, in ms; positions are display pixels, origin at the screen's
top-left corner (:mod:`lookwhere.records`). The writer converts units once, at its boundary.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import numpy as np
import pandas as pd

from analysis.readers.calibration import calibration_tables, last_validation
from analysis.readers.eyelink import EyeLinkDataWarning, EyeLinkRecording, read_recording
from analysis.readers.session_edf import session_edfs
from lookwhere import protocol
from lookwhere.records import SESSION_FIXATIONS_FILE, read_fixation_csv, read_trial_rows
from stimuli.viewing import LAB_SCREEN_WIDTH_CM, LAB_VIEWING_DISTANCE_CM

__all__ = ["EVENT_COLUMNS", "EyeRecord", "Screen", "Segment", "SessionData", "read_session_data", "session_folders"]

logger = logging.getLogger(__name__)

#: Columns of :attr:`EyeRecord.events`: ``onset_tracker_ms`` (tracker clock), ``duration_ms`` (NaN
#: for a message), ``trial_type`` (``"fixation"``, ``"saccade"``, ``"blink"``; ``""`` for a
#: message), ``message`` (``""`` for an eye event), ``trial`` (the session's trial index, NaN outside
#: trials), ``x_px``/``y_px`` (a fixation's mean position, a saccade's start), ``x_end_px``/
#: ``y_end_px`` (a saccade's end), ``pupil`` (a fixation's mean pupil, tracker units); NaN where
#: they do not apply.
EVENT_COLUMNS = (
    "onset_tracker_ms",
    "duration_ms",
    "trial_type",
    "message",
    "trial",
    "x_px",
    "y_px",
    "x_end_px",
    "y_end_px",
    "pupil",
)
_EYES: dict[str, Literal["left", "right"]] = {"L": "left", "R": "right"}
_JOURNAL = "stream.journal"  # experiment.stream.JOURNAL_NAME (analysis does not import experiment)


@dataclass(frozen=True)
class EyeRecord:
    """One eye's data in one recording segment.

    Attributes
    ----------
    eye : {"left", "right"}
    samples : DataFrame
        ``t_tracker_ms``, ``x_px``, ``y_px`` (display pixels), ``pupil`` (tracker units), one row
        per sample in time order; NaN where the tracker lost the eye.
    events : DataFrame
        :data:`EVENT_COLUMNS`, in onset order; the messages are every eye's.
    calibration : dict
        BIDS sidecar fields of this eye's validations (``CalibrationCount``,
        ``AverageCalibrationError``, ``MaximalCalibrationError`` in degrees, ``CalibrationType``);
        empty when none was recorded.
    """

    eye: Literal["left", "right"]
    samples: pd.DataFrame
    events: pd.DataFrame
    calibration: dict


@dataclass(frozen=True)
class Segment:
    """One recording segment of a session: the first run, or one ``--resume``.

    Attributes
    ----------
    number : int
        The segment's number in ``manifest.json`` (0 for the first run).
    source : {"edf", "link", "none"}
        Where the samples and events come from (see the module docstring).
    trials : DataFrame
        The segment's completed, shown trials in order: ``trial``, ``image``, ``onset_tracker_ms``,
        ``duration_ms`` (measured display time), ``mic_file`` (relative to the session folder,
        ``""`` without audio).
    eyes : tuple of EyeRecord
        Left before right; empty for ``source == "none"``.
    sample_rate_hz : float or None
        The tracker's rate (EDF), or the median rate of the streamed gaze (link: one sample per
        display frame, not evenly spaced).
    device : dict
        BIDS sidecar fields naming the tracker (``Manufacturer``, ``ManufacturersModelName``, …).
    pupil_measure : str
        What the samples' and fixations' ``pupil`` is: ``"area"``, ``"diameter"``, ``""`` unknown.
    """

    number: int
    source: Literal["edf", "link", "none"]
    trials: pd.DataFrame
    eyes: tuple[EyeRecord, ...]
    sample_rate_hz: float | None
    device: dict
    pupil_measure: str = ""


@dataclass(frozen=True)
class Screen:
    """The screen a session showed its images on (``config.json``).

    Attributes
    ----------
    width_px, height_px : int
        Resolution.
    width_cm : float
        Visible width; the height follows from the resolution (square pixels).
    distance_cm : float
        Eye to screen.
    defaults : tuple of str
        Which of ``screen_width_cm``, ``viewing_distance_cm`` are the lab's defaults, not measured
        (the session's ``viewing_defaults``, or absent from an older ``config.json``).
    refresh_hz : float or None
        The nominal refresh rate.
    """

    width_px: int
    height_px: int
    width_cm: float
    distance_cm: float
    defaults: tuple[str, ...] = ()
    refresh_hz: float | None = None

    @property
    def height_cm(self) -> float:
        return self.width_cm * self.height_px / self.width_px


@dataclass(frozen=True)
class SessionData:
    """A session folder read for export: who, on which screen, and its segments (``config`` as written)."""

    folder: Path
    participant: str
    session_id: str
    config: dict
    screen: Screen
    segments: tuple[Segment, ...]

    @property
    def images(self) -> list[str]:
        """The images shown, in order of first showing."""
        shown = pd.concat([segment.trials["image"] for segment in self.segments])
        return list(dict.fromkeys(shown))


def session_folders(path) -> list[Path]:
    """The session folder at ``path``, or every session folder in it (sorted).

    A session folder holds ``config.json`` or ``trials.jsonl`` (one without ``config.json`` is
    listed, and reported when read). Other sub-folders (say, a stimulus folder) are ignored.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist or holds no session.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"--sessions {path} is not a folder; pass the --out folder of lookwhere run")
    if _is_session(path):
        return [path]
    folders = sorted(folder for folder in path.iterdir() if folder.is_dir() and _is_session(folder))
    if not folders:
        raise FileNotFoundError(
            f"no session in {path}: expected config.json and trials.jsonl there or in its sub-folders "
            "(the folders lookwhere run writes)"
        )
    return folders


def _is_session(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / "trials.jsonl").is_file()


def read_session_data(folder) -> SessionData:
    """Read one session folder for export (see the module docstring for the sources).

    Raises
    ------
    FileNotFoundError
        When ``config.json`` is missing.
    ValueError
        When the session has no completed trial, a trial row lacks its onset, or the tracker file
        cannot be read or is not in screen pixels; the message names the file and what to do.
    """
    folder = Path(folder)
    config = _read_json(folder / "config.json")
    manifest = _read_json(folder / "manifest.json") if (folder / "manifest.json").is_file() else {}
    screen = _screen(config, folder)
    trials = _trial_table(folder)
    participant = str(config.get("participant") or folder.name)
    session_id = str(config.get("session_id") or folder.name)
    numbers = sorted(trials["segment"].unique())
    manifest_segments = {int(s.get("segment", n)): s for n, s in enumerate(manifest.get("segments", []))}
    edfs = session_edfs(folder)
    if edfs:
        by_number = dict(zip(manifest_segments, edfs))
        unknown = [str(n) for n in numbers if n not in by_number]
        if unknown:
            raise ValueError(
                f"{folder / 'trials.jsonl'} has trials of segment {', '.join(unknown)}, which manifest.json does "
                "not list: the files do not belong together; restore the session's own manifest"
            )
        segments = [_edf_segment(n, by_number[n], trials, participant) for n in numbers]
    else:
        gaze = _journal_gaze(folder, trials)
        fixations = _link_fixations(folder)
        segments = [_link_segment(n, manifest_segments.get(n, {}), trials, gaze, fixations, config) for n in numbers]
    return SessionData(folder, participant, session_id, config, screen, tuple(segments))


def _screen(config: dict, folder: Path) -> Screen:
    missing = [name for name in ("screen_width_px", "screen_height_px") if not config.get(name)]
    if missing:
        raise ValueError(
            f"{folder / 'config.json'} lacks {', '.join(missing)}: the screen's resolution is needed for gaze "
            "on the screen; add it as the session ran (lookwhere run --screen)"
        )
    lab = {"screen_width_cm": LAB_SCREEN_WIDTH_CM, "viewing_distance_cm": LAB_VIEWING_DISTANCE_CM}
    absent = tuple(name for name in lab if config.get(name) is None)
    return Screen(
        width_px=int(config["screen_width_px"]),
        height_px=int(config["screen_height_px"]),
        width_cm=float(config.get("screen_width_cm") or lab["screen_width_cm"]),
        distance_cm=float(config.get("viewing_distance_cm") or lab["viewing_distance_cm"]),
        defaults=tuple(dict.fromkeys([*config.get("viewing_defaults", ()), *absent])),
        refresh_hz=float(config["refresh_hz"]) if config.get("refresh_hz") else None,
    )


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: is {path.parent} a session folder of lookwhere run?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); restore it from a backup of the session") from None


def _trial_table(folder: Path) -> pd.DataFrame:
    """The shown trials of ``trials.jsonl`` (skipped ones left out), one row each."""
    rows = read_trial_rows(folder)
    if not rows:
        raise ValueError(f"{folder / 'trials.jsonl'} holds no completed trial: nothing to export from {folder}")
    table = []
    for row in rows:
        missing = [name for name in ("image", "onset_tracker_ms", "stimulus_duration_ms") if row.get(name) is None]
        if missing:
            raise ValueError(
                f"{folder / 'trials.jsonl'}: trial {row.get('trial')} lacks {', '.join(missing)}; "
                "the file was not written by lookwhere run (or was edited)"
            )
        table.append(
            {
                "trial": int(row["trial"]),
                "segment": int(row.get("segment", 0)),
                "image": str(row["image"]),
                "onset_tracker_ms": float(row["onset_tracker_ms"]),
                "duration_ms": float(row["stimulus_duration_ms"]),
                "mic_file": row.get("mic_file") or "",
            }
        )
    return pd.DataFrame(table)


def _events(**columns) -> pd.DataFrame:
    """An :data:`EVENT_COLUMNS` table from the given columns (the others NaN or ``""``)."""
    n = len(next(iter(columns.values())))
    table = {
        name: columns.get(name, np.full(n, "" if name in ("trial_type", "message") else np.nan, dtype=object))
        for name in EVENT_COLUMNS
    }
    frame = pd.DataFrame(table)
    for name in EVENT_COLUMNS:
        if name not in ("trial_type", "message"):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        else:
            frame[name] = frame[name].astype(str)
    return frame


def _sorted_events(tables: list[pd.DataFrame]) -> pd.DataFrame:
    # mergesort is stable: events at one time keep the order fixation, saccade, blink, message
    events = pd.concat([t for t in tables if len(t)] or [_events(onset_tracker_ms=[])], ignore_index=True)
    return events.sort_values("onset_tracker_ms", kind="mergesort", ignore_index=True)


# --- the tracker's file -------------------------------------------------------------------------------


def _edf_segment(number: int, path: Path, trials: pd.DataFrame, participant: str) -> Segment:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EyeLinkDataWarning)
        recording = read_recording(path, participant=participant, samples=True)
    for warning in caught:  # poor trial markers do not matter to the export: every event is kept
        logger.info("%s", warning.message)
    if recording.units != "GAZE":
        raise ValueError(
            f"{path} records positions in {recording.units or 'unknown'} units, not screen pixels (GAZE): "
            "the export writes gaze on the screen only; record with the tracker's gaze (screen) coordinates"
        )
    # The session's trial index is the TRIALID number; the reader counts trial blocks from 0.
    trial_of = dict(zip(recording.trials["trial"], pd.to_numeric(recording.trials["trial_id"], errors="coerce")))
    messages = recording.messages
    message_events = _events(
        onset_tracker_ms=messages["time_tracker_ms"].to_numpy(),
        message=messages["text"].to_numpy(),
        trial=messages["trial"].map(trial_of).to_numpy(),
    )
    eyes = tuple(_edf_eye(recording, code, trial_of, message_events) for code in ("L", "R") if code in recording.eyes)
    header = recording.header
    device = {
        "Manufacturer": "SR Research",
        "ManufacturersModelName": header.get("VERSION", ""),
        "DeviceSerialNumber": header.get("SERIAL NUMBER", ""),
        "EyeTrackingMethod": {"CR": "P-CR", "P": "P"}.get(recording.tracking, ""),
    }
    return Segment(
        number=number,
        source="edf",
        trials=trials[trials["segment"] == number].reset_index(drop=True),
        eyes=eyes,
        sample_rate_hz=recording.sample_rate_hz,
        device={name: value for name, value in device.items() if value},
        pupil_measure=recording.pupil_measure.lower(),
    )


def _edf_eye(recording: EyeLinkRecording, code: str, trial_of: dict, messages: pd.DataFrame) -> EyeRecord:
    all_samples = cast(pd.DataFrame, recording.samples)  # read with samples=True
    samples = all_samples[all_samples["eye"] == code]
    fixations = recording.fixation_events[recording.fixation_events["eye"] == code]
    saccades = recording.saccades[recording.saccades["eye"] == code]
    blinks = recording.blinks[recording.blinks["eye"] == code]
    events = _sorted_events(
        [
            _events(
                onset_tracker_ms=fixations["start_tracker_ms"].to_numpy(),
                duration_ms=fixations["duration_ms"].to_numpy(),
                trial_type=np.full(len(fixations), "fixation"),
                trial=fixations["trial"].map(trial_of).to_numpy(),
                x_px=fixations["x_px"].to_numpy(),
                y_px=fixations["y_px"].to_numpy(),
                pupil=fixations["pupil"].to_numpy(),
            ),
            _events(
                onset_tracker_ms=saccades["start_tracker_ms"].to_numpy(),
                duration_ms=saccades["duration_ms"].to_numpy(),
                trial_type=np.full(len(saccades), "saccade"),
                trial=saccades["trial"].map(trial_of).to_numpy(),
                x_px=saccades["x_start_px"].to_numpy(),
                y_px=saccades["y_start_px"].to_numpy(),
                x_end_px=saccades["x_end_px"].to_numpy(),
                y_end_px=saccades["y_end_px"].to_numpy(),
            ),
            _events(
                onset_tracker_ms=blinks["start_tracker_ms"].to_numpy(),
                duration_ms=blinks["duration_ms"].to_numpy(),
                trial_type=np.full(len(blinks), "blink"),
                trial=blinks["trial"].map(trial_of).to_numpy(),
            ),
            messages,
        ]
    )
    table = pd.DataFrame(
        {
            "t_tracker_ms": samples["time_tracker_ms"].to_numpy(dtype=float),
            "x_px": samples["x_px"].to_numpy(dtype=float),
            "y_px": samples["y_px"].to_numpy(dtype=float),
            "pupil": samples["pupil"].to_numpy(dtype=float),
        }
    )
    return EyeRecord(_EYES[code], table, events, calibration_fields(recording.validations, code))


def calibration_fields(validations: pd.DataFrame, eye: str) -> dict:
    """The BIDS sidecar fields of ``eye``'s validations (a table of
    :func:`~analysis.readers.calibration.calibration_tables`); the errors are the last one's."""
    done = validations[(validations["eye"] == eye) & ~validations["aborted"]]
    last = last_validation(validations, eye)
    if last is None:
        return {}
    fields = {
        "CalibrationCount": len(done),
        "AverageCalibrationError": float(last["avg_deg"]),
        "MaximalCalibrationError": float(last["max_deg"]),
        "CalibrationType": str(last["points"]),
    }
    return {name: value for name, value in fields.items() if value not in ("", None) and value == value}


# --- the link record ----------------------------------------------------------------------------------


def _journal_gaze(folder: Path, trials: pd.DataFrame) -> pd.DataFrame:
    """The streamed gaze samples (``t_tracker_ms``, ``x_px``, ``y_px``, ``segment``), each record once;
    empty when the session streamed nothing. A sample takes the segment of its trial's row."""
    path = folder / _JOURNAL
    columns = ["t_tracker_ms", "x_px", "y_px", "segment"]
    if not path.is_file():
        return pd.DataFrame(columns=columns)
    seen, rows = set(), []
    try:
        for _, data in protocol.read_journal(path):
            if not isinstance(data, dict) or data.get("kind") != "gaze":
                continue
            record = cast(protocol.GazeSample, protocol.validate_map(data))
            if record.seq not in seen:
                seen.add(record.seq)
                rows.append((record.t_tracker_ms, record.x_display_px, record.y_display_px, record.trial))
    except protocol.ProtocolError as error:
        raise ValueError(f"{path}: {error}; move the journal aside to export the session without its gaze") from None
    table = pd.DataFrame(rows, columns=["t_tracker_ms", "x_px", "y_px", "trial"])
    segment_of = dict(zip(trials["trial"], trials["segment"]))
    table["segment"] = table["trial"].map(segment_of)
    dropped = int(table["segment"].isna().sum())
    if dropped:
        logger.info("%s: %d gaze samples of trials without a completed row left out", path, dropped)
    table = table.dropna(subset=["segment"]).astype({"segment": "int64"})
    return table[columns].sort_values("t_tracker_ms", kind="mergesort", ignore_index=True)


def _link_fixations(folder: Path) -> pd.DataFrame:
    path = folder / SESSION_FIXATIONS_FILE
    if not path.is_file():
        return pd.DataFrame(columns=["trial", "eye", "start_ms", "duration_ms", "x_display_px", "y_display_px"])
    try:
        return read_fixation_csv(path)
    except (ValueError, KeyError) as error:
        raise ValueError(f"{path} is not a lookwhere fixation table: {error}") from None


def _link_segment(
    number: int, manifest: dict, trials: pd.DataFrame, gaze: pd.DataFrame, fixations: pd.DataFrame, config: dict
) -> Segment:
    trials = trials[trials["segment"] == number].reset_index(drop=True)
    samples = gaze[gaze["segment"] == number]
    calibrations = [c for c in manifest.get("calibrations", []) if c.get("message")]
    _, validations = calibration_tables(
        pd.DataFrame(
            {
                "time_tracker_ms": np.nan,
                "text": [str(c["message"]) for c in calibrations],
                "line": np.arange(1, len(calibrations) + 1),
            }
        )
    )
    device = _link_device(config, manifest)
    if len(samples) < 2:  # no rate to state (a session streamed without --server has none at all)
        return Segment(number, "none", trials, (), None, device)
    fixations = fixations.merge(trials[["trial", "onset_tracker_ms"]], on="trial")
    code = _link_eye(fixations, validations)
    onsets = trials["onset_tracker_ms"].to_numpy()
    offsets = onsets + trials["duration_ms"].to_numpy()
    events = _sorted_events(
        [
            _events(
                onset_tracker_ms=(fixations["onset_tracker_ms"] + fixations["start_ms"]).to_numpy(),
                duration_ms=fixations["duration_ms"].to_numpy(),
                trial_type=np.full(len(fixations), "fixation"),
                trial=fixations["trial"].to_numpy(),
                x_px=fixations["x_display_px"].to_numpy(),
                y_px=fixations["y_display_px"].to_numpy(),
                pupil=fixations["pupil"].to_numpy(),
            ),
            _events(
                onset_tracker_ms=np.concatenate([onsets, offsets]),
                message=np.repeat(["IMAGE_ONSET", "IMAGE_OFFSET"], len(trials)),
                trial=np.tile(trials["trial"].to_numpy(), 2),
            ),
        ]
    )
    table = pd.DataFrame(
        {
            "t_tracker_ms": samples["t_tracker_ms"].to_numpy(dtype=float),
            "x_px": samples["x_px"].to_numpy(dtype=float),
            "y_px": samples["y_px"].to_numpy(dtype=float),
            "pupil": np.nan,  # the live cursor's samples carry no pupil
        }
    )
    rate_hz = 1000.0 / float(np.median(np.diff(table["t_tracker_ms"])))
    eye = EyeRecord(_EYES[code], table, events, calibration_fields(validations, code))
    return Segment(number, "link", trials, (eye,), rate_hz, device)


def _link_eye(fixations: pd.DataFrame, validations: pd.DataFrame) -> str:
    """The eye the link reported: its fixations' eye, else the last validation's."""
    eyes = fixations["eye"][fixations["eye"].isin(list(_EYES))]
    if len(eyes):
        return str(eyes.mode().iloc[0])
    validated = validations["eye"][validations["eye"].isin(list(_EYES))]
    if len(validated):
        return str(validated.iloc[-1])
    raise ValueError(
        "the session's link record does not say which eye was tracked (no fixation and no validation names "
        "one); export its EDF instead (put <edf_name>.edf from the tracker into the session folder)"
    )


def _link_device(config: dict, manifest: dict) -> dict:
    tracker = str(config.get("tracker", ""))
    model = str(manifest.get("tracker") or tracker)
    if tracker.startswith("eyelink"):
        return {"Manufacturer": "SR Research", "ManufacturersModelName": model}
    return {"Manufacturer": f"lookwhere ({tracker or 'unknown'} tracker)", "ManufacturersModelName": model}
