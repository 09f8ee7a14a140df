"""The tidy fixation table: one row per fixation, the columns of :class:`lookwhere.records.Fixation`.

Every reader returns this table, the heatmap and metric code consumes it, and the live server builds
it from streamed records, so there is one schema for all of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lookwhere.records import FIXATION_COLUMNS, FIXATION_DTYPES, OPTIONAL_COLUMNS, Fixation
from stimuli.geometry import DisplayGeometry

__all__ = [
    "empty_fixation_table",
    "fixation_table",
    "validate_fixation_table",
    "add_image_coordinates",
    "ImagePlacement",
    "StudyFixations",
]


def empty_fixation_table() -> pd.DataFrame:
    """A fixation table with no rows and the right columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in FIXATION_DTYPES.items()})


def fixation_table(data: Mapping[str, Iterable] | Iterable[Fixation] | pd.DataFrame) -> pd.DataFrame:
    """Build a validated fixation table.

    Parameters
    ----------
    data : mapping of column → values, iterable of :class:`~lookwhere.records.Fixation`, or DataFrame
        Must provide every column of :data:`~lookwhere.records.FIXATION_COLUMNS` but those of
        :data:`~lookwhere.records.OPTIONAL_COLUMNS`, which take their default.

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
    absent = [name for name in OPTIONAL_COLUMNS if name not in frame.columns]
    if absent:  # a table from a source that cannot tell (e.g. OSIE): the column's default
        frame = frame.assign(**{name: OPTIONAL_COLUMNS[name] for name in absent})
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


@dataclass(frozen=True)
class ImagePlacement:
    """Where an image lay on the screen: its top-left corner and drawn size, in display pixels.

    The general form of :class:`~stimuli.geometry.DisplayGeometry` (which always centres the image),
    for recordings that state the placement themselves (Data Viewer's ``!V IMGLOAD TOP_LEFT``,
    ``CENTER`` and ``FILL``).

    Parameters
    ----------
    image_width_px, image_height_px : int
        Size of the original image.
    left_px, top_px : float
        Screen position of the image's top-left corner.
    display_width_px, display_height_px : float
        Size of the image as drawn.
    """

    image_width_px: int
    image_height_px: int
    left_px: float
    top_px: float
    display_width_px: float
    display_height_px: float

    def __post_init__(self) -> None:
        sizes = (self.image_width_px, self.image_height_px, self.display_width_px, self.display_height_px)
        if not all(np.isfinite(size) and size > 0 for size in sizes):
            raise ValueError(f"image and displayed sizes must be > 0; got {self}")
        if not (np.isfinite(self.left_px) and np.isfinite(self.top_px)):
            raise ValueError(f"the image position must be finite; got {self}")

    @classmethod
    def from_geometry(cls, geometry: DisplayGeometry) -> ImagePlacement:
        """The placement of a centred :class:`~stimuli.geometry.DisplayGeometry`."""
        return cls(
            geometry.image_width_px,
            geometry.image_height_px,
            geometry.left_px,
            geometry.top_px,
            geometry.display_width_px,
            geometry.display_height_px,
        )

    def display_to_image(self, x_display_px, y_display_px):
        """Map screen positions, shape (N,), to original-image pixels (undo position, then scale)."""
        x = (np.asarray(x_display_px, dtype=float) - self.left_px) * (self.image_width_px / self.display_width_px)
        y = (np.asarray(y_display_px, dtype=float) - self.top_px) * (self.image_height_px / self.display_height_px)
        return x, y

    def to_dict(self) -> dict[str, float]:
        """Plain-data form, for ``params.json``."""
        return {name: float(getattr(self, name)) for name in self.__dataclass_fields__}


def add_image_coordinates(fixations: pd.DataFrame, geometries: Mapping, *, by="image") -> pd.DataFrame:
    """Fill ``x_image_px``/``y_image_px`` from the display coordinates (undo placement and scaling).

    Parameters
    ----------
    fixations : DataFrame
        A fixation table with ``x_display_px``/``y_display_px`` in display pixels.
    geometries : mapping of key → DisplayGeometry or ImagePlacement
        How each image was shown; a key is the value of column ``by``, or a tuple of values when
        ``by`` names several columns.
    by : str or tuple of str
        The column(s) that pick the placement: ``"image"`` when every showing of an image was placed
        alike, ``("session", "trial")`` when each trial states its own.

    Returns
    -------
    DataFrame
        A copy with the image coordinates set for every row.

    Raises
    ------
    KeyError
        If a row's key has no geometry (listing up to five such keys).
    """
    out = fixations.copy()
    columns = [by] if isinstance(by, str) else list(by)
    groups = out.groupby(columns if len(columns) > 1 else columns[0], sort=False).groups
    unknown = [key for key in groups if key not in geometries]
    if unknown:
        raise KeyError(f"no display geometry for {by} {unknown[:5]} ({len(unknown)} in all)")
    for key, rows in groups.items():
        x, y = geometries[key].display_to_image(
            out.loc[rows, "x_display_px"].to_numpy(), out.loc[rows, "y_display_px"].to_numpy()
        )
        out.loc[rows, "x_image_px"] = x
        out.loc[rows, "y_image_px"] = y
    return out


@dataclass
class StudyFixations:
    """A study's fixations with their provenance: what ``params.json`` records about the input.

    Attributes
    ----------
    table : DataFrame
        The tidy fixation table, image coordinates set.
    files : list of Path
        Every input file read (the failed ones included).
    failed : dict of str → str
        File → why it was left out (the message names the file; the others were analysed).
    warnings : list of str
        Data warnings, each naming its file.
    recordings : list of dict
        Per recording: the eye used and why, display size and its source, units, the trial rules
        applied, fixation counts.
    counts : dict
        Fixation counts: ``read`` (every fixation in the files), ``read_per_eye``, ``dropped``
        (reason → n) and ``mapped`` (in the table).
    agreement : DataFrame or None
        For sessions read from their EDF: how the link record agrees with it, per trial
        (:func:`analysis.readers.session_edf.source_agreement`).
    """

    table: pd.DataFrame
    files: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    recordings: list[dict] = field(default_factory=list)
    counts: dict = field(default_factory=lambda: {"read": 0, "read_per_eye": Counter(), "dropped": Counter()})
    agreement: pd.DataFrame | None = None
