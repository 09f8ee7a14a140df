"""Reader for EyeLink EDF files, through SR Research's EDF API as bundled by ``eyelinkio``.

Why not ``eyelinkio.read_edf``
------------------------------
``eyelinkio`` (BSD-3) ships SR Research's EDF access library inside its wheel and binds it with
ctypes; that binding is what this module uses. Its own ``read_edf`` does not fit, measured on
``shared/data/eyelink/eyelinkio/test_2_raw.edf`` (125 s at 1000 Hz):

- it always reads every sample: 2.0 s, against 0.08 s for the events and messages alone;
- it converts every event time to seconds from the first sample by interpolating on the sample
  clock, so the tracker clock (which lines messages up with events across the gaps between
  recording blocks) is gone;
- it drops what the ASC reader keeps: each fixation's pupil, each block's position units, the
  message time offsets, saccade amplitudes.

So this module walks the file's elements itself (``edf_get_next_data``) and fills the ASC reader's
intermediate rows; from there both formats share one pipeline
(:func:`analysis.readers.eyelink.build_recording`), so an EDF and its ``edf2asc`` conversion give
the same tables. ``eyelinkio.read_edf`` is the tests' oracle. Because the binding is internal to
``eyelinkio``, the dependency is pinned below its next minor version.

What differs from an ASC file
-----------------------------
- ``line`` columns hold the element number in the file (1-based), not a text line;
- durations are ``end - start + one sample``, as ``edf2asc`` writes them (the EDF stores no duration);
- saccade amplitudes are computed as ``edf2asc`` does, from the start and end positions and the
  mean resolution (pixels per degree) at both ends; block resolutions are the mean over the block's
  fixations;
- ``remote`` is False: remote mode shows only in the samples' target data, which are not read;
- message text is its first line (the EDF keeps a calibration report's continuation lines in the
  message, ``edf2asc`` writes them as separate lines).

Safety
------
The EDF API crashes the process (segmentation fault) on some damaged files. The file is therefore
read in a child process; a crash there becomes an :class:`~analysis.readers.eyelink.EyeLinkFormatError`
naming the file, so one bad file in a folder is reported and skipped like any other.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.readers.eyelink import (
    _EDF_MAGIC,
    EyeLinkFormatError,
    EyeLinkRecording,
    TrialRules,
    _check_rules,
    _check_text,
    _Parsed,
    add_header_line,
    add_message,
    build_recording,
    new_block,
)

__all__ = ["read_eyelink_edf"]

# Element types and flags of SR Research's EDF API (edf_data.h), as eyelinkio defines them.
_SAMPLE, _ENDBLINK, _ENDSACC, _ENDFIX, _MESSAGE, _RECORDING_INFO, _NO_PENDING_ITEMS = 200, 4, 6, 8, 24, 30, 0
_READ_HREFXY, _READ_GAZEXY = 0x0800, 0x1000
_PARSED_BY = {0xC0: "GAZE", 0x80: "HREF", 0x40: "PUPIL"}
_EYES = {1: "L", 2: "R", 3: "LR"}
_MISSING = 1e7  # the API writes 1e8 (floats) or -32768 (integers) for a missing value


def read_eyelink_edf(
    path,
    *,
    participant: str | None = None,
    rules: TrialRules | None = None,
    samples: bool = False,
) -> EyeLinkRecording:
    """Read an EyeLink EDF file into the same tables as :func:`~analysis.readers.eyelink.read_eyelink_asc`.

    Parameters
    ----------
    path : str or Path
        An EDF file as the tracker wrote it.
    participant : str, optional
        Participant id for the fixation table; default the file stem.
    rules : TrialRules, optional
        How trials, images, onsets and offsets are marked.
    samples : bool
        Also read the samples (gaze position and pupil per eye) into
        :attr:`~analysis.readers.eyelink.EyeLinkRecording.samples`; slower.

    Returns
    -------
    EyeLinkRecording
        ``format == "edf"``; see the module docstring for what differs from an ASC file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    EyeLinkFormatError
        If the file is not an EDF, the EDF API cannot open it (e.g. a truncated copy) or crashes on it.
    ImportError
        If ``eyelinkio`` is not installed.
    """
    path = Path(path)
    participant = _check_text("participant", participant)
    rules = _check_rules(rules)
    if not path.is_file():
        raise FileNotFoundError(f"EyeLink recording {path} does not exist")
    with open(path, "rb") as handle:
        if handle.read(len(_EDF_MAGIC)) != _EDF_MAGIC:
            raise EyeLinkFormatError(
                f"{path} is not an EDF file (it does not start with {_EDF_MAGIC.decode()}); pass the file the "
                "tracker wrote, or read an ASC conversion with read_eyelink_asc"
            )
    _check_eyelinkio()
    raw = _scan_in_child(path, samples)
    if raw["error"]:
        raise EyeLinkFormatError(
            f"{path}: SR Research's EDF API cannot open it ({raw['error']}); the file may be truncated or "
            "damaged: copy it from the tracker again"
        )
    parsed = _to_parsed(raw, path)
    return build_recording(parsed, path, participant=participant, rules=rules, format="edf")


def _check_eyelinkio() -> None:
    try:
        import eyelinkio.edf._edf2py  # noqa: F401  (loads the bundled EDF API)
    except ImportError as error:
        raise ImportError(
            f"reading EDF files needs the eyelinkio package ({error}); install the project's analysis "
            "dependencies (pip install -e .) or convert the EDF with SR Research's edf2asc"
        ) from error
    except OSError as error:
        raise ImportError(f"eyelinkio cannot load SR Research's EDF API on this system: {error}") from error


def _scan_in_child(path: Path, samples: bool) -> dict:
    """:func:`_scan` in a child process, so that a crash of the EDF API cannot take this one down."""
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context(method)) as pool:
        try:
            return pool.submit(_scan, str(path), samples).result()
        except BrokenProcessPool:
            raise EyeLinkFormatError(
                f"{path}: SR Research's EDF API crashed reading this file; it is damaged or not an EDF. "
                "Copy it from the tracker again"
            ) from None


def _scan(path: str, samples: bool) -> dict:
    """Every element of the file as plain rows (runs in the child process)."""
    import ctypes
    import faulthandler

    # A crash here is reported by the parent; a traceback dump from the child would only add noise.
    faulthandler.disable()

    from eyelinkio.edf import _edf2py as api

    raw: dict[str, Any] = {
        "error": "",
        "header": [],
        "messages": [],
        "fixations": [],
        "saccades": [],
        "blinks": [],
        "blocks": [],
        "samples": [],
        "pupil_type": None,
        "n_elements": 0,
    }
    # The library prints to the C stdout/stderr ("loadEvents = 1", its errors): capture them.
    with tempfile.TemporaryFile() as captured:
        saved = [os.dup(1), os.dup(2)]
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(captured.fileno(), 1)
        os.dup2(captured.fileno(), 2)
        try:
            status = ctypes.c_int(0)
            edf = api.edf_open_file(os.fsencode(path), 2, 1, int(samples), ctypes.byref(status))
            if not edf or status.value != 0:
                captured.seek(0)
                text = captured.read().decode("latin-1").replace("loadEvents = 1", "")
                raw["error"] = " ".join(text.split()) or f"error code {status.value}"
                return raw
            try:
                _walk(api, edf, raw, ctypes)
            finally:
                api.edf_close_file(edf)
        finally:
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
    return raw


def _walk(api, edf, raw: dict, ctypes) -> None:
    length = api.edf_get_preamble_text_length(edf)
    text = ctypes.create_string_buffer(length + 1)
    api.edf_get_preamble_text(edf, text, length + 1)
    raw["header"] = text.value.decode("latin-1").splitlines()
    element = 0
    while (kind := api.edf_get_next_data(edf)) != _NO_PENDING_ITEMS:
        element += 1
        data = api.edf_get_float_data(edf).contents
        if kind == _RECORDING_INFO:
            rec = data.rec
            raw["blocks"].append(
                (element, rec.time, rec.state, rec.sample_rate, rec.eye, rec.pos_type, rec.recording_mode)
            )
            if rec.state == 1:  # the end record's other fields are not the recording's
                raw["pupil_type"] = rec.pupil_type
        elif kind == _MESSAGE:
            event = data.fe
            message = ctypes.string_at(ctypes.byref(event.message[0]), event.message.contents.len + 1)[2:]
            raw["messages"].append((element, float(event.sttime), message.rstrip(b"\x00")))
        elif kind in (_ENDFIX, _ENDSACC, _ENDBLINK):
            event = data.fe
            eye = "LR"[event.eye] if event.eye in (0, 1) else "?"
            gaze = bool(event.read & _READ_GAZEXY)
            href = bool(event.read & _READ_HREFXY)
            common = (element, eye, float(event.sttime), float(event.entime))
            if kind == _ENDFIX:
                x, y = (event.gavx, event.gavy) if gaze else (event.havx, event.havy)
                raw["fixations"].append(
                    common + (x, y, event.ava, event.supd_x, event.eupd_x, event.supd_y, event.eupd_y, gaze, href)
                )
            elif kind == _ENDSACC:
                raw["saccades"].append(
                    common
                    + (
                        event.gstx,
                        event.gsty,
                        event.genx,
                        event.geny,
                        event.pvel,
                        event.supd_x,
                        event.eupd_x,
                        event.supd_y,
                        event.eupd_y,
                    )
                )
            else:
                raw["blinks"].append(common)
        elif kind == _SAMPLE and raw["blocks"]:
            sample = data.fs
            # Per-eye fields are pairs indexed 0 = left, 1 = right.
            for eye in _EYES.get(raw["blocks"][-1][4], ""):
                slot = "LR".index(eye)
                raw["samples"].append((float(sample.time), eye, sample.gx[slot], sample.gy[slot], sample.pa[slot]))
    raw["n_elements"] = element


def _value(number: float) -> float:
    return math.nan if abs(number) >= _MISSING or number == -32768 else float(number)


def _to_parsed(raw: dict, path: Path) -> _Parsed:
    """The ASC reader's intermediate rows from the scanned elements."""
    parsed = _Parsed(n_lines=raw["n_elements"], pupil_measure={0: "AREA", 1: "DIAMETER"}.get(raw["pupil_type"], ""))
    for line in raw["header"]:
        add_header_line(line, parsed)
    parsed.asc_lines = len(raw["messages"]) + len(raw["blocks"]) + len(raw["fixations"]) + 1
    period_ms, parsed_by = _blocks(raw, parsed)
    for element, time, text in raw["messages"]:
        decoded = text.decode("utf-8", errors="replace")
        add_message(parsed, element, time, decoded.split("\n", 1)[0].strip(), path)
    block_of = np.searchsorted([b["start_line"] for b in parsed.blocks], [row[0] for row in raw["fixations"]]) - 1
    resolution: dict[int, list] = {}
    for (element, eye, start, end, x, y, pupil, sx, ex, sy, ey, gaze, href), block in zip(raw["fixations"], block_of):
        duration = end - start + period_ms.get(int(block), 1.0)
        parsed.fixations.append((element, eye, start, end, duration, _value(x), _value(y), _value(pupil)))
        if gaze and block >= 0:
            resolution.setdefault(int(block), []).append(((sx + ex) / 2, (sy + ey) / 2))
        if block >= 0 and not parsed.blocks[block]["units"]:
            parsed.blocks[block]["units"] = "GAZE" if gaze else "HREF" if href else ""
    for block, fallback in zip(parsed.blocks, parsed_by):
        block["units"] = block["units"] or fallback
    for block, values in resolution.items():
        parsed.blocks[block]["x_res_ppd"], parsed.blocks[block]["y_res_ppd"] = np.mean(values, axis=0).tolist()
    block_of = np.searchsorted([b["start_line"] for b in parsed.blocks], [row[0] for row in raw["saccades"]]) - 1
    for (element, eye, start, end, sx, sy, ex, ey, peak, rsx, rex, rsy, rey), block in zip(raw["saccades"], block_of):
        sx, sy, ex, ey = (_value(v) for v in (sx, sy, ex, ey))
        # edf2asc's amplitude: the displacement in degrees at the mean resolution of both ends.
        amplitude = math.hypot((ex - sx) / ((rsx + rex) / 2), (ey - sy) / ((rsy + rey) / 2))
        duration = end - start + period_ms.get(int(block), 1.0)
        parsed.saccades.append((element, eye, start, end, duration, sx, sy, ex, ey, amplitude, _value(peak)))
    block_of = np.searchsorted([b["start_line"] for b in parsed.blocks], [row[0] for row in raw["blinks"]]) - 1
    for (element, eye, start, end), block in zip(raw["blinks"], block_of):
        parsed.blinks.append((element, eye, start, end, end - start + period_ms.get(int(block), 1.0)))
    if raw["samples"]:
        table = pd.DataFrame(raw["samples"], columns=["time_tracker_ms", "eye", "x_px", "y_px", "pupil"])
        for column in ("x_px", "y_px", "pupil"):
            table[column] = [_value(v) for v in table[column]]
        parsed.sample_table = table.astype({"eye": "string"})
    return parsed


def _blocks(raw: dict, parsed: _Parsed) -> tuple[dict[int, float], list[str]]:
    """Recording blocks from the start (state 1) and end (state 0) records; the sample period of each
    block and the units its events were parsed in (the fallback when no fixation states its units)."""
    period_ms: dict[int, float] = {}
    parsed_by: list[str] = []
    for element, time, state, rate, eye, pos_type, mode in raw["blocks"]:
        if state == 1:
            block = new_block(float(time), _EYES.get(eye, ""), element)
            block["sample_rate_hz"] = float(rate)
            block["tracking"] = "CR" if mode == 1 else "P"
            period_ms[len(parsed.blocks)] = 1000.0 / rate if rate > 0 else 1.0
            parsed_by.append(_PARSED_BY.get(pos_type & 0xC0, ""))
            parsed.blocks.append(block)
        elif parsed.blocks and math.isnan(parsed.blocks[-1]["end_tracker_ms"]):
            parsed.blocks[-1]["end_tracker_ms"] = float(time)
    return period_ms, parsed_by
