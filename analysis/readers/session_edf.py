"""The project's own sessions from their EDF: the tracker's authoritative record of every session.

``lookwhere run`` keeps two records of each fixation: the one streamed over the link during the
session (``fixations.csv``) and the EDF the tracker writes and the session transfers at its end
(``<edf_name>.edf``, one per recording segment, listed in ``manifest.json``). The EDF holds every
event even when the link dropped one; this module reads it with the messages the task writes:

``TRIALID <index>`` … ``!V TRIAL_VAR image <id>`` … ``IMAGE_ONSET`` … ``!V IMGLOAD CENTER <file> x y w h`` …
``IMAGE_OFFSET`` … ``TRIAL_RESULT <code>``; an aborted run adds ``!V TRIAL_VAR aborted 1`` and is run
again under the same index, a skipped trial ``!V TRIAL_VAR skipped 1``.

So, per session: the trial number is the ``TRIALID`` index, runs marked aborted or skipped are
dropped (as the link record drops them) and of a trial run twice only the last run counts; the
participant and session ids are the session's own (``config.json``), so that both sources describe
the same trials. :func:`source_agreement` compares the two.

An ``edf2asc`` conversion beside the EDF (same name, ``.asc``) is read when the EDF is absent.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.fixations import StudyFixations, empty_fixation_table, fixation_table
from analysis.readers.eyelink import EyeLinkDataWarning, read_recording
from analysis.readers.mapping import MappingOptions, map_recording
from analysis.readers.session import read_session, session_files

__all__ = ["session_edfs", "read_session_fixations", "source_agreement", "SOURCES"]

logger = logging.getLogger(__name__)

SOURCES = ("edf", "link")


def session_edfs(folder) -> list[Path]:
    """The session's tracker files, one per recording segment, in segment order (empty when any is missing).

    Each segment of ``manifest.json`` names its EDF (``edf_name``); the file is ``<edf_name>.edf`` in
    the session folder (any letter case), else its ``edf2asc`` conversion ``<edf_name>.asc``.
    """
    folder = Path(folder)
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return []
    segments = json.loads(manifest.read_text()).get("segments", [])
    names = {path.name.lower(): path for path in folder.iterdir() if path.is_file()}
    files = []
    for segment in segments:
        name = str(segment.get("edf_name", "")).lower()
        found = names.get(f"{name}.edf") or names.get(f"{name}.asc")
        if not name or found is None:
            return []
        files.append(found)
    return files


def read_session_fixations(path, image_sizes, *, source: str | None = None, options: MappingOptions = MappingOptions()):
    """The fixations of one session or a folder of sessions, from the link record or the EDF.

    Parameters
    ----------
    path : str or Path
        A session folder or a folder of them (as :func:`~analysis.readers.session.read_session`).
    image_sizes : callable or mapping, image id → (width_px, height_px)
    source : {"edf", "link"}, optional
        ``"link"``: ``fixations.csv``; ``"edf"``: the transferred EDF files. Default: per session, the
        EDF when every segment's EDF is in the folder, else the link record (logged).
    options : MappingOptions
        Eye choice and display options for the EDF (the task's own messages need no trial options).

    Returns
    -------
    StudyFixations
        The fixations, with ``recordings`` saying which source each session used and ``agreement``
        (:func:`source_agreement`) for every session read from its EDF.

    Raises
    ------
    ValueError
        For ``source="edf"`` when a session has no EDF (naming the folder and ``--source link``).
    """
    if source is not None and source not in SOURCES:
        raise ValueError(f"--source must be one of {', '.join(SOURCES)}; got {source!r}")
    files = session_files(path)
    study = StudyFixations(table=empty_fixation_table())
    tables, agreements = [], []
    for fixations_csv in files:
        folder = fixations_csv.parent
        link = read_session(folder)
        edfs = session_edfs(folder)
        use = source or ("edf" if edfs else "link")
        if use == "edf" and not edfs:
            raise ValueError(
                f"session {folder} has no transferred EDF (manifest.json segments and their <edf_name>.edf); "
                "analyse its link record with --source link"
            )
        logger.info(
            "session %s: fixations from the %s",
            folder,
            "EDF " + ", ".join(p.name for p in edfs) if use == "edf" else "link record",
        )
        if use == "link":
            tables.append(link)
            study.files.append(fixations_csv)
            study.counts["read"] += len(link)
            study.counts["read_per_eye"].update(Counter(link["eye"].astype(str)))
            study.recordings.append({"file": str(fixations_csv), "format": "link", "counts": {"read": len(link)}})
            continue
        table = _session_edf_table(folder, edfs, link, image_sizes, options, study)
        tables.append(table)
        agreements.append(source_agreement(link, table))
    study.table = pd.concat(tables, ignore_index=True) if tables else empty_fixation_table()
    study.counts["mapped"] = len(study.table)
    study.agreement = pd.concat(agreements, ignore_index=True) if agreements else None
    return study


def _session_edf_table(folder: Path, edfs: list[Path], link: pd.DataFrame, image_sizes, options, study) -> pd.DataFrame:
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    participant = config.get("participant") or (link["participant"].iloc[0] if len(link) else folder.name)
    session = config.get("session_id") or (link["session"].iloc[0] if len(link) else folder.name)
    tables = []
    for edf in edfs:
        study.files.append(edf)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EyeLinkDataWarning)
            recording = read_recording(edf, participant=participant)
            table, summary = map_recording(recording, image_sizes, options)
        study.warnings.extend(str(w.message) for w in caught if issubclass(w.category, EyeLinkDataWarning))
        trials = recording.trials
        counted = _counted_runs(trials)
        keep = table["trial"].isin(trials.loc[counted, "trial"]).to_numpy()
        summary["counts"]["dropped"]["aborted, skipped or repeated run"] += int((~keep).sum())
        summary["counts"]["mapped"] = int(keep.sum())
        index_of = dict(zip(trials["trial"], pd.to_numeric(trials["trial_id"], errors="coerce")))
        # assign() calls the function at once, in this iteration
        table = fixation_table(table[keep].assign(session=session, trial=lambda t: t["trial"].map(index_of)))  # noqa: B023
        tables.append(table)
        study.recordings.append(summary | {"source": "edf", "session": str(folder)})
        study.counts["read"] += summary["counts"]["read"]
        study.counts["read_per_eye"].update(summary["counts"]["read_per_eye"])
        study.counts["dropped"].update(summary["counts"]["dropped"])
    return pd.concat(tables, ignore_index=True)


def _counted_runs(trials: pd.DataFrame) -> np.ndarray:
    """Mask of the trial runs that count: not aborted or skipped, and the last run of each index."""
    flagged = np.array(
        [variables.get("aborted") == "1" or variables.get("skipped") == "1" for variables in trials["variables"]],
        dtype=bool,
    )
    return ~flagged & ~trials["trial_id"].duplicated(keep="last").to_numpy()


def source_agreement(link: pd.DataFrame, edf: pd.DataFrame, *, tolerance_ms: float = 4.0) -> pd.DataFrame:
    """How the link record and the EDF agree, per trial of a session.

    A link fixation and an EDF fixation match when they are of the same participant, trial, image
    and eye and start within ``tolerance_ms`` of each other (the link sends the tracker's own
    events, so they should match one to one).

    Parameters
    ----------
    link, edf : DataFrame
        Fixation tables of the same session from the two sources.
    tolerance_ms : float
        Largest start difference of a match, ms.

    Returns
    -------
    DataFrame
        One row per (participant, session, trial, image): ``n_link``, ``n_edf``, ``n_matched``,
        ``max_start_diff_ms``, ``max_duration_diff_ms``, ``max_position_diff_px`` (display pixels)
        over the matched pairs (NaN without a match).
    """
    keys = ["participant", "session", "trial", "image"]
    link_groups = dict(list(link.groupby(keys, sort=True)))
    edf_groups = dict(list(edf.groupby(keys, sort=True)))
    empty = edf.iloc[:0]
    rows = []
    for key in sorted(set(link_groups) | set(edf_groups)):
        link_rows, edf_rows = link_groups.get(key, empty), edf_groups.get(key, empty)
        pairs = []
        for eye, edf_eye in edf_rows.groupby("eye"):
            candidates = link_rows[link_rows["eye"] == eye]
            used: set[int] = set()
            for fixation in edf_eye.itertuples():
                gaps = (candidates["start_ms"] - fixation.start_ms).abs()
                gaps = gaps[~gaps.index.isin(used) & (gaps <= tolerance_ms)]
                if len(gaps):
                    match = candidates.loc[gaps.idxmin()]
                    used.add(gaps.idxmin())
                    pairs.append(
                        (
                            abs(match["start_ms"] - fixation.start_ms),
                            abs(match["duration_ms"] - fixation.duration_ms),
                            float(
                                np.hypot(
                                    match["x_display_px"] - fixation.x_display_px,
                                    match["y_display_px"] - fixation.y_display_px,
                                )
                            ),
                        )
                    )
        diffs = np.array(pairs, dtype=np.float64).reshape(-1, 3)
        worst = diffs.max(axis=0) if len(diffs) else np.full(3, np.nan)
        rows.append(
            dict(zip(keys, key))
            | {
                "n_link": len(link_rows),
                "n_edf": len(edf_rows),
                "n_matched": len(pairs),
                "max_start_diff_ms": worst[0],
                "max_duration_diff_ms": worst[1],
                "max_position_diff_px": worst[2],
            }
        )
    return pd.DataFrame(
        rows,
        columns=keys
        + ["n_link", "n_edf", "n_matched", "max_start_diff_ms", "max_duration_diff_ms", "max_position_diff_px"],
    )
