"""Readers: one public ``read_<format>(path, *, ...)`` per format, each returning the tidy fixation table.

- :func:`read_osie` — the OSIE data set's ``fixations.mat``.
- :func:`read_session` — the project's own session records (``lookwhere run``).
- :func:`read_eyelink` — an EyeLink ASC file's fixations; :func:`read_eyelink_asc` returns the whole
  recording (fixations, saccades, blinks, messages, trials and the recording's metadata).
"""

from analysis.readers.eyelink import AscRecording, AscFormatError, read_eyelink, read_eyelink_asc
from analysis.readers.osie import read_osie
from analysis.readers.session import read_session

__all__ = ["read_osie", "read_session", "read_eyelink", "read_eyelink_asc", "AscRecording", "AscFormatError"]
