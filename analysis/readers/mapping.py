"""From EyeLink recordings to a study's fixations on its images.

One recording is mapped in this order (:func:`map_recording`):

1. **units** — events in HREF units (head-referenced angles) cannot be placed on an image: refused;
2. **eye** — ``best`` (the default): the eye whose last validation was better (lower mean error, then
   lower maximum), else the right one; ``left`` or ``right``; or ``both``, each eye then forming its
   own session (``file.asc:L``, ``file.asc:R``) so that per-trial selections such as the
   first-fixation exclusion apply per eye. Both eyes are never pooled unless asked for;
3. **trials → images** — each trial's image (the reader's :class:`~analysis.readers.eyelink.TrialRules`),
   or the trials table (``--trials-table``: columns ``recording,trial,image`` and optionally
   ``onset_ms,offset_ms``, tracker-clock times that replace the onset and offset messages);
   fixations outside trials or in trials without an image are dropped and counted;
4. **placement** — per trial, where the image lay on the screen: the trial's ``!V IMGLOAD`` (``CENTER
   x y [w h]``: centred at ``(x, y)``; ``TOP_LEFT x y [w h]``: top-left corner at ``(x, y)``; ``FILL``:
   stretched over the screen; without ``w h`` the image was drawn at its own size), else centred at
   the study's scale (:meth:`stimuli.geometry.DisplayGeometry.fit`, default ×2 fitted to the
   screen). The screen size is the recording's (``DISPLAY_COORDS``, else ``GAZE_COORDS``) unless
   ``screen_px`` overrides it; an explicit ``scale`` overrides the drawn size everywhere;
5. **image coordinates** — :func:`analysis.fixations.add_image_coordinates` per trial.

A recording that cannot be mapped raises :class:`MappingError`, whose message names the file and the
option that fixes it; :func:`read_recordings` reports such a file and goes on with the others.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.fixations import (
    ImagePlacement,
    StudyFixations,
    add_image_coordinates,
    empty_fixation_table,
    fixation_table,
)
from analysis.readers.calibration import last_validation
from analysis.readers.eyelink import (
    RECORDING_SUFFIXES,
    EyeLinkDataWarning,
    EyeLinkFormatError,
    EyeLinkRecording,
    TrialRules,
    fixation_table_from_events,
    image_id_from_name,
    read_recording,
)
from analysis.readers.info import format_candidates
from stimuli.geometry import DEFAULT_SCALE, DisplayGeometry

__all__ = [
    "MappingOptions",
    "MappingError",
    "EYE_CHOICES",
    "recording_paths",
    "read_recordings",
    "map_recording",
    "choose_eye",
    "imgload_placement",
    "read_trials_table",
]

EYE_CHOICES = ("best", "left", "right", "both")
_EYE_LETTERS = {"left": "L", "right": "R"}

logger = logging.getLogger(__name__)


class MappingError(ValueError):
    """A recording's fixations cannot be tied to images; the message names the option that fixes it."""


@dataclass(frozen=True)
class MappingOptions:
    """How recordings are mapped to images (the ``lookwhere analyze`` options of each in brackets).

    Attributes
    ----------
    rules : TrialRules
        Trial, image, onset and offset messages (``--trial-start``, ``--image-message``,
        ``--onset-message``, ``--offset-message``).
    trials_table : DataFrame, optional
        Each trial's image, overriding the messages (``--trials-table``; :func:`read_trials_table`).
    eye : {"best", "left", "right", "both"}
        Which eye's fixations count (``--eye``); see the module docstring.
    screen_px : (int, int), optional
        Screen size overriding the recordings' own (``--screen W H``).
    scale : float, optional
        Drawn size / image size, overriding the default ×2 and any ``!V IMGLOAD`` size (``--scale``).
    """

    rules: TrialRules = TrialRules()
    eye: str = "best"
    trials_table: pd.DataFrame | None = None
    screen_px: tuple[int, int] | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        if self.eye not in EYE_CHOICES:
            raise ValueError(f"--eye must be one of {', '.join(EYE_CHOICES)}; got {self.eye!r}")
        if self.screen_px is not None and not (
            len(self.screen_px) == 2 and all(isinstance(v, (int, np.integer)) and v > 0 for v in self.screen_px)
        ):
            raise ValueError(f"--screen needs two positive integers W H; got {self.screen_px!r}")
        if self.scale is not None and not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"--scale must be a number > 0; got {self.scale!r}")


def recording_paths(path) -> list[Path]:
    """The EyeLink recordings at ``path``: the file itself, or every ``.asc``/``.edf`` file (any
    letter case) directly in the folder, sorted by name.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist or the folder holds no recording.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"EyeLink recording or folder {path} does not exist")
    if path.is_file():
        return [path]
    paths = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in RECORDING_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no EyeLink recording (.asc or .edf, any letter case) in {path}")
    return paths


def read_recordings(paths, image_sizes, options: MappingOptions = MappingOptions()) -> StudyFixations:
    """Read and map every recording; a file that fails is reported and left out.

    Parameters
    ----------
    paths : sequence of Path
        EyeLink recordings (:func:`recording_paths`).
    image_sizes : callable or mapping, image id → (width_px, height_px)
        The stimulus images' sizes (e.g. ``StimulusSet(...).size``); ids it does not know are dropped
        and counted (``"image not in the stimulus folder"``).
    options : MappingOptions

    Returns
    -------
    StudyFixations
        The mapped fixations of every readable recording, the failed files with their reason, the
        data warnings, and per-recording provenance.

    Raises
    ------
    ValueError
        When no recording could be mapped (listing each file's reason).
    """
    study = StudyFixations(table=empty_fixation_table(), files=list(paths))
    tables = []
    for path in study.files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EyeLinkDataWarning)
            try:
                recording = read_recording(path, rules=options.rules)
                table, summary = map_recording(recording, image_sizes, options)
            except (EyeLinkFormatError, MappingError, OSError, ValueError) as error:
                # Every message of the readers names the file; an OS error's may not.
                study.failed[str(path)] = str(error) if str(path) in str(error) else f"{path}: {error}"
                logger.info("left out: %s", study.failed[str(path)])
                continue
            finally:
                study.warnings.extend(str(w.message) for w in caught if issubclass(w.category, EyeLinkDataWarning))
        tables.append(table)
        study.recordings.append(summary)
        if len(summary["eye"]) > 1:
            study.warnings.append(
                f"{path}: both eyes' fixations count (--eye both): each fixation is in the heatmaps once per eye"
            )
        study.counts["read"] += summary["counts"]["read"]
        study.counts["read_per_eye"].update(summary["counts"]["read_per_eye"])
        study.counts["dropped"].update(summary["counts"]["dropped"])
    if not tables:
        reasons = "\n".join(f"  {why}" for why in study.failed.values())
        raise ValueError(f"no recording could be analysed:\n{reasons}")
    study.table = pd.concat(tables, ignore_index=True)
    study.counts["mapped"] = len(study.table)
    return study


def map_recording(recording: EyeLinkRecording, image_sizes, options: MappingOptions = MappingOptions()):
    """The fixations of one recording on their images.

    Parameters
    ----------
    recording : EyeLinkRecording
    image_sizes : callable or mapping, image id → (width_px, height_px)
    options : MappingOptions

    Returns
    -------
    table : DataFrame
        The recording's fixations that lie in a trial with a known image, image coordinates set.
    summary : dict
        Provenance: ``file``, ``format``, ``eyes``, ``units``, ``display_px``, ``display_source``,
        ``rules`` (the patterns used), ``placements`` (placement source → trials), ``counts``
        (``read``, ``read_per_eye``, ``dropped`` by reason, ``mapped``).

    Raises
    ------
    MappingError
        HREF units; no trial with an image; a trial that needs the screen size when it is unknown.
    """
    path = recording.path
    if "HREF" in recording.units:
        blocks = recording.blocks.loc[recording.blocks["units"] == "HREF", "start_line"].tolist()
        raise MappingError(
            f"{path}: events recorded in HREF units (head-referenced eye angles, recording blocks at "
            f"lines {blocks[:5]}), not screen pixels; a heatmap needs gaze positions in display pixels. "
            "Record with GAZE in file_event_data, or convert the EDF to ASC with gaze (not HREF) positions"
        )
    trials, fixations = recording.trials, recording.fixations
    if options.trials_table is not None:
        trials = _trials_from_table(recording, options.trials_table)
        fixations = fixation_table_from_events(
            recording.fixation_events,
            trials,
            participant=recording.fixations["participant"].iloc[0] if len(fixations) else path.stem,
            session=path.name,
        )
    counts = {"read": len(fixations), "read_per_eye": Counter(fixations["eye"].astype(str)), "dropped": Counter()}
    eye, eye_reason = choose_eye(recording, options.eye)
    keep = _count_drop(counts, ~fixations["eye"].isin(list(eye)), "other eye")
    keep &= _count_drop(counts, keep & (fixations["trial"] < 0), "outside any trial")
    keep &= _count_drop(counts, keep & (fixations["image"] == ""), "trial without an image")
    if not keep.any():
        raise MappingError(_no_image_message(recording, trials))
    known = {image: _size_of(image_sizes, image) is not None for image in fixations.loc[keep, "image"].unique()}
    keep &= _count_drop(counts, keep & ~fixations["image"].map(known).fillna(False), "image not in the stimulus folder")
    table = fixations[keep]
    placements, sources = _placements(recording, trials, table, image_sizes, options)
    table = add_image_coordinates(table, placements, by="trial") if len(table) else table
    display_rule = _display_rule(recording, trials, table, options)
    if len(eye) > 1:
        table = fixation_table(table.assign(session=table["session"] + ":" + table["eye"]))
    counts["mapped"] = len(table)
    counts["mapped_per_eye"] = Counter(table["eye"].astype(str))
    summary = {
        "file": str(path),
        "format": recording.format,
        "eyes": recording.eyes,
        "eye": eye,
        "eye_reason": eye_reason,
        "units": recording.units or "unknown",
        "display_px": list(options.screen_px or recording.display_px or ()) or None,
        "display_source": "--screen" if options.screen_px else recording.display_source,
        "rules": recording.rules,
        "trials": len(trials),
        "display_period": display_rule,
        "placements": dict(Counter(sources.values())),
        "counts": counts,
    }
    return table.reset_index(drop=True), summary


def _display_rule(recording: EyeLinkRecording, trials: pd.DataFrame, table: pd.DataFrame, options) -> dict:
    """How the display period of the used trials is known; warns for trials that lack an onset."""
    used = trials[trials["trial"].isin(table["trial"].unique())]
    from_table = options.trials_table is not None and options.trials_table["onset_ms"].notna().any()
    rule = {
        "onset": "--trials-table onset_ms" if from_table else recording.rules["onset"],
        "offset": "--trials-table offset_ms" if from_table else recording.rules["offset"],
        "trials_used": len(used),
        "trials_without_onset": int(used["onset_tracker_ms"].isna().sum()),
        "trials_without_offset": int(used["offset_tracker_ms"].isna().sum()),
    }
    if rule["trials_without_onset"]:
        message = (
            f"{recording.path}: {rule['trials_without_onset']} of {len(used)} trials used have no image onset "
            f"(onset message {rule['onset']!r}); their fixations are kept without the display-period check. "
            "Name the onset message with --onset-message, or give onset_ms in --trials-table"
        )
        logger.warning(message)
        warnings.warn(message, EyeLinkDataWarning, stacklevel=3)
    return rule


def choose_eye(recording: EyeLinkRecording, choice: str = "best") -> tuple[str, str]:
    """The eye(s) whose fixations count, and why.

    Parameters
    ----------
    recording : EyeLinkRecording
    choice : {"best", "left", "right", "both"}

    Returns
    -------
    eyes : str
        ``"L"``, ``"R"`` or ``"LR"``.
    reason : str
        E.g. ``"best: last validation 0.30° mean / 0.91° max error against 0.35° / 0.48°"``.

    Raises
    ------
    MappingError
        When the eye asked for was not recorded.
    """
    recorded = "".join(e for e in "LR" if e in recording.eyes or (recording.fixation_events["eye"] == e).any())
    if choice in _EYE_LETTERS:
        letter = _EYE_LETTERS[choice]
        if letter not in recorded:
            raise MappingError(
                f"{recording.path}: no {choice}-eye data (eyes recorded: {recorded or 'none'}); "
                "pass --eye best, or the eye that was recorded"
            )
        return letter, f"{choice}: asked for"
    if choice == "both" or len(recorded) < 2:
        return recorded, "both: asked for" if choice == "both" else "the only eye recorded"
    last = {eye: last_validation(recording.validations, eye) for eye in "LR"}
    if last["L"] is None or last["R"] is None:
        validated = [(eye, row) for eye, row in last.items() if row is not None]
        if validated:
            eye, row = validated[0]
            return eye, f"best: the only eye with a validation ({row['avg_deg']:.2f}° mean error)"
        return "R", "best: no validation to compare, so the right eye"
    quality = {eye: (row["avg_deg"], row["max_deg"]) for eye, row in last.items() if row is not None}
    eye = "L" if quality["L"] < quality["R"] else "R"
    return eye, (
        f"best: last validation {quality[eye][0]:.2f}° mean / {quality[eye][1]:.2f}° max error against "
        f"{quality['LR'.replace(eye, '')][0]:.2f}° / {quality['LR'.replace(eye, '')][1]:.2f}°"
    )


def _count_drop(counts: dict, drop: pd.Series, reason: str) -> np.ndarray:
    """Count the rows dropped for ``reason``; return the mask of rows kept."""
    drop = np.asarray(drop, dtype=bool)
    if drop.any():
        counts["dropped"][reason] += int(drop.sum())
    return ~drop


def _size_of(image_sizes, image_id: str):
    try:
        return image_sizes(image_id) if callable(image_sizes) else image_sizes[image_id]
    except KeyError:
        return None


def _no_image_message(recording: EyeLinkRecording, trials: pd.DataFrame) -> str:
    path = recording.path
    with_image = int((trials["image"] != "").sum()) if len(trials) else 0
    if with_image:
        what = f"none of the fixations lies in one of its {with_image} trials that name an image"
        return f"{path}: no fixation can be tied to an image: {what}"
    if trials.empty:
        what = (
            f"no trial start message (looked for {recording.rules['trial_start'] or 'TRIALID or start_trial'}); "
            "name the message that starts each trial with --trial-start REGEX"
        )
    else:
        looked = (
            f"no message matches {recording.rules['image']!r}"
            if recording.rules["image"]
            else "no !V TRIAL_VAR image or !V IMGLOAD message"
        )
        what = (
            f"none of its {len(trials)} trials names an image ({looked}); name the message that carries the "
            "image with --image-message REGEX (a named group 'image'), or list each trial's image with "
            "--trials-table CSV"
        )
    return (
        f"{path}: no fixation can be tied to an image: {what}. Messages that repeat "
        f"(`lookwhere recording info {path}` shows more):\n{format_candidates(recording)}"
    )


_TABLE_COLUMNS = {
    "recording": "string",
    "trial": "string",
    "image": "string",
    "onset_ms": "float64",
    "offset_ms": "float64",
}


def read_trials_table(path) -> pd.DataFrame:
    """Read a ``--trials-table`` CSV: which image each trial of each recording showed.

    Parameters
    ----------
    path : str or Path
        A CSV with columns ``recording`` (the file name, with or without its suffix), ``trial``
        (the trial id: the start marker's ``trial`` group, e.g. ``TRIALID 3`` → ``3``, else the 0-based
        trial number), ``image`` (an image id or file name) and optionally ``onset_ms``,
        ``offset_ms`` (tracker-clock times of the image onset and offset, replacing the messages).

    Returns
    -------
    DataFrame
        Those columns (string ids, float times; NaN where a time is blank), image ids as file stems.

    Raises
    ------
    ValueError
        Naming the file and what is missing or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--trials-table {path} does not exist")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"--trials-table {path} is not a readable CSV file: {error}") from None
    missing = [name for name in ("recording", "trial", "image") if name not in table.columns]
    if missing:
        raise ValueError(
            f"--trials-table {path} lacks the columns {missing}; it needs recording,trial,image and "
            f"optionally onset_ms,offset_ms (found {list(table.columns)})"
        )
    for name in ("onset_ms", "offset_ms"):
        if name in table.columns:
            values = pd.to_numeric(table[name].replace("", np.nan), errors="coerce")
            bad = table.index[values.isna() & (table[name] != "")]
            if len(bad):
                raise ValueError(
                    f"--trials-table {path}, row {bad[0] + 2}: {name} must be a number (tracker ms); "
                    f"got {table.loc[bad[0], name]!r}"
                )
            table[name] = values
        else:
            table[name] = np.nan
    empty = table.index[(table["image"].str.strip() == "") | (table["trial"].str.strip() == "")]
    if len(empty):
        raise ValueError(f"--trials-table {path}, row {empty[0] + 2}: trial and image must not be empty")
    duplicated = table.duplicated(["recording", "trial"])
    if duplicated.any():
        row = table[duplicated].iloc[0]
        raise ValueError(
            f"--trials-table {path} lists trial {row['trial']!r} of {row['recording']!r} twice; one row per trial"
        )
    table["image"] = [image_id_from_name(name) for name in table["image"]]
    table["trial"] = table["trial"].str.strip()
    return table[list(_TABLE_COLUMNS)].astype(_TABLE_COLUMNS)


def _trials_from_table(recording: EyeLinkRecording, table: pd.DataFrame) -> pd.DataFrame:
    """The recording's trials with the image (and onset/offset) of the trials table."""
    path = recording.path
    rows = table[table["recording"].isin([path.name, path.stem])]
    if rows.empty:
        raise MappingError(
            f"{path}: not in --trials-table (its 'recording' column names {sorted(table['recording'].unique())[:5]}); "
            f"add its trials as rows with recording {path.name!r}"
        )
    trials = recording.trials.copy()
    if trials.empty:
        raise MappingError(
            f"{path}: --trials-table lists trials of this recording, but it has no trial start message "
            f"(looked for {recording.rules['trial_start'] or 'TRIALID or start_trial'}); name it with "
            f"--trial-start REGEX. Messages that repeat:\n{format_candidates(recording)}"
        )
    by_id = rows.set_index("trial")
    unknown = sorted(set(by_id.index) - set(trials["trial_id"]))
    if unknown:
        raise MappingError(
            f"{path}: --trials-table names trials {unknown[:5]} that the recording does not have (its trial "
            f"ids: {trials['trial_id'].tolist()[:8]}{' …' if len(trials) > 8 else ''}); trial ids come from "
            "the start message's 'trial' group (--trial-start), else they are 0, 1, …"
        )
    listed = trials["trial_id"].isin(by_id.index)
    if not listed.all():
        _warn_missing(path, trials.loc[~listed, "trial_id"].tolist())
    trials["image"] = [by_id["image"].get(trial_id, "") for trial_id in trials["trial_id"]]
    for column, name in (("onset_tracker_ms", "onset_ms"), ("offset_tracker_ms", "offset_ms")):
        given = by_id[name].reindex(trials["trial_id"]).to_numpy(dtype=np.float64)
        trials[column] = np.where(np.isnan(given), trials[column].to_numpy(dtype=np.float64), given)
    trials["stimulus_duration_ms"] = trials["offset_tracker_ms"] - trials["onset_tracker_ms"]
    return trials.astype({"image": "string"})


def _warn_missing(path: Path, trial_ids: list[str]) -> None:
    message = (
        f"{path}: {len(trial_ids)} trials are not in --trials-table (ids {trial_ids[:5]}); their fixations are left out"
    )
    logger.warning(message)
    warnings.warn(message, EyeLinkDataWarning, stacklevel=3)


# --- placement -------------------------------------------------------------------------------


def imgload_placement(imgload: str, image_size: tuple[int, int], *, screen_px, scale: float | None) -> ImagePlacement:
    """Where a ``!V IMGLOAD`` message put the image.

    Parameters
    ----------
    imgload : str
        The placement text after the file name, with the mode first: ``"CENTER 512 384 [800 600]"``,
        ``"TOP_LEFT 0 0 [800 600]"`` or ``"FILL"``.
    image_size : (int, int)
        ``(width_px, height_px)`` of the image file.
    screen_px : (int, int) or None
        Screen size (needed by ``FILL`` only).
    scale : float or None
        Overrides the drawn size (image size × scale) when given.

    Returns
    -------
    ImagePlacement

    Raises
    ------
    ValueError
        For an unknown mode or missing coordinates; ``FILL`` without a screen size.
    """
    mode, *values = imgload.split()
    width, height = image_size
    if mode == "FILL":
        if screen_px is None:
            raise ValueError("'!V IMGLOAD FILL' stretches the image over the screen, whose size is unknown")
        return ImagePlacement(width, height, 0.0, 0.0, *screen_px)
    if mode not in ("CENTER", "TOP_LEFT") or len(values) not in (2, 4):
        raise ValueError(f"expected '!V IMGLOAD CENTER|TOP_LEFT <file> x y [width height]' or FILL; got {imgload!r}")
    numbers = [float(v) for v in values]
    drawn_w, drawn_h = (numbers[2], numbers[3]) if len(numbers) == 4 else (float(width), float(height))
    if scale is not None:
        drawn_w, drawn_h = width * scale, height * scale
    x, y = numbers[:2]
    if mode == "CENTER":
        x, y = x - drawn_w / 2, y - drawn_h / 2
    return ImagePlacement(width, height, x, y, drawn_w, drawn_h)


def _placements(recording: EyeLinkRecording, trials: pd.DataFrame, table: pd.DataFrame, image_sizes, options):
    """Placement per trial of ``table``, and which source gave it (``"!V IMGLOAD"`` or ``"centred"``)."""
    screen = options.screen_px or recording.display_px
    trials = trials.set_index("trial")
    placements: dict[int, ImagePlacement] = {}
    sources: dict[int, str] = {}
    for trial in table["trial"].unique():
        row = trials.loc[trial]
        size = _size_of(image_sizes, row["image"])
        if row["imgload"]:
            try:
                placements[trial] = imgload_placement(row["imgload"], size, screen_px=screen, scale=options.scale)
            except ValueError as error:
                raise MappingError(
                    f"{recording.path}, line {row['start_line']} (trial {row['trial_id']}): {error}; "
                    "pass the screen size with --screen W H"
                ) from None
            sources[trial] = "!V IMGLOAD"
            continue
        if screen is None:
            raise MappingError(
                f"{recording.path}: the screen size is unknown (no DISPLAY_COORDS or GAZE_COORDS message) "
                "and trials without '!V IMGLOAD' are centred on it; pass it with --screen W H"
            )
        geometry = DisplayGeometry.fit(
            *size,
            screen_width_px=screen[0],
            screen_height_px=screen[1],
            scale=options.scale if options.scale is not None else DEFAULT_SCALE,
        )
        placements[trial] = ImagePlacement.from_geometry(geometry)
        sources[trial] = "centred"
    return placements, sources
