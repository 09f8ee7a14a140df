"""What a recording holds, for ``lookwhere recording info`` and for errors that must show it.

:func:`recording_info` answers the first questions about a file nobody here wrote: format, eyes,
sample rate, display size and its source, units, event counts per eye, calibrations and validations,
the messages that repeat once per trial (candidates for ``--trial-start``, ``--image-message``,
``--onset-message``), and every problem found.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from analysis.readers.eyelink import EyeLinkRecording

__all__ = ["message_candidates", "format_candidates"]

# Tracker and calibration messages repeat too, but never mark trials.
_SYSTEM = re.compile(
    r"^(?:!CAL|VALIDATE|!MODE|RECCFG|ELCL|GAZE_COORDS|DISPLAY_COORDS|THRESHOLDS|CAMERA_|PUPIL_DATA|"
    r"RETRACE_INTERVAL|ENVIRONMENT|DRIFTCORRECT|!V (?:DRAW_LIST|CLEAR|FILLBOX|IAREA|TRIAL_VAR_LABELS))"
)
_VARYING = re.compile(r"[\d/\\.=:,\[\]\"']")


def _message_key(text: str) -> str:
    """The fixed head of a message: its leading words up to the first that varies (a number, a path,
    an ``=``), at most three; ``"!V TRIAL_VAR image 1001.jpg"`` → ``"!V TRIAL_VAR image"``."""
    words = text.split()
    head = []
    for word in words[:3]:
        if _VARYING.search(word):
            break
        head.append(word)
    if head:
        return " ".join(head)
    return words[0] if words else ""


def message_candidates(recording: EyeLinkRecording, *, limit: int = 12) -> list[dict]:
    """Messages that repeat, likeliest trial markers first.

    Parameters
    ----------
    recording : EyeLinkRecording
    limit : int
        How many to return.

    Returns
    -------
    list of dict
        ``{"message": head, "count": n, "example": first full text, "first_line": line}``, sorted by
        how close ``count`` is to the number of recording blocks (one block per trial is usual),
        then in file order (a trial's start marker comes first); tracker and calibration messages
        are left out.
    """
    counts: Counter = Counter()
    examples: dict[str, tuple[str, int]] = {}
    for text, line in zip(recording.messages["text"], recording.messages["line"]):
        key = _message_key(text)
        if not key or _SYSTEM.match(text):
            continue
        counts[key] += 1
        examples.setdefault(key, (text, int(line)))
    blocks = max(len(recording.blocks), 1)
    repeated = [key for key, n in counts.items() if n >= 2]
    repeated.sort(key=lambda key: (abs(math.log(counts[key] / blocks)), examples[key][1]))
    return [
        {"message": key, "count": counts[key], "example": examples[key][0], "first_line": examples[key][1]}
        for key in repeated[:limit]
    ]


def format_candidates(recording: EyeLinkRecording) -> str:
    """The candidates as lines for an error message (``"(none)"`` when no message repeats)."""
    rows = message_candidates(recording)
    if not rows:
        return "  (no message repeats)"
    width = max(len(str(row["count"])) for row in rows)
    return "\n".join(
        f"  {row['count']:>{width}} × {row['message']!r:30} e.g. line {row['first_line']}: {row['example']!r}"
        for row in rows
    )
