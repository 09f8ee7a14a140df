"""Readers: one public ``read_<format>(path, *, ...)`` per format, each returning the tidy fixation table.

- :func:`read_osie` — the OSIE data set's ``fixations.mat``.
- :func:`read_session` — the project's own session records (``lookwhere run``).
- :func:`read_eyelink` — an EyeLink recording's fixations (ASC or EDF); :func:`read_recording`
  returns the whole recording (fixations, saccades, blinks, messages, trials, calibrations,
  validations and the recording's metadata), :func:`read_eyelink_asc` and
  :func:`~analysis.readers.edf.read_eyelink_edf` do so for one format.
"""

from analysis.readers.eyelink import (
    EyeLinkDataWarning,
    EyeLinkFormatError,
    EyeLinkRecording,
    TrialRules,
    read_eyelink,
    read_eyelink_asc,
    read_recording,
)
from analysis.readers.osie import read_osie
from analysis.readers.session import read_session

__all__ = [
    "read_osie", "read_session", "read_eyelink", "read_eyelink_asc", "read_recording",
    "EyeLinkRecording", "EyeLinkFormatError", "EyeLinkDataWarning", "TrialRules",
]
