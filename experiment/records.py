"""Session records: append-only files that survive any exit, and what ``--resume`` reads back.

A session folder (``out / participant``) holds

``config.json``
    The :class:`~experiment.config.SessionConfig`.
``manifest.json``
    Versions, clocks, calibration results and one entry per recording segment (first run and
    each resume), rewritten atomically whenever it changes.
``trials.jsonl``
    One JSON object per *completed* trial (see :meth:`SessionRecords.append_trial`).
``fixations.csv``
    The tidy fixation table, columns exactly :data:`lookwhere.records.FIXATION_COLUMNS`.
``audio/``
    One WAV per trial.

Both tables are appended once per trial, between trials, then flushed and fsynced: no frame waits
on the disk, and a killed process loses at most the trial in progress. A trial counts as done
when its row is in ``trials.jsonl``; fixations of an unfinished trial are dropped on resume, so
nothing is duplicated.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path

from lookwhere.records import (
    FIXATION_COLUMNS,
    SESSION_FIXATIONS_FILE,
    SESSION_TRIALS_FILE,
    Fixation,
    read_fixation_csv,
    read_trial_rows,
)

__all__ = ["SessionRecords"]

logger = logging.getLogger(__name__)


def _fsync_append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class SessionRecords:
    """The files of one session folder.

    Parameters
    ----------
    folder : Path
        Session folder; :meth:`create` makes it (reading needs no folder).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def create(self) -> None:
        """Create the session folder and its ``audio/`` subfolder."""
        self.audio_dir.mkdir(parents=True, exist_ok=True)

    @property
    def config_path(self) -> Path:
        return self.folder / "config.json"

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    @property
    def trials_path(self) -> Path:
        return self.folder / SESSION_TRIALS_FILE

    @property
    def fixations_path(self) -> Path:
        return self.folder / SESSION_FIXATIONS_FILE

    @property
    def audio_dir(self) -> Path:
        return self.folder / "audio"

    def completed_trials(self) -> list[dict]:
        """Rows of ``trials.jsonl`` in file order, skipping a torn last line left by a killed process."""
        return read_trial_rows(self.folder, shown_only=False)

    def repair(self) -> list[dict]:
        """Make the tables consistent after an interruption; return the completed trial rows.

        Drops a torn line of ``trials.jsonl`` and every fixation of a trial without a row (the
        trial was interrupted after its fixations were written), so that a resumed session holds
        every trial exactly once.
        """
        rows = self.completed_trials()
        if self.trials_path.exists():
            _atomic_write(self.trials_path, "".join(json.dumps(row) + "\n" for row in rows))
        if self.fixations_path.exists():
            done = {str(row["trial"]) for row in rows}
            with open(self.fixations_path, encoding="utf-8", newline="") as handle:
                table = list(csv.reader(handle))
            trial_col = FIXATION_COLUMNS.index("trial")
            kept = [table[0]] + [r for r in table[1:] if len(r) == len(FIXATION_COLUMNS) and r[trial_col] in done]
            if len(kept) != len(table):
                logger.info("dropping %d fixation rows of unfinished trials", len(table) - len(kept))
            _atomic_write(self.fixations_path, "".join(_csv_line(r) for r in kept))
        return rows

    def append_trial(self, row: dict, fixations: list[Fixation]) -> None:
        """Append one finished trial: its fixations first, then its row (which marks it done).

        Parameters
        ----------
        row : dict
            JSON-serialisable trial summary; must hold ``"trial"`` (int).
        fixations : list of Fixation
            The trial's fixations.
        """
        if not self.fixations_path.exists():
            _fsync_append(self.fixations_path, _csv_line(FIXATION_COLUMNS))
        _fsync_append(
            self.fixations_path,
            "".join(_csv_line([getattr(f, c) for c in FIXATION_COLUMNS]) for f in fixations),
        )
        _fsync_append(self.trials_path, json.dumps(row) + "\n")

    def read_manifest(self) -> dict:
        """The manifest, or an empty dict before the first write."""
        if not self.manifest_path.exists():
            return {}
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def write_manifest(self, manifest: dict) -> None:
        """Replace the manifest atomically (a crash leaves the old or the new one, never half)."""
        _atomic_write(self.manifest_path, json.dumps(manifest, indent=2, default=str) + "\n")

    def read_fixations(self):
        """The fixation table as a pandas DataFrame with :data:`FIXATION_DTYPES`."""
        return read_fixation_csv(self.fixations_path)


def _csv_line(values) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(["nan" if isinstance(v, float) and v != v else v for v in values])
    return buffer.getvalue()
