"""The tidy fixation table: one row per fixation, the columns of :class:`lookwhere.records.Fixation`.

Every reader returns this table, the heatmap and metric code consumes it, and the live server builds
it from streamed records, so there is one schema for all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from lookwhere.records import FIXATION_COLUMNS, FIXATION_DTYPES, Fixation
from stimuli.geometry import DisplayGeometry

__all__ = [
    "empty_fixation_table",
    "fixation_table",
    "validate_fixation_table",
    "add_image_coordinates",
]


def empty_fixation_table() -> pd.DataFrame:
    """A fixation table with no rows and the right columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in FIXATION_DTYPES.items()})


def fixation_table(data: Mapping[str, Iterable] | Iterable[Fixation] | pd.DataFrame) -> pd.DataFrame:
    """Build a validated fixation table.

    Parameters
    ----------
    data : mapping of column → values, iterable of :class:`~lookwhere.records.Fixation`, or DataFrame
        Must provide every column of :data:`~lookwhere.records.FIXATION_COLUMNS`.

    Returns
    -------
    DataFrame
        Columns in the canonical order with the canonical dtypes and a fresh RangeIndex.
    """
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, Mapping):
        frame = pd.DataFrame(dict(data))
    else:
        rows = list(data)
        if not rows:
            return empty_fixation_table()
        frame = pd.DataFrame([{name: getattr(row, name) for name in FIXATION_COLUMNS} for row in rows])
    return validate_fixation_table(frame)


def validate_fixation_table(frame: pd.DataFrame, *, source: str = "fixation table") -> pd.DataFrame:
    """Check columns and values; return a copy with canonical column order and dtypes.

    Raises
    ------
    ValueError
        Listing every missing column, every column that cannot take its dtype, and rows with a
        negative or non-finite duration, all in one message.
    """
    problems = []
    missing = [name for name in FIXATION_COLUMNS if name not in frame.columns]
    if missing:
        problems.append(f"missing columns {missing}")
    out = {}
    for name in FIXATION_COLUMNS:
        if name in missing:
            continue
        try:
            out[name] = frame[name].astype(FIXATION_DTYPES[name])
        except (TypeError, ValueError) as error:
            problems.append(f"column {name!r} is not {FIXATION_DTYPES[name]}: {error}")
    if "duration_ms" in out:
        duration = out["duration_ms"].to_numpy()
        bad = np.flatnonzero(~np.isfinite(duration) | (duration < 0))
        if bad.size:
            problems.append(f"{bad.size} rows have a negative or non-finite duration_ms (first at row {bad[0]})")
    if problems:
        raise ValueError(f"{source} is not a valid fixation table: " + "; ".join(problems))
    return pd.DataFrame(out).reset_index(drop=True)


def add_image_coordinates(
    fixations: pd.DataFrame, geometries: Mapping[str, DisplayGeometry]
) -> pd.DataFrame:
    """Fill ``x_image_px``/``y_image_px`` from the display coordinates (undo centring and scaling).

    Parameters
    ----------
    fixations : DataFrame
        A fixation table with ``x_display_px``/``y_display_px`` in display pixels.
    geometries : mapping of image id → DisplayGeometry
        How each image was shown.

    Returns
    -------
    DataFrame
        A copy with the image coordinates set for every row whose image has a geometry.

    Raises
    ------
    KeyError
        If an image of the table has no geometry (listing up to five such ids).
    """
    out = fixations.copy()
    unknown = sorted(set(out["image"].unique()) - set(geometries))
    if unknown:
        raise KeyError(f"no display geometry for images {unknown[:5]} ({len(unknown)} in all)")
    for image_id, rows in out.groupby("image", sort=False).groups.items():
        x, y = geometries[image_id].display_to_image(
            out.loc[rows, "x_display_px"].to_numpy(), out.loc[rows, "y_display_px"].to_numpy()
        )
        out.loc[rows, "x_image_px"] = x
        out.loc[rows, "y_image_px"] = y
    return out
