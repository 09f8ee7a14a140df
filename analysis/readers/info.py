"""What a recording holds, for ``lookwhere recording info`` and for errors that must show it.

:func:`recording_info` answers the first questions about a file nobody here wrote: format, eyes,
sample rate, display size and its source, units, event counts per eye, calibrations and validations,
the messages that repeat once per trial (candidates for ``--trial-start``, ``--image-message``,
``--onset-message``), and every problem found.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from pathlib import Path

from analysis.readers.eyelink import EyeLinkDataWarning, EyeLinkRecording, TrialRules, read_recording

__all__ = ["recording_info", "format_info", "message_candidates", "format_candidates"]

_EYE_NAMES = {"L": "left", "R": "right"}

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
    """The candidates as lines for an error message."""
    return "\n".join(format_candidates_rows(message_candidates(recording)))


def format_candidates_rows(rows: list[dict]) -> list[str]:
    """One line per candidate of :func:`message_candidates`."""
    if not rows:
        return ["  (no message repeats)"]
    width = max(len(str(row["count"])) for row in rows)
    return [
        f"  {row['count']:>{width}} × {row['message']!r:30} e.g. line {row['first_line']}: {row['example']!r}"
        for row in rows
    ]


def recording_info(path, *, rules: TrialRules | None = None) -> dict:
    """Everything a user asks first about an EyeLink recording, as plain data (JSON-ready).

    Parameters
    ----------
    path : str or Path
        An ASC or EDF file.
    rules : TrialRules, optional
        Trial, image and onset messages to try (as ``lookwhere analyze`` would use them).

    Returns
    -------
    dict
        ``file``, ``format``, ``size_bytes``, ``header``, ``eyes`` (``["left", "right"]``),
        ``sample_rate_hz``, ``display`` (``{"width_px", "height_px", "source"}`` or None), ``units``,
        ``resolution_ppd``, ``tracking``, ``remote``, ``pupil``, ``recording_blocks``,
        ``recorded_s`` (time inside recording blocks), ``counts`` (``{"fixations": {"left": N,
        "right": N}, "saccades": …, "blinks": …, "messages": N}``), ``trials`` (count, the rule
        used, how many name an image and have an onset and offset, the first image ids),
        ``calibrations`` and ``validations`` (``{"eye": "left", "points": "HV13", "result": "GOOD",
        "avg_deg": 0.30, "max_deg": 0.90, "offset_deg": 0.12, "aborted": False, "time_tracker_ms":
        …}``), ``eye_choice`` (what ``--eye best`` picks and why), ``trial_message_candidates``
        (:func:`message_candidates`) and ``problems`` (each with what to do).
    """
    from analysis.readers.mapping import choose_eye

    path = Path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EyeLinkDataWarning)
        recording = read_recording(path, rules=rules)
    problems = [str(w.message) for w in caught if issubclass(w.category, EyeLinkDataWarning)]
    blocks = recording.blocks
    eye_choice = None
    if recording.eyes or len(recording.fixation_events):
        eye, reason = choose_eye(recording)
        eye_choice = {"best": [_EYE_NAMES[e] for e in eye], "reason": reason}
    info = {
        "file": str(path),
        "format": recording.format,
        "size_bytes": path.stat().st_size,
        "header": recording.header,
        "eyes": [_EYE_NAMES[e] for e in recording.eyes],
        "sample_rate_hz": recording.sample_rate_hz,
        "display": _display(recording),
        "units": recording.units or None,
        "resolution_ppd": None if recording.resolution_ppd is None else [round(v, 3) for v in recording.resolution_ppd],
        "tracking": recording.tracking or None,
        "remote": recording.remote,
        "pupil": recording.pupil_measure or None,
        "recording_blocks": len(blocks),
        "recorded_s": round(float((blocks["end_tracker_ms"] - blocks["start_tracker_ms"]).sum()) / 1000, 3),
        "counts": _counts(recording),
        "trials": _trials(recording),
        "calibrations": _records(recording.calibrations, ["time_tracker_ms", "eye", "points", "result", "aborted"]),
        "validations": _records(
            recording.validations,
            ["time_tracker_ms", "eye", "points", "result", "avg_deg", "max_deg", "offset_deg", "aborted"],
        ),
        "eye_choice": eye_choice,
        "trial_message_candidates": message_candidates(recording),
        "problems": problems,
    }
    problems.extend(_problems(recording, info))
    return info


def _display(recording: EyeLinkRecording) -> dict | None:
    if recording.display_px is None:
        return None
    width_px, height_px = recording.display_px
    return {"width_px": width_px, "height_px": height_px, "source": recording.display_source}


def _counts(recording: EyeLinkRecording) -> dict:
    """Events per kind and eye, and the number of messages."""
    events = (("fixations", recording.fixation_events), ("saccades", recording.saccades), ("blinks", recording.blinks))
    counts: dict = {
        name: {_EYE_NAMES.get(e, e): int(n) for e, n in sorted(Counter(table["eye"]).items())} for name, table in events
    }
    return counts | {"messages": len(recording.messages)}


def _trials(recording: EyeLinkRecording) -> dict:
    """How many trials, by which rule, how many name an image and have an onset and offset."""
    trials = recording.trials
    return {
        "count": len(trials),
        "rule": {key: recording.rules[key] for key in ("trial_start", "trial_end", "image", "onset", "offset")},
        "with_image": int((trials["image"] != "").sum()),
        "with_onset": int(trials["onset_tracker_ms"].notna().sum()),
        "with_offset": int(trials["offset_tracker_ms"].notna().sum()),
        "images": list(dict.fromkeys(image for image in trials["image"] if image))[:10],
    }


def _records(table, columns: list[str]) -> list[dict]:
    rows = []
    for row in table[columns].itertuples(index=False):
        record = {}
        for name, value in zip(columns, row):
            if name == "eye":
                value = _EYE_NAMES.get(value, value or None)
            elif isinstance(value, float):
                value = None if math.isnan(value) else round(value, 3)
            elif name == "aborted":
                value = bool(value)
            record[name] = value
        rows.append(record)
    return rows


def _problems(recording: EyeLinkRecording, info: dict) -> list[str]:
    """What stands in the way of an analysis, each with the option or step that fixes it."""
    problems = []
    if info["display"] is None:
        problems.append("the screen size is unknown (no DISPLAY_COORDS or GAZE_COORDS message): pass --screen W H")
    if "HREF" in recording.units:
        problems.append("events are in HREF units (head-referenced angles), not screen pixels: heatmaps refuse them")
    trials = info["trials"]
    if trials["count"] == 0:
        problems.append("no trial start message was found: name it with --trial-start REGEX (see the candidates)")
    elif trials["with_image"] == 0:
        problems.append(
            "no trial names an image: name the message with --image-message REGEX, or use --trials-table CSV"
        )
    if trials["count"] and trials["with_onset"] < trials["count"]:
        problems.append(
            f"{trials['count'] - trials['with_onset']} of {trials['count']} trials have no image onset message: "
            "name it with --onset-message REGEX, or the display period cannot be checked"
        )
    for row in info["validations"]:
        if row["aborted"] or row["result"] not in ("GOOD", "FAIR"):
            problems.append(f"a validation of the {row['eye']} eye at {row['time_tracker_ms']} ms was {row['result']}")
    if not info["validations"]:
        problems.append("no validation result in the file: the data quality is unknown")
    return problems


def format_info(info: dict) -> str:
    """:func:`recording_info` as text for a terminal."""
    display = info["display"]
    shown = f"{display['width_px']}×{display['height_px']} px from {display['source']}" if display else "unknown"
    trials = info["trials"]
    lines = [
        f"{info['file']}: EyeLink {info['format'].upper()}, {info['size_bytes'] / 1e6:.1f} MB",
        f"  recorded     {', '.join(info['eyes']) or '?'} eye, {info['sample_rate_hz'] or '?'} Hz, "
        f"{info['recorded_s']:.1f} s in {info['recording_blocks']} blocks; tracking {info['tracking'] or '?'}"
        f"{', remote' if info['remote'] else ''}; pupil {info['pupil'] or '?'}",
        f"  display      {shown}; units {info['units'] or '?'}; resolution {info['resolution_ppd'] or '?'} px/deg",
        "  counts       "
        + "; ".join(
            f"{name} " + (", ".join(f"{eye} {n}" for eye, n in per_eye.items()) or "0")
            for name, per_eye in info["counts"].items()
            if name != "messages"
        )
        + f"; messages {info['counts']['messages']}",
        f"  trials       {trials['count']} (start /{trials['rule']['trial_start'] or ''}/); with an image "
        f"{trials['with_image']}, with an onset {trials['with_onset']}, with an offset {trials['with_offset']}"
        + (f"; images {', '.join(trials['images'])}" if trials["images"] else ""),
    ]
    for kind in ("calibrations", "validations"):
        for row in info[kind]:
            errors = ""
            if kind == "validations" and not row["aborted"]:
                errors = f" {row['avg_deg']:.2f}° mean, {row['max_deg']:.2f}° max, offset {row['offset_deg']:.2f}°"
            lines.append(
                f"  {kind[:-1]:12} {row['eye']}: {row['points']} {row['result']}{errors} at {row['time_tracker_ms']} ms"
            )
    if info["eye_choice"]:
        lines.append(f"  --eye best   {', '.join(info['eye_choice']['best'])} ({info['eye_choice']['reason']})")
    lines.append("  messages that repeat (trial-marker candidates):")
    lines.extend(format_candidates_rows(info["trial_message_candidates"]))
    lines.append("  problems:" if info["problems"] else "  problems: none")
    lines.extend(f"    - {problem}" for problem in info["problems"])
    return "\n".join(lines)
