"""Data quality of the project's own sessions in the offline analysis (issue 15): the quality table
of each session (validations, drift checks, track loss, the experimenter's notes) and the trials it
excludes, with why.

What a session folder of ``lookwhere run`` holds about its quality, read here:

* ``manifest.json``: every setup (calibration) of every recording segment with its validation per
  eye (average and largest error, degrees);
* ``trials.jsonl``: per trial, the drift check before it (``drift_correction``: offset in degrees,
  outcome) and its display period's ``quality`` (share of samples lost, blinks, mean pupil);
* ``notes.jsonl`` (:mod:`lookwhere.notes`), and the notes the analysis server kept for the session
  (``--notes DATA_DIR``: ``DATA_DIR/sessions/<session>/notes.jsonl``).

A trial is **excluded**, all its fixations left out of every table and score, when

* an ``exclude_trial`` note names it (unless ``--ignore-notes``; a later ``keep_trial`` note undoes it);
* ``--max-validation-deg``: the validation in force at its onset (the session's last setup before
  it) has a larger average error for the eye analysed: the eye of the trial's fixations (the link
  record's, or the one ``--eye`` chose from the EDF; both eyes analysed: the worse of the two). A
  trial without fixations takes the eyes of its session's, and fixations that do not name a
  validated eye the worse eye. A trial after a setup without a validation is kept (nothing to
  judge it by) and its value is empty;
* ``--max-track-loss``: more of its display period's samples were lost (missing or in a blink).

:meth:`SessionQuality.exclude` removes them (counted in ``params.json``'s dropped fixations); the
tables go to ``quality_sessions.csv``, ``quality_trials.csv``, ``quality_validations.csv`` and
``notes.csv``, the rules and the excluded trials to ``params.json``'s ``quality``, and
:func:`report_section` shows them in the report.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from analysis.fixations import StudyFixations
from analysis.outputs import sha256_of
from analysis.readers.session import session_files
from lookwhere.notes import NOTE_KINDS, NOTES_FILE, OperatorNote, excluded_trials, read_notes, server_notes_path
from lookwhere.quality import QualityThresholds, drift_alarms
from lookwhere.records import read_trial_rows

__all__ = [
    "QualityRules",
    "SessionQuality",
    "session_quality",
    "add_quality_arguments",
    "quality_rules_from_args",
    "report_section",
    "TRIAL_COLUMNS",
]

logger = logging.getLogger(__name__)

#: Columns of the per-trial quality table (``quality_trials.csv``).
TRIAL_COLUMNS = [
    "participant",
    "session",
    "trial",
    "image",
    "calibration",
    "validation_eye",
    "validation_avg_deg",
    "drift_offset_deg",
    "drift_outcome",
    "samples",
    "track_loss",
    "blinks",
    "mean_pupil",
    "notes",
    "excluded",
    "reasons",
]
_VALIDATION_COLUMNS = [
    "participant",
    "session",
    "segment",
    "calibration",
    "unix_s",
    "eye",
    "grade",
    "points",
    "avg_error_deg",
    "max_error_deg",
    "offset_deg",
]
_NOTE_COLUMNS = ["participant", "session", "trial", "image", "kind", "text", "unix_s", "file"]
_SESSION_COLUMNS = [
    "participant",
    "session",
    "trials",
    "validations",
    "drift_median_deg",
    "drift_max_deg",
    "drift_alarm_trials",
    "track_loss_mean",
    "track_loss_max",
    "blinks",
    "notes",
    "excluded_trials",
]
_EXCLUDED_DROP = "trial excluded (notes, validation or track loss)"


class QualityRules(BaseModel):
    """Which trials of the sessions the analysis leaves out (``--dataset session`` only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_validation_deg: float | None = Field(
        None, gt=0, description="exclude trials whose validation in force has a larger average error (degrees)"
    )
    max_track_loss: float | None = Field(
        None, ge=0, le=1, description="exclude trials that lost more of their display period's samples (0-1)"
    )
    notes: Literal["use", "ignore"] = Field(
        "use", description="exclude the trials the experimenter's notes exclude (default), or ignore them"
    )
    notes_dir: Path | None = Field(
        None, description="the analysis server's data folder, whose notes on these sessions apply too"
    )

    @property
    def asked(self) -> bool:
        """Whether any option differs from the defaults (they apply to sessions only)."""
        return self != QualityRules()


@dataclass
class SessionQuality:
    """The quality tables of a study's sessions and the trials they exclude.

    Attributes
    ----------
    trials : DataFrame
        One row per completed trial (:data:`TRIAL_COLUMNS`); ``reasons`` is empty for a kept trial.
    validations : DataFrame
        One row per eye and validation, every setup of every segment.
    notes : DataFrame
        Every note on the sessions, oldest first, with the file it came from.
    sessions : DataFrame
        One row per session: what the report's quality table shows.
    rules : QualityRules
    files : list of Path
        The notes files read.
    """

    trials: pd.DataFrame
    validations: pd.DataFrame
    notes: pd.DataFrame
    sessions: pd.DataFrame
    rules: QualityRules
    files: list[Path]

    # -- the offline analysis' extra (analysis.offline): tables, files, params.json -------------

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "quality_sessions": self.sessions,
            "quality_trials": self.trials,
            "quality_validations": self.validations,
            "notes": self.notes,
        }

    def score_image(self, image_id: str, engine) -> None:
        """Nothing per image: the tables are complete before the scoring."""

    def image_results(self) -> None:
        """Nothing per image (:meth:`analysis.timecourse.TimecourseAnalysis.image_results`)."""

    def add_image_results(self, results: None) -> None:
        """Nothing per image."""

    def write(self, out: Path, *, stat_options: dict) -> dict[str, Path]:
        files = {name: out / f"{name}.csv" for name in self.tables}
        for name, table in self.tables.items():
            table.to_csv(files[name], index=False)
        return files

    def excluded(self) -> pd.DataFrame:
        return self.trials[self.trials["excluded"]]

    def record(self) -> dict:
        excluded = self.excluded()
        return {
            "quality": {
                "rules": json.loads(self.rules.model_dump_json()),
                "rule": "a trial is excluded when an exclude_trial note names it (unless notes are ignored; a later "
                "keep_trial note undoes it), when the validation in force at its onset (the session's last setup "
                "before it, the eye analysed) has a larger average error than max_validation_deg, or when it lost a "
                "larger share of its display period's samples than max_track_loss",
                "notes_files": sha256_of(self.files),
                "n_notes": len(self.notes),
                "excluded_trials": [
                    {
                        "participant": r.participant,
                        "session": r.session,
                        "trial": int(r.trial),
                        "image": r.image,
                        "reasons": r.reasons,
                    }
                    for r in excluded.itertuples()
                ],
                "n_trials": len(self.trials),
                "n_excluded": len(excluded),
            }
        }

    def exclude(self, study: StudyFixations) -> StudyFixations:
        """``study`` without the fixations of the excluded trials (counted as dropped)."""
        keys = set(zip(self.excluded()["session"], self.excluded()["trial"]))
        table = study.table
        out = pd.Series([key in keys for key in zip(table["session"], table["trial"])], index=table.index, dtype=bool)
        if not out.any():
            return study
        counts = {**study.counts, "dropped": Counter(study.counts["dropped"])}
        counts["dropped"][_EXCLUDED_DROP] += int(out.sum())
        logger.info("%d fixations of %d excluded trials left out", int(out.sum()), len(keys))
        return replace(study, table=table[~out].reset_index(drop=True), counts=counts)


def session_quality(
    dataset: str, path, *, rules: QualityRules | None = None, fixations: pd.DataFrame | None = None
) -> SessionQuality | None:
    """The quality of the sessions at ``path`` under ``rules`` (default: notes only); None for other
    datasets.

    ``fixations``: the fixation table analysed (columns ``session``, ``trial``, ``eye``), whose
    eyes say which eye's validation judges each trial; None: the worse eye's.

    Raises
    ------
    ValueError
        Rules asked for a dataset that is not ``session``; a notes file that cannot be read.
    """
    rules = QualityRules() if rules is None else rules
    if dataset != "session":
        if rules.asked:
            raise ValueError(
                "--max-validation-deg, --max-track-loss, --notes and --ignore-notes apply to --dataset session "
                f"(the sessions of lookwhere run); got --dataset {dataset}"
            )
        return None
    folders = [file.parent for file in session_files(path)]
    eyes = _analysed_eyes(fixations)
    parts = [_one_session(folder, rules, eyes) for folder in folders]
    trials = pd.concat([p[0] for p in parts], ignore_index=True)
    validations = pd.concat([p[1] for p in parts], ignore_index=True)
    notes = pd.concat([p[2] for p in parts], ignore_index=True)
    files = [file for p in parts for file in p[3]]
    return SessionQuality(
        trials=trials,
        validations=validations,
        notes=notes,
        sessions=_session_table(trials, validations, notes),
        rules=rules,
        files=files,
    )


def _analysed_eyes(fixations: pd.DataFrame | None) -> dict[tuple[str, int | None], frozenset[str]]:
    """The eyes of the fixations analysed: ``(session, trial)`` → eyes, and ``(session, None)`` →
    every eye of the session (for its trials without fixations)."""
    if fixations is None or fixations.empty:
        return {}
    table = pd.DataFrame(
        {"session": fixations["session"].astype(str), "trial": fixations["trial"], "eye": fixations["eye"].astype(str)}
    )
    by_trial = table.groupby(["session", "trial"])["eye"]
    eyes: dict[tuple[str, int | None], frozenset[str]] = {
        (session, int(trial)): frozenset(group) for (session, trial), group in by_trial
    }
    for session, group in table.groupby("session")["eye"]:
        eyes[(session, None)] = frozenset(group)
    return eyes


def _validation_in_force(validations: list[dict], eyes: frozenset[str]) -> tuple[str, float]:
    """The eye and average error (degrees) that judge a trial: of the validated eyes analysed
    (``eyes``) the worse, or the worse of all when none of them was validated; ``("", NaN)``
    without a validation."""
    errors = {str(v.get("eye", "")): _number(v.get("avg_error_deg")) for v in validations}
    errors = {eye: error for eye, error in errors.items() if np.isfinite(error)}
    analysed = {eye: error for eye, error in errors.items() if eye in eyes} or errors
    if not analysed:
        return "", np.nan
    eye = max(analysed, key=lambda name: analysed[name])
    return eye, analysed[eye]


def _one_session(folder: Path, rules: QualityRules, eyes: dict[tuple[str, int | None], frozenset[str]]):
    """The trials, validations and notes tables of one session folder, and the notes files read
    (``eyes``: :func:`_analysed_eyes`)."""
    manifest = _json(folder / "manifest.json")
    config = _json(folder / "config.json")
    session = str(manifest.get("session") or config.get("session_id") or folder.name)
    participant = str(manifest.get("participant") or config.get("participant") or folder.name)
    ids = {"participant": participant, "session": session}
    setups = [
        (
            calibration.get("unix_s", np.nan),
            calibration.get("calibration", number),
            segment.get("segment", 0),
            calibration,
        )
        for segment in manifest.get("segments", [])
        for number, calibration in enumerate(segment.get("calibrations", []))
    ]
    setups.sort(key=lambda setup: setup[0])
    validations = pd.DataFrame(
        [
            {
                **ids,
                "segment": seg,
                "calibration": number,
                "unix_s": unix_s,
                **{name: v.get(name, np.nan) for name in _VALIDATION_COLUMNS[5:]},
            }
            for unix_s, number, seg, calibration in setups
            for v in calibration.get("validations", [])
        ],
        columns=_VALIDATION_COLUMNS,
    )
    notes, files = _session_notes(folder, session, rules)
    by_trial: dict[int, list[OperatorNote]] = {}
    for note in notes:
        if note.trial is not None:
            by_trial.setdefault(note.trial, []).append(note)
    excluded_by_notes = excluded_trials(notes) if rules.notes == "use" else {}
    rows = []
    for row in read_trial_rows(folder):
        setup = _setup_at(setups, row.get("onset_unix_s"))
        drift, quality = row.get("drift_correction") or {}, row.get("quality") or {}
        trial = int(row["trial"])
        analysed = eyes.get((session, trial)) or eyes.get((session, None), frozenset())
        eye, error = _validation_in_force(setup[3].get("validations", []) if setup else [], analysed)
        values = {
            **ids,
            "trial": trial,
            "image": str(row.get("image", "")),
            "calibration": setup[1] if setup else None,
            "validation_eye": eye,
            "validation_avg_deg": error,
            "drift_offset_deg": _number(drift.get("offset_deg")),
            "drift_outcome": drift.get("outcome", ""),
            "samples": quality.get("samples"),
            "track_loss": _number(quality.get("track_loss")),
            "blinks": quality.get("blinks"),
            "mean_pupil": _number(quality.get("mean_pupil")),
            "notes": "; ".join(_note_text(note) for note in by_trial.get(trial, [])),
        }
        reasons = _reasons(values, excluded_by_notes.get((session, trial)), rules)
        rows.append({**values, "excluded": bool(reasons), "reasons": "; ".join(reasons)})
    trials = pd.DataFrame(rows, columns=TRIAL_COLUMNS).astype({"excluded": bool})
    note_rows = pd.DataFrame(
        [
            {
                "participant": participant,
                "session": session,
                "trial": note.trial,
                "image": note.image,
                "kind": note.kind,
                "text": note.text,
                "unix_s": note.unix_s,
                "file": str(file),
            }
            for note, file in notes.items()
        ],
        columns=_NOTE_COLUMNS,
    )
    return trials, validations, note_rows, files


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _number(value) -> float:
    return np.nan if value is None else float(value)


def _setup_at(setups: list, onset_unix_s) -> tuple | None:
    """The last setup before ``onset_unix_s`` (None: none, or no onset time to judge by)."""
    if onset_unix_s is None:
        return None
    before = [setup for setup in setups if setup[0] <= onset_unix_s]
    return before[-1] if before else None


def _session_notes(folder: Path, session: str, rules: QualityRules) -> tuple[dict[OperatorNote, Path], list[Path]]:
    """The notes on ``session`` (note → its file), oldest first: the session folder's own and the
    server's (``rules.notes_dir``); a note found in both counts once. Notes about another session
    (a file copied into the wrong folder) are left out with a warning."""
    paths = [folder / NOTES_FILE]
    if rules.notes_dir is not None:
        try:
            paths.append(server_notes_path(rules.notes_dir, session))
        except ValueError:
            logger.warning("session %s in %s has no UUID: the server's notes cannot be looked up", session, folder)
    found: dict[OperatorNote, Path] = {}
    files = [path for path in paths if path.is_file()]
    for path in files:
        for note in read_notes(path):
            if note.session != session:
                logger.warning(
                    "%s: a note on session %s is not about %s (%s); left out", path, note.session, session, folder
                )
                continue
            found.setdefault(note, path)
    ordered = dict(sorted(found.items(), key=lambda item: item[0].unix_s))
    return ordered, files


def _note_text(note: OperatorNote) -> str:
    label = "" if note.kind == "text" else NOTE_KINDS[note.kind]
    return ": ".join(part for part in (label, note.text) if part)


def _reasons(values: dict, note: OperatorNote | None, rules: QualityRules) -> list[str]:
    """Why the trial is excluded (empty: kept)."""
    reasons = []
    if note is not None:
        reasons.append("note" + (f": {note.text}" if note.text else ""))
    limit, error = rules.max_validation_deg, values["validation_avg_deg"]
    if limit is not None and error > limit:  # NaN (no validation) compares False: kept
        reasons.append(f"validation {error:.2f}° > {limit:g}°")
    limit, lost = rules.max_track_loss, values["track_loss"]
    if limit is not None and lost > limit:
        reasons.append(f"track loss {lost:.0%} > {limit:.0%}")
    return reasons


def _session_table(trials: pd.DataFrame, validations: pd.DataFrame, notes: pd.DataFrame) -> pd.DataFrame:
    """One row per session: validations (each setup's, per eye), drift offsets and the trials at
    which the dashboard's alarm was on (default thresholds), track loss, blinks, notes, exclusions."""
    limits = QualityThresholds()
    rows = []
    for (participant, session), group in trials.groupby(["participant", "session"], sort=False):
        group = group.sort_values("trial")
        drift = group["drift_offset_deg"].to_numpy(dtype=float)
        alarms = drift_alarms(drift, threshold_deg=limits.drift_alarm_deg, run=limits.drift_alarm_run)
        own = validations[validations["session"] == session]
        lost = group["track_loss"].to_numpy(dtype=float)
        rows.append(
            {
                "participant": participant,
                "session": session,
                "trials": len(group),
                "validations": ", ".join(
                    f"#{int(v.calibration) + 1} {v.eye} {v.avg_error_deg:.2f}°/{v.max_error_deg:.2f}° {v.grade}"
                    for v in own.itertuples()
                )
                or "none",
                "drift_median_deg": float(np.nanmedian(drift)) if np.isfinite(drift).any() else np.nan,
                "drift_max_deg": float(np.nanmax(drift)) if np.isfinite(drift).any() else np.nan,
                "drift_alarm_trials": ", ".join(str(t + 1) for t in group["trial"][alarms]),
                "track_loss_mean": float(np.nanmean(lost)) if np.isfinite(lost).any() else np.nan,
                "track_loss_max": float(np.nanmax(lost)) if np.isfinite(lost).any() else np.nan,
                "blinks": int(pd.to_numeric(group["blinks"], errors="coerce").fillna(0).sum()),
                "notes": int((notes["session"] == session).sum()),
                "excluded_trials": ", ".join(str(t + 1) for t in group.loc[group["excluded"], "trial"]),
            }
        )
    return pd.DataFrame(rows, columns=_SESSION_COLUMNS)


# -- the command line ------------------------------------------------------------------------------


def add_quality_arguments(parser) -> None:
    """``lookwhere analyze``'s data-quality options (:class:`QualityRules`)."""
    group = parser.add_argument_group(
        "Data quality (--dataset session)",
        "Every session's validations, drift checks, track loss and the experimenter's notes go to the report and "
        "quality_*.csv; trials excluded by a note or by these limits are left out, and listed.",
    )
    group.add_argument(
        "--max-validation-deg",
        type=float,
        metavar="DEG",
        help="exclude trials whose validation in force (the last setup before them) has a larger average error "
        "for the eye analysed (the eye of the trial's fixations), degrees",
    )
    group.add_argument(
        "--max-track-loss",
        type=float,
        metavar="FRACTION",
        help="exclude trials that lost a larger share (0-1) of their display period's samples",
    )
    group.add_argument(
        "--notes",
        type=Path,
        metavar="DATA_DIR",
        help="the analysis server's data folder (lookwhere serve --data): its notes on these sessions apply too "
        "(default: each session folder's notes.jsonl only)",
    )
    group.add_argument("--ignore-notes", action="store_true", help="keep the trials the experimenter's notes exclude")


def quality_rules_from_args(args) -> QualityRules:
    """The :class:`QualityRules` of :func:`add_quality_arguments`' options."""
    return QualityRules(
        max_validation_deg=args.max_validation_deg,
        max_track_loss=args.max_track_loss,
        notes="ignore" if args.ignore_notes else "use",
        notes_dir=args.notes,
    )


# -- the report ------------------------------------------------------------------------------------


def report_section(tables: dict[str, pd.DataFrame]) -> str:
    """The report's "Data quality" section: the table of each session, the excluded trials and the
    notes (empty when the analysis read no session)."""
    if "quality_sessions" not in tables:
        return ""
    sessions, trials, notes = tables["quality_sessions"], tables["quality_trials"], tables["notes"]
    if sessions.empty:
        return (
            '<h2 id="quality">Data quality</h2><p>The sessions hold no trial records (<code>trials.jsonl</code>): '
            "no validation, drift or track-loss figures, and no trial excluded.</p>"
        )
    shown = sessions.assign(session=sessions["session"].str.slice(0, 8))
    excluded = trials[trials["excluded"]][["participant", "trial", "image", "reasons"]]
    parts = [
        '<h2 id="quality">Data quality</h2><p>Per session: each setup\'s validation (average/largest error per eye '
        "and the tracker's grade), the drift checks' offsets (with the trials at which the dashboard's alarm was on: "
        "above 1° twice in a row), the share of each display period's samples lost, blinks, the experimenter's "
        "notes and the trials excluded (numbered from 1, as on the dashboard). Per trial: "
        "<code>quality_trials.csv</code>; validations: <code>quality_validations.csv</code>; notes: "
        "<code>notes.csv</code>.</p>",
        _html_table(shown),
        f"<h3>Excluded trials ({len(excluded)})</h3>",
        _html_table(excluded.assign(trial=excluded["trial"] + 1)) if len(excluded) else "<p>none</p>",
        f"<h3>Notes ({len(notes)})</h3>",
    ]
    if len(notes):
        listed = notes.assign(
            trial=[("" if pd.isna(t) else str(int(t) + 1)) for t in notes["trial"]],
            saved=pd.to_datetime(notes["unix_s"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S"),
            kind=notes["kind"].map(NOTE_KINDS),
        )[["participant", "trial", "image", "saved", "kind", "text"]]
        parts.append(_html_table(listed))
    else:
        parts.append("<p>none</p>")
    return "".join(parts)


def _html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0, classes="t", na_rep="—")
