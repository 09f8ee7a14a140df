"""Session records: append, torn writes, resume repair, the tidy fixation table."""

from __future__ import annotations

import math

from experiment.records import SessionRecords
from lookwhere.records import FIXATION_COLUMNS, FIXATION_DTYPES, Fixation, read_trial_rows


def _fixation(trial: int, start_ms: float) -> Fixation:
    return Fixation(
        "P07",
        "s",
        trial,
        f"img{trial}",
        "R",
        start_ms,
        start_ms + 96,
        100.0,
        960.0,
        540.0,
        400.0,
        300.0,
        5000.0,
        math.nan,
    )


def test_append_then_read_back_the_tidy_table(tmp_path):
    records = SessionRecords(tmp_path / "P07")
    records.create()
    records.append_trial({"trial": 0, "image": "img0"}, [_fixation(0, 10.0), _fixation(0, 200.0)])
    records.append_trial({"trial": 1, "image": "img1"}, [])
    table = records.read_fixations()
    assert tuple(table.columns) == FIXATION_COLUMNS
    assert {c: str(t) for c, t in table.dtypes.items()} == FIXATION_DTYPES
    assert table["start_ms"].tolist() == [10.0, 200.0] and table["pupil"].isna().all()
    assert [row["trial"] for row in records.completed_trials()] == [0, 1]


def test_the_truncated_flag_round_trips_and_older_tables_read_without_it(tmp_path):
    from dataclasses import replace

    from lookwhere.records import read_fixation_csv

    records = SessionRecords(tmp_path / "P07")
    records.create()
    records.append_trial(
        {"trial": 0, "image": "img0"}, [_fixation(0, 10.0), replace(_fixation(0, 200.0), truncated=True)]
    )
    table = records.read_fixations()
    assert table["truncated"].tolist() == [False, True]
    # a table written before the column existed: every fixation reads as not truncated
    old = tmp_path / "old.csv"
    table.drop(columns="truncated").to_csv(old, index=False, na_rep="nan")
    back = read_fixation_csv(old)
    assert tuple(back.columns) == FIXATION_COLUMNS and not back["truncated"].any()


def test_repair_drops_a_torn_row_and_orphan_fixations(tmp_path):
    records = SessionRecords(tmp_path / "P07")
    records.create()
    records.append_trial({"trial": 0, "image": "img0"}, [_fixation(0, 10.0)])
    # A kill after trial 1's fixations were written but before its row was complete:
    records.append_trial({"trial": 1, "image": "img1"}, [_fixation(1, 20.0), _fixation(1, 300.0)])
    text = records.trials_path.read_text()
    records.trials_path.write_text(text[: text.rindex("{") + 5])
    assert [row["trial"] for row in records.completed_trials()] == [0]
    done = records.repair()
    assert [row["trial"] for row in done] == [0]
    assert records.read_fixations()["trial"].tolist() == [0]
    assert records.trials_path.read_text().count("\n") == 1
    # Repeating the repair changes nothing (idempotent).
    records.repair()
    assert records.read_fixations()["trial"].tolist() == [0]


def test_manifest_is_replaced_atomically(tmp_path):
    records = SessionRecords(tmp_path / "P07")
    records.create()
    assert records.read_manifest() == {}
    records.write_manifest({"status": "running"})
    records.write_manifest({"status": "completed"})
    assert records.read_manifest() == {"status": "completed"}
    assert not list(records.folder.glob("*.tmp"))


def test_the_analysis_reads_each_shown_trial_once(tmp_path, caplog):
    """read_trial_rows (what the analysis, the BIDS export and voice detection read): skipped
    trials out, the last row of a trial written twice, a torn line skipped with a warning; the
    experiment's own view keeps every complete row in file order."""
    records = SessionRecords(tmp_path / "P07")
    records.create()
    records.append_trial({"trial": 1, "image": "img1", "run": "first"}, [])
    records.append_trial({"trial": 0, "image": "img0"}, [])
    records.append_trial({"trial": 2, "image": "img2", "skipped": True}, [])
    records.append_trial({"trial": 1, "image": "img1", "run": "again"}, [])
    with records.trials_path.open("a") as handle:
        handle.write('{"trial": 3, "ima')  # torn by a kill
    assert read_trial_rows(records.folder) == [
        {"trial": 0, "image": "img0"},
        {"trial": 1, "image": "img1", "run": "again"},
    ]
    assert "line 5 is incomplete" in caplog.text
    assert [row["trial"] for row in records.completed_trials()] == [1, 0, 2, 1]
    assert read_trial_rows(tmp_path / "nowhere") == []
