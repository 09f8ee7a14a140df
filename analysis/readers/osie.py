"""Reader for the OSIE eye-tracking data set (Xu et al., "Predicting human gaze beyond pixels", 2014).

``fixations.mat`` holds one MATLAB struct per image (700 images, 800×600 px), each with the
fixations of 15 observers during 3 s of free viewing::

    fixations{i}.img                      file name, e.g. '1001.jpg'
    fixations{i}.subjects{s}.fix_x        x of each fixation (1-based MATLAB pixel coordinates)
    fixations{i}.subjects{s}.fix_y        y of each fixation
    fixations{i}.subjects{s}.fix_duration duration of each fixation, ms

There are no onset times, so ``start_ms``/``end_ms`` are NaN; the fixations of one observer are in
viewing order (the rows of the table keep that order).

Coordinate convention
---------------------
OSIE positions are *MATLAB 1-based* pixel coordinates, in which pixel ``k`` (1-based) is centred on
``k``; the project's frame puts the centre of 0-based pixel ``k - 1`` at ``k - 0.5``. So

    x_image_px = fix_x - 0.5,    y_image_px = fix_y - 0.5.

Evidence: the values are not integers (0.1 px resolution), so they are not pixel indices, and the
data alone cannot tell the two conventions apart (``fix_x`` spans [1.2, 799.2], ``fix_y`` [1.2,
599.2], inside both [0, 800) and [0.5, 800.5)). The authors' own code settles it:
``src/dataset/computeFixationMaps.m`` marks fixation ``k`` at
``map(max(1, min(round(fix_y), h)), max(1, min(round(fix_x), w)))`` — the 1-based pixel whose centre
is nearest — and ``showEyeData.m`` plots ``fix_x``/``fix_y`` directly over ``imshow``, whose pixel
``k`` is centred on ``k``. With the shift, ``floor(x_image_px)`` is exactly the 0-based column that
code marks (MATLAB's ``round`` sends ``k + 0.5`` up, as ``floor`` does). The shifted range is
[0.7, 798.7] × [0.7, 598.7], inside the image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.fixations import fixation_table

__all__ = ["read_osie", "OSIE_STIMULUS_DURATION_MS", "OSIE_SESSION", "MATLAB_TO_CORNER_PX"]

logger = logging.getLogger(__name__)

OSIE_STIMULUS_DURATION_MS = 3000.0
"""OSIE free-viewing time per image: 3 s (Xu et al. 2014)."""

OSIE_SESSION = "osie"

MATLAB_TO_CORNER_PX = -0.5
"""Added to a MATLAB 1-based pixel coordinate to get the project's corner-origin coordinate."""


def read_osie(path, *, images: Sequence[str] | None = None) -> pd.DataFrame:
    """Read OSIE ``fixations.mat`` into the tidy fixation table.

    Parameters
    ----------
    path : str or Path
        The OSIE ``fixations.mat`` (e.g. ``../shared/data/osie/eye/fixations.mat``).
    images : sequence of str, optional
        Image ids (file stems, e.g. ``["1001", "1002"]``) to keep; default all 700. Rows keep the
        file's image order whatever the order of ``images``.

    Returns
    -------
    DataFrame
        One row per fixation with the columns and dtypes of
        :data:`lookwhere.records.FIXATION_COLUMNS`: ``participant`` ``"s01"`` … ``"s15"`` (the
        observer's 1-based index in the struct), ``session`` ``"osie"``, ``trial`` -1, ``image`` the
        file stem, ``eye`` ``""``, ``start_ms``/``end_ms`` NaN (OSIE gives durations only),
        ``duration_ms``, ``x_image_px``/``y_image_px`` in original-image pixels with the origin at
        the top-left corner (``fix - 0.5``, see the module notes), display coordinates and
        ``pupil`` NaN, ``stimulus_duration_ms`` 3000. Rows are ordered by image, observer, then
        viewing order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a MATLAB file with the OSIE ``fixations`` struct, naming what is wrong.
    TypeError
        If ``images`` is a single string instead of a sequence of ids.
    KeyError
        If an id in ``images`` is not in the file; the message lists the ids that exist.
    """
    path = Path(path)
    wanted = _check_images(images)
    entries = _load_struct(path)
    ids = [_image_id(entry, index, path) for index, entry in enumerate(entries)]
    if wanted is not None:
        unknown = [image for image in wanted if image not in set(ids)]
        if unknown:
            raise KeyError(
                f"images {unknown} are not in {path}; it holds {len(ids)} images with ids "
                f"{ids[0]} … {ids[-1]} (file stems, e.g. {ids[0]!r})"
            )
        keep = set(wanted)
        selected = [(image, entry) for image, entry in zip(ids, entries) if image in keep]
    else:
        selected = list(zip(ids, entries))
    table = _build_table(selected, path)
    logger.info("read %d fixations on %d images from %s", len(table), len(selected), path)
    return table


def _check_images(images: Sequence[str] | None) -> list[str] | None:
    if images is None:
        return None
    if isinstance(images, str):
        raise TypeError(f"images must be a sequence of image ids, e.g. [{images!r}]; got the string {images!r}")
    wanted = list(images)
    bad = [image for image in wanted if not isinstance(image, str)]
    if bad:
        raise TypeError(f"images must hold image ids as strings (file stems such as '1001'); got {bad[:5]}")
    return wanted


def _load_struct(path: Path) -> np.ndarray:
    """The ``fixations`` cell array as a 1-D object array of MATLAB structs."""
    from scipy.io import loadmat  # heavy import, only needed here
    from scipy.io.matlab import MatReadError

    if not path.is_file():
        raise FileNotFoundError(f"OSIE fixation file {path} does not exist; pass the path of fixations.mat")
    try:
        contents = loadmat(path, squeeze_me=True, struct_as_record=False)
    except (MatReadError, ValueError, TypeError, OSError) as error:
        raise ValueError(
            f"{path} is not a readable MATLAB .mat file ({error}); pass OSIE's eye/fixations.mat"
        ) from error
    if "fixations" not in contents:
        found = sorted(key for key in contents if not key.startswith("__"))
        raise ValueError(f"{path} has no variable 'fixations' (found {found}); is it OSIE's eye/fixations.mat?")
    return np.atleast_1d(contents["fixations"])


def _image_id(entry, index: int, path: Path) -> str:
    if not hasattr(entry, "img") or not hasattr(entry, "subjects"):
        raise ValueError(f"{path}: fixations[{index}] lacks the fields 'img' and 'subjects' of the OSIE struct")
    return Path(str(entry.img)).stem


def _build_table(selected: list[tuple[str, Any]], path: Path) -> pd.DataFrame:
    """Flatten (image, struct) pairs into the fixation table, converting coordinates once."""
    images, participants, xs, ys, durations = [], [], [], [], []
    for image, entry in selected:
        for observer, subject in enumerate(np.atleast_1d(entry.subjects), start=1):
            # squeeze_me turns a one-fixation observer into scalars; atleast_1d restores the arrays.
            x = np.atleast_1d(subject.fix_x).astype(np.float64)
            y = np.atleast_1d(subject.fix_y).astype(np.float64)
            duration = np.atleast_1d(subject.fix_duration).astype(np.float64)
            if not x.size == y.size == duration.size:
                raise ValueError(
                    f"{path}: image {image} observer {observer} has {x.size} fix_x, {y.size} fix_y and "
                    f"{duration.size} fix_duration values; they must match"
                )
            images.append(np.full(x.size, image, dtype=object))
            participants.append(np.full(x.size, f"s{observer:02d}", dtype=object))
            xs.append(x)
            ys.append(y)
            durations.append(duration)
    n = sum(len(x) for x in xs)
    nan = np.full(n, np.nan)

    def joined(parts, dtype) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

    return fixation_table(
        {
            "participant": joined(participants, object),
            "session": np.full(n, OSIE_SESSION, dtype=object),
            "trial": np.full(n, -1, dtype=np.int64),
            "image": joined(images, object),
            "eye": np.full(n, "", dtype=object),
            "start_ms": nan,
            "end_ms": nan,
            "duration_ms": joined(durations, np.float64),
            "x_display_px": nan,
            "y_display_px": nan,
            "x_image_px": joined(xs, np.float64) + MATLAB_TO_CORNER_PX,
            "y_image_px": joined(ys, np.float64) + MATLAB_TO_CORNER_PX,
            "stimulus_duration_ms": np.full(n, OSIE_STIMULUS_DURATION_MS),
            "pupil": nan,
        }
    )
