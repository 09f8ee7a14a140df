"""Reader of the project's own session records (``lookwhere run``).

A session folder holds ``fixations.csv``, already in the tidy table's columns with display and
image coordinates (see :mod:`experiment.records`); this reader finds and validates them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from analysis.fixations import validate_fixation_table
from lookwhere.records import SESSION_FIXATIONS_FILE, read_fixation_csv

__all__ = ["read_session", "session_files"]

logger = logging.getLogger(__name__)


def read_session(path) -> pd.DataFrame:
    """Read one recorded session, or every session in a folder of them.

    Parameters
    ----------
    path : str or Path
        A session folder (it holds ``fixations.csv``) or a folder whose sub-folders are sessions
        (e.g. the ``--out`` folder of ``lookwhere run``).

    Returns
    -------
    DataFrame
        The tidy fixation table of every session found, one row per fixation.

    Raises
    ------
    FileNotFoundError
        When ``path`` holds no session.
    ValueError
        When a ``fixations.csv`` is not a valid fixation table (the message names the file).
    """
    path = Path(path)
    files = session_files(path)
    tables = []
    for file in files:
        try:
            table = read_fixation_csv(file)
        except (ValueError, KeyError) as error:
            raise ValueError(f"{file} is not a lookwhere fixation table: {error}") from error
        tables.append(validate_fixation_table(table, source=str(file)))
        logger.info("read %d fixations from %s", len(table), file)
    return pd.concat(tables, ignore_index=True)


def session_files(path) -> list[Path]:
    """The ``fixations.csv`` of the session at ``path``, or of every session folder in it.

    Raises
    ------
    FileNotFoundError
        When there is none.
    """
    path = Path(path)
    files = (
        [path / SESSION_FIXATIONS_FILE]
        if (path / SESSION_FIXATIONS_FILE).is_file()
        else sorted(path.glob(f"*/{SESSION_FIXATIONS_FILE}"))
    )
    if not files:
        raise FileNotFoundError(
            f"no session in {path}: expected {SESSION_FIXATIONS_FILE} there or in its sub-folders "
            "(the folders lookwhere run writes)"
        )
    return files
