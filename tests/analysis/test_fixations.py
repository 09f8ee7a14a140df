"""The tidy fixation table. Oracle: the schema of lookwhere.records and hand-computed coordinates."""

from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis.fixations import add_image_coordinates, empty_fixation_table, fixation_table
from lookwhere.records import FIXATION_COLUMNS, FIXATION_DTYPES, Fixation
from stimuli.geometry import DisplayGeometry


def _fixation(**overrides: Any) -> Fixation:
    values: dict[str, Any] = dict(
        participant="P01",
        session="s",
        trial=0,
        image="img",
        eye="R",
        start_ms=10.0,
        end_ms=210.0,
        duration_ms=200.0,
        x_display_px=960.0,
        y_display_px=540.0,
        x_image_px=np.nan,
        y_image_px=np.nan,
        stimulus_duration_ms=5000.0,
        pupil=np.nan,
    )
    values.update(overrides)
    return Fixation(**values)


def test_empty_table_has_canonical_columns_and_dtypes():
    table = empty_fixation_table()
    assert tuple(table.columns) == FIXATION_COLUMNS
    assert {c: str(t) for c, t in table.dtypes.items()} == FIXATION_DTYPES


def test_table_from_records_round_trips():
    table = fixation_table([_fixation(), _fixation(trial=1, duration_ms=100.0)])
    assert len(table) == 2
    assert table["trial"].tolist() == [0, 1]
    assert str(table["image"].dtype) == "string"


def test_invalid_table_lists_every_problem():
    frame = pd.DataFrame({"participant": ["a"], "duration_ms": [-5.0]})
    with pytest.raises(ValueError) as error:
        fixation_table(frame)
    message = str(error.value)
    assert "missing columns" in message and "'image'" in message
    assert "negative or non-finite duration_ms" in message


def test_display_to_image_coordinates():
    geometry = DisplayGeometry.fit(500, 375)
    table = fixation_table([_fixation(), _fixation(x_display_px=460.0, y_display_px=165.0)])
    out = add_image_coordinates(table, {"img": geometry})
    np.testing.assert_allclose(out["x_image_px"], [250.0, 0.0])
    np.testing.assert_allclose(out["y_image_px"], [187.5, 0.0])
    assert np.isnan(table["x_image_px"]).all(), "the input table must not change"
    with pytest.raises(KeyError, match="no display geometry"):
        add_image_coordinates(table, {})
