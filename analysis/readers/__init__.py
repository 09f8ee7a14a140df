"""Readers: one public ``read_<format>(path, *, ...)`` per format, each returning the tidy fixation table.

- :func:`read_osie` — the OSIE data set's ``fixations.mat``.
- :func:`read_session` — the project's own session records (``lookwhere run``).
- :func:`read_eyelink` — an EyeLink recording's fixations (ASC or EDF); :func:`read_recording`
  returns the whole recording (fixations, saccades, blinks, messages, trials, calibrations,
  validations and the recording's metadata), :func:`read_eyelink_asc` and
  :func:`~analysis.readers.edf.read_eyelink_edf` do so for one format.

The names are imported on first use, so that ``lookwhere recording --help`` (in
:mod:`analysis.readers.cli`) does not import pandas.
"""

import importlib

_EXPORTS = {
    "read_osie": "analysis.readers.osie",
    "read_session": "analysis.readers.session",
    "read_eyelink": "analysis.readers.eyelink",
    "read_eyelink_asc": "analysis.readers.eyelink",
    "read_recording": "analysis.readers.eyelink",
    "EyeLinkRecording": "analysis.readers.eyelink",
    "EyeLinkFormatError": "analysis.readers.eyelink",
    "EyeLinkDataWarning": "analysis.readers.eyelink",
    "TrialRules": "analysis.readers.eyelink",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
