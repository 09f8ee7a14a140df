"""Recorded sessions as a BIDS 1.11 dataset with eye tracking (BEP020): ``lookwhere export bids``.

What is written (``<label>``: the participant id without the characters BIDS forbids; ``_run-<n>``
only for a session resumed into several recording segments)::

    OUT/dataset_description.json, README.md, participants.tsv, participants.json
    OUT/sub-<label>/beh/sub-<label>_task-<task>[_run-<n>]_
        events.tsv, events.json                        the trials: image onset, display time, stimulus
                                                       file, audio file; the screen (StimulusPresentation)
        recording-eye1_physio.tsv.gz, .json            the samples (eye2: the right eye of a binocular EDF)
        recording-eye1_physioevents.tsv.gz, .json      fixations, saccades, blinks (with positions), messages
    OUT/stimuli/<the image files shown>
    OUT/sourcedata/sub-<label>/                        the session folder as recorded (trials.jsonl,
                                                       fixations.csv, manifest, audio/*.wav, EDF), without
                                                       the stream journal, whose gaze is in the physio file
    OUT/derivatives/lookwhere/                         the scores (lookwhere analyze --dataset session)

Samples and events come from the session's EDF when it has one, else from its streamed gaze
(:mod:`analysis.export.sessions`); a session with neither gets its events file only (and a warning).

Times
-----
The physio ``timestamp`` and the physioevents ``onset`` are the tracker's clock in seconds (EyeLink:
ms since the host PC started, / 1000), so that the two files line up as recorded; ``duration`` is in
seconds, as BIDS defines it. The events file's ``onset`` counts from the run's first sample (the
physio sidecar's ``StartTime`` is 0), or from the first image onset when there are no samples.

Screen
------
``ScreenResolution`` and ``ScreenDistance`` are ``config.json``'s; ``ScreenSize`` is its visible
width and a height from the pixel aspect (square pixels, the session records no height). Where the
session used the lab's default geometry (``viewing_defaults``) a warning says so.

A session that cannot be read (no ``config.json``, no completed trial, an image missing from
``--stimuli``, an unreadable EDF) is reported and left out; the others are exported and the result
lists the failures (``lookwhere export bids`` then exits with status 1). The dataset is written
beside ``OUT`` and moved into place at the end: ``OUT`` is whole or as it was.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.export.sessions import EyeRecord, Screen, Segment, SessionData, read_session_data, session_folders
from analysis.outputs import RESULT_MARKER, StagedOutput
from lookwhere import __version__
from stimuli.sets import StimulusSet

__all__ = ["export_bids", "ExportResult", "BIDS_VERSION", "subject_label"]

logger = logging.getLogger(__name__)

BIDS_VERSION = "1.11.1"  # the release whose schema bids-validator 3.0 checks (eye tracking since 1.11.0)
_DESCRIPTION = "dataset_description.json"
#: TaskDescription of the events (the protocol of SPEC §2; lookwhere records no instructions text)
TASK_DESCRIPTION = (
    "Object naming: after a self-paced drift correction on a central dot, an image is shown centred on a black "
    "screen for a fixed time while the participant names aloud the objects in it; the microphone records "
    "every trial"
)
_JOURNAL = "stream.journal"
# Positions and pupil sizes are written to 0.0001 (EyeLink stores float32 tenths of a pixel, whose
# full decimal expansion is noise: 872.7000122 is 872.7).
_PX_DECIMALS = 4
#: physio columns and their sidecar entries (``pupil_size`` only where the source measured it)
_PHYSIO_COLUMNS = {
    "timestamp": {"Description": "Eye tracker clock (EyeLink: host PC time) in seconds", "Units": "s"},
    "x_coordinate": {"Description": "Gaze position on the screen, from its left edge", "Units": "pixel"},
    "y_coordinate": {"Description": "Gaze position on the screen, from its top edge", "Units": "pixel"},
}
_PHYSIOEVENT_COLUMNS = {
    "onset": {"Description": "Start of the event on the eye tracker clock (the physio file's timestamp)", "Units": "s"},
    "duration": {"Description": "Duration of the event (n/a for a message)", "Units": "s"},
    "trial_type": {
        "Description": "Eye movement event detected by the tracker (n/a for a message)",
        "Levels": {
            "fixation": "A fixation; x/y_coordinate is its mean position",
            "saccade": "A saccade from x/y_coordinate to x/y_end_coordinate",
            "blink": "A blink (the eye was lost)",
        },
    },
    "message": {"Description": "A message the task wrote into the tracker's record (n/a for an eye event)"},
    "trial": {"Description": "The session's trial index (0-based; n/a outside trials)"},
    "x_coordinate": {"Description": "Fixation: mean position; saccade: start; from the left edge", "Units": "pixel"},
    "y_coordinate": {"Description": "Fixation: mean position; saccade: start; from the top edge", "Units": "pixel"},
    "x_end_coordinate": {"Description": "Saccade: end position, from the screen's left edge", "Units": "pixel"},
    "y_end_coordinate": {"Description": "Saccade: end position, from the screen's top edge", "Units": "pixel"},
}
_EVENTS_COLUMNS = {
    "onset": {"Description": "Image onset (its first flip), from the run's first eye tracker sample", "Units": "s"},
    "duration": {"Description": "Measured display time, onset flip to offset flip", "Units": "s"},
    "trial_type": {"Description": "What was shown", "Levels": {"image": "A stimulus image, centred on a black screen"}},
    "trial": {"Description": "The session's trial index (0-based, as in trials.jsonl)"},
    "image": {"Description": "Image id (the stimulus file name without extension)"},
    "stim_file": {"Description": "The image file, relative to stimuli/"},
    "audio_file": {
        "Description": "The trial's microphone recording (WAV, from the image onset), relative to the dataset root"
    },
}


@dataclass
class ExportResult:
    """What :func:`export_bids` wrote.

    Attributes
    ----------
    out : Path
        The dataset.
    subjects : dict of str → Path
        BIDS label → the session folder exported under it.
    failed : dict of Path → str
        Session folder → why it was left out (the others were exported).
    scores : Path or None
        ``derivatives/lookwhere`` when the scores were written.
    warnings : list of str
        What the dataset cannot say exactly (default screen geometry, sessions without samples).
    """

    out: Path
    subjects: dict[str, Path] = field(default_factory=dict)
    failed: dict[Path, str] = field(default_factory=dict)
    scores: Path | None = None
    warnings: list[str] = field(default_factory=list)


def subject_label(participant: str) -> str:
    """The BIDS ``sub-`` label of a participant id: its letters and digits (``"P_07"`` → ``"P07"``).

    Raises
    ------
    ValueError
        When the id has no letter or digit.
    """
    label = re.sub(r"[^A-Za-z0-9]", "", participant)
    if not label:
        raise ValueError(f"participant id {participant!r} has no letter or digit for a BIDS label; rename it")
    return label


def export_bids(
    sessions,
    *,
    stimuli,
    out,
    task: str = "naming",
    name: str | None = None,
    scores: bool = True,
    scores_from=None,
) -> ExportResult:
    """Write the sessions at ``sessions`` as a BIDS dataset at ``out`` (see the module docstring).

    Parameters
    ----------
    sessions : str or Path
        A session folder of ``lookwhere run``, or a folder of them (its ``--out``).
    stimuli : str or Path
        The stimulus folder the sessions showed; the images shown are copied into ``stimuli/``.
    out : str or Path
        The dataset folder: new, empty, or an earlier export of lookwhere (replaced whole).
    task : str
        The BIDS task label (letters and digits).
    name : str, optional
        ``Name`` in ``dataset_description.json``; default from the sessions folder's name.
    scores : bool
        Write the scores under ``derivatives/lookwhere`` (default): ``scores_from`` copied, else
        computed by ``lookwhere analyze --dataset session`` with its defaults. Scores are computed
        only when every session was exported (so that they describe the dataset).
    scores_from : str or Path, optional
        An output folder of ``lookwhere analyze`` (it holds ``params.json``) to copy.

    Returns
    -------
    ExportResult

    Raises
    ------
    ValueError
        When ``out`` is a file, a folder that is not a BIDS dataset, or a BIDS dataset lookwhere
        did not write; when ``task`` is not a BIDS label; when no session could be exported (every
        failure listed); when scoring fails.
    FileNotFoundError
        When ``sessions``, ``stimuli`` or ``scores_from`` does not exist.
    """
    out, sessions = Path(out), Path(sessions)
    if not re.fullmatch(r"[A-Za-z0-9]+", task):
        raise ValueError(f"--task must be letters and digits (a BIDS label); got {task!r}")
    _check_out(out)
    stimulus_set = StimulusSet(Path(stimuli))
    images = stimulus_set.paths  # image id → file
    if scores and scores_from is not None and not (Path(scores_from) / RESULT_MARKER).is_file():
        raise FileNotFoundError(
            f"--scores {scores_from} is not an output folder of lookwhere analyze (no {RESULT_MARKER})"
        )
    result = ExportResult(out=out)
    data = _read_sessions(session_folders(sessions), stimulus_set.folder, images, result)
    if not data:
        listed = "; ".join(f"{folder}: {why}" for folder, why in result.failed.items())
        raise ValueError(f"no session could be exported from {sessions}: {listed}")
    output = StagedOutput(out, marker=_DESCRIPTION)
    try:
        root = output.path
        for label, session in data.items():
            _write_subject(root, label, session, task=task, images=images, result=result)
        _write_dataset_files(root, data, name=name or f"lookwhere sessions: {sessions.resolve().name}", task=task)
        if scores:
            result.scores = _write_scores(root, sessions, Path(stimuli), scores_from=scores_from, result=result)
    except BaseException:
        output.discard()
        raise
    output.commit()
    result.subjects = {label: session.folder for label, session in data.items()}
    if result.scores is not None:
        result.scores = out / result.scores.relative_to(root)
    return result


def _check_out(out: Path) -> None:
    """Refuse an ``out`` that is not new, empty or an earlier lookwhere export, before any work."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; pass a folder for the dataset (it is created)")
    if not out.is_dir() or not any(out.iterdir()):
        return
    description = out / _DESCRIPTION
    if not description.is_file():
        raise ValueError(
            f"--out {out} exists and is not a BIDS dataset (no {_DESCRIPTION}); pass a new or empty folder "
            "(nothing was written)"
        )
    try:
        generated = json.loads(description.read_text(encoding="utf-8")).get("GeneratedBy", [])
    except (json.JSONDecodeError, AttributeError):
        generated = []
    if not any(isinstance(g, dict) and g.get("Name") == "lookwhere" for g in generated):
        raise ValueError(
            f"--out {out} is a BIDS dataset that lookwhere export did not write; it is never replaced: "
            "pass a new folder (nothing was written)"
        )
    logger.info("--out %s is an earlier export: it is replaced whole at the end", out)


def _read_sessions(
    folders: list[Path], stimuli: Path, images: dict[str, Path], result: ExportResult
) -> dict[str, SessionData]:
    """Read every session; each one that fails goes to ``result.failed`` with the reason."""
    data: dict[str, SessionData] = {}
    for folder in folders:
        try:
            session = read_session_data(folder)
            label = subject_label(session.participant)
            if label in data:
                raise ValueError(
                    f"its participant {session.participant!r} becomes sub-{label}, as {data[label].folder} "
                    "does; give one of them another participant id in its config.json"
                )
            missing = [image for image in session.images if image not in images]
            if missing:
                raise ValueError(
                    f"images {', '.join(missing)} are not in --stimuli {stimuli}; pass the folder the "
                    f"session showed (its config.json says {session.config.get('stimuli')})"
                )
        except (FileNotFoundError, ValueError, KeyError, OSError) as error:
            logger.warning("session %s left out: %s", folder, error)
            result.failed[folder] = str(error)
            continue
        data[label] = session
    return data


# --- one subject ------------------------------------------------------------------------------------


def _write_subject(
    root: Path, label: str, session: SessionData, *, task: str, images: dict[str, Path], result: ExportResult
) -> None:
    beh = root / f"sub-{label}" / "beh"
    beh.mkdir(parents=True)
    if session.screen.defaults:
        result.warnings.append(
            f"sub-{label}: {', '.join(session.screen.defaults)} are the lab's defaults (the session did not "
            "measure them): ScreenSize and ScreenDistance are those defaults"
        )
    sourcedata = root / "sourcedata" / f"sub-{label}"
    shutil.copytree(session.folder, sourcedata, ignore=shutil.ignore_patterns(_JOURNAL, "*.tmp"))
    (root / "stimuli").mkdir(exist_ok=True)
    for image in session.images:
        source = images[image]
        if not (root / "stimuli" / source.name).exists():
            shutil.copy2(source, root / "stimuli" / source.name)
    runs = [segment for segment in session.segments if len(segment.trials)]
    for number, segment in enumerate(runs, 1):
        stem = f"sub-{label}_task-{task}" + (f"_run-{number}" if len(runs) > 1 else "")
        if not segment.eyes:
            result.warnings.append(
                f"sub-{label}: segment {segment.number} has no gaze samples (no EDF, and the session did not "
                "stream with --server): events only; its fixations are in sourcedata"
            )
        t0_ms = _time_zero_ms(segment)
        _write_events(beh / f"{stem}_events.tsv", segment, t0_ms, images, label=label, task=task, screen=session.screen)
        for number_eye, eye in enumerate(segment.eyes, 1):
            prefix = beh / f"{stem}_recording-eye{number_eye}"
            _write_physio(prefix, eye, segment, t0_ms, task=task)
            _write_physioevents(prefix, eye, segment, task=task)


def _time_zero_ms(segment: Segment) -> float:
    """The events file's time zero on the tracker clock: the run's first sample, else its first onset."""
    firsts = [eye.samples["t_tracker_ms"].min() for eye in segment.eyes if len(eye.samples)]
    return float(min(firsts)) if firsts else float(segment.trials["onset_tracker_ms"].min())


def _write_events(
    path: Path, segment: Segment, t0_ms: float, images: dict[str, Path], *, label: str, task: str, screen: Screen
) -> None:
    trials = segment.trials
    audio = [f"sourcedata/sub-{label}/{file}" if file else np.nan for file in trials["mic_file"]]
    table = pd.DataFrame(
        {
            "onset": (trials["onset_tracker_ms"] - t0_ms) / 1000.0,
            "duration": trials["duration_ms"] / 1000.0,
            "trial_type": "image",
            "trial": trials["trial"],
            "image": trials["image"],
            "stim_file": [images[image].name for image in trials["image"]],
            "audio_file": audio,
        }
    )
    table.to_csv(path, sep="\t", index=False, na_rep="n/a", float_format="%.6f")
    presentation = {
        "ScreenDistance": screen.distance_cm / 100.0,
        "ScreenOrigin": ["top", "left"],
        "ScreenResolution": [screen.width_px, screen.height_px],
        "ScreenSize": [screen.width_cm / 100.0, screen.height_cm / 100.0],
        "SoftwareName": "lookwhere (PsychoPy)",
        "SoftwareVersion": __version__,
    }
    if screen.refresh_hz:
        presentation["ScreenRefreshRate"] = screen.refresh_hz
    sidecar = {"TaskName": task, "TaskDescription": TASK_DESCRIPTION, **_EVENTS_COLUMNS}
    _write_json(path.with_suffix(".json"), {**sidecar, "StimulusPresentation": presentation})


def _write_physio(prefix: Path, eye: EyeRecord, segment: Segment, t0_ms: float, *, task: str) -> None:
    samples = eye.samples
    table = pd.DataFrame(
        {
            "timestamp": samples["t_tracker_ms"] / 1000.0,
            "x_coordinate": samples["x_px"].round(_PX_DECIMALS),
            "y_coordinate": samples["y_px"].round(_PX_DECIMALS),
        }
    )
    columns = dict(_PHYSIO_COLUMNS)
    if samples["pupil"].notna().any():
        table["pupil_size"] = samples["pupil"].round(_PX_DECIMALS)
        columns["pupil_size"] = {"Description": f"The {_pupil_description(segment)}", "Units": "arbitrary"}
    _write_tsv_gz(prefix.parent / f"{prefix.name}_physio.tsv.gz", table)
    description = (
        "Every sample the eye tracker recorded, from its data file"
        if segment.source == "edf"
        else "The gaze samples the task streamed live: one per display frame while an image was shown (not evenly "
        "spaced; SamplingFrequency is their median rate; use the timestamps)"
    )
    sidecar = {
        "TaskName": task,
        "SamplingFrequency": segment.sample_rate_hz,
        "StartTime": (float(samples["t_tracker_ms"].min()) - t0_ms) / 1000.0 if len(samples) else 0.0,
        "Columns": list(table.columns),
        "PhysioType": "eyetrack",
        "RecordedEye": eye.eye,
        "SampleCoordinateSystem": "gaze-on-screen",
        "Description": description,
        **segment.device,
        **eye.calibration,
        **columns,
    }
    _write_json(prefix.parent / f"{prefix.name}_physio.json", sidecar)


def _pupil_description(segment: Segment) -> str:
    measure = segment.pupil_measure or "area or diameter (the tracker does not say which)"
    return f"pupil {measure}, in the tracker's arbitrary units"


def _write_physioevents(prefix: Path, eye: EyeRecord, segment: Segment, *, task: str) -> None:
    events = eye.events
    table = pd.DataFrame(
        {
            "onset": events["onset_tracker_ms"] / 1000.0,
            "duration": events["duration_ms"] / 1000.0,
            "trial_type": events["trial_type"].replace("", np.nan),
            # a TSV value holds no tab or line break (BIDS tables are not quoted)
            "message": events["message"].str.replace(r"[\t\r\n]+", " ", regex=True).replace("", np.nan),
            "trial": events["trial"].astype("Int64"),
            "x_coordinate": events["x_px"].round(_PX_DECIMALS),
            "y_coordinate": events["y_px"].round(_PX_DECIMALS),
            "x_end_coordinate": events["x_end_px"].round(_PX_DECIMALS),
            "y_end_coordinate": events["y_end_px"].round(_PX_DECIMALS),
            "pupil_size": events["pupil"].round(_PX_DECIMALS),
        }
    )
    _write_tsv_gz(prefix.parent / f"{prefix.name}_physioevents.tsv.gz", table)
    pupil = {"Description": f"Fixation: mean {_pupil_description(segment)}", "Units": "arbitrary"}
    columns = {**_PHYSIOEVENT_COLUMNS, "pupil_size": pupil}
    sidecar = {
        "TaskName": task,
        "Columns": list(table.columns),
        "OnsetSource": "timestamp",
        "Description": "The tracker's fixations, saccades and blinks of this eye, and the task's messages",
        **columns,
    }
    _write_json(prefix.parent / f"{prefix.name}_physioevents.json", sidecar)


# --- the dataset ------------------------------------------------------------------------------------


def _write_dataset_files(root: Path, data: dict[str, SessionData], *, name: str, task: str) -> None:
    _write_json(
        root / _DESCRIPTION,
        {
            "Name": name,
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "GeneratedBy": [{"Name": "lookwhere", "Version": __version__, "Description": "lookwhere export bids"}],
        },
    )
    participants = pd.DataFrame(
        {
            "participant_id": [f"sub-{label}" for label in data],
            "participant": [session.participant for session in data.values()],
            "session_id": [session.session_id for session in data.values()],
            "eye_source": [",".join(dict.fromkeys(s.source for s in session.segments)) for session in data.values()],
            "trials": [sum(len(s.trials) for s in session.segments) for session in data.values()],
        }
    )
    participants.to_csv(root / "participants.tsv", sep="\t", index=False)
    _write_json(
        root / "participants.json",
        {
            "participant": {"Description": "Participant id in lookwhere (config.json)"},
            "session_id": {"Description": "The lookwhere session (UUID)"},
            "eye_source": {
                "Description": "Where the samples and eye events come from",
                "Levels": {
                    "edf": "The tracker's data file (every sample at its rate; fixations, saccades, blinks)",
                    "link": "The live stream (gaze once per display frame; the link's fixations)",
                    "none": "No samples were recorded (events only)",
                },
            },
            "trials": {"Description": "Trials shown"},
        },
    )
    (root / "README.md").write_text(
        f"# {name}\n\n"
        f"Eye tracking during the `{task}` task of lookwhere (gaze-contingent object naming: each image shown "
        "on a black screen after a drift correction, while the participant names the objects aloud).\n\n"
        "- `sub-*/beh/`: the trials (`events.tsv`), the gaze samples (`*_physio.tsv.gz`) and the eye "
        "events with their positions (`*_physioevents.tsv.gz`); timestamps are the eye tracker's clock in s.\n"
        "- `stimuli/`: the images shown.\n"
        "- `sourcedata/sub-*/`: each session folder as lookwhere recorded it, with the microphone "
        "recording of every trial (`audio/*.wav`; audio is not part of BIDS 1.11).\n"
        "- `derivatives/lookwhere/`: the scores of `lookwhere analyze` (when exported).\n",
        encoding="utf-8",
    )


def _write_scores(root: Path, sessions: Path, stimuli: Path, *, scores_from, result: ExportResult) -> Path | None:
    """The scores under ``derivatives/lookwhere``: ``scores_from`` copied, or ``lookwhere analyze`` run."""
    destination = root / "derivatives" / "lookwhere"
    if scores_from is not None:
        shutil.copytree(scores_from, destination)
        how = f"copied from {scores_from}"
    elif result.failed:
        result.warnings.append(
            "scores not written: some sessions were left out, and scores of the others would not describe the "
            "sessions folder; fix them, or pass --scores DIR (a lookwhere analyze output)"
        )
        return None
    else:
        from analysis.cli import add_arguments, config_from_args
        from analysis.offline import run_analysis

        words = ["--dataset", "session", "--fixations", str(sessions), "--stimuli", str(stimuli)]
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([*words, "--out", str(destination), "--no-progress"])
        logger.info("scoring the sessions (lookwhere analyze --dataset session)")
        try:
            run_analysis(config_from_args(args), progress=False, command_line=["lookwhere", "analyze", *words])
        except (FileNotFoundError, ValueError, KeyError) as error:
            raise ValueError(
                f"scoring the sessions failed ({error}); run lookwhere analyze yourself and pass --scores OUT, "
                "or --no-scores"
            ) from error
        how = "lookwhere analyze --dataset session (default options)"
    _write_json(
        destination / _DESCRIPTION,
        {
            "Name": "lookwhere scores",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "lookwhere", "Version": __version__, "Description": how}],
        },
    )
    return destination


def _write_tsv_gz(path: Path, table: pd.DataFrame) -> None:
    """A BIDS compressed table: no header row (the sidecar's ``Columns`` name them), ``n/a`` for missing;
    the gzip header holds no file name or time (BIDS's privacy checks; the same content gives the same bytes)."""
    text = table.to_csv(sep="\t", index=False, header=False, na_rep="n/a", float_format="%.12g", lineterminator="\n")
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as handle:
        handle.write(text.encode("utf-8"))


def _write_json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
