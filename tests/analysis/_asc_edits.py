"""Edits that turn a real ASC file into a variant, for tests that reach an edge case from real data."""

from __future__ import annotations

import re
from pathlib import Path


def variant(source: Path, target: Path, edit) -> Path:
    """Write ``target``: the lines of ``source`` (line ends kept) passed through ``edit``."""
    lines = source.read_text().splitlines(keepends=True)
    target.write_text("".join(edit(lines)))
    return target


def replace_lines(pattern: str, replacement):
    """An edit replacing every line that matches ``pattern`` (``replacement(line)`` or a string;
    an empty string deletes the line)."""

    def edit(lines):
        out = []
        for line in lines:
            if re.search(pattern, line):
                line = replacement(line) if callable(replacement) else replacement
            out.append(line)
        return out

    return edit


def after_trialid(make_lines):
    """An edit inserting ``make_lines(trial_number, time)`` after each ``TRIALID`` message."""

    def edit(lines):
        out, n = [], 0
        for line in lines:
            out.append(line)
            if line.startswith("MSG") and "TRIALID" in line:
                out.extend(make_lines(n, line.split()[1]))
                n += 1
        return out

    return edit


def custom_messages(lines):
    """An edit leaving only a study's own trial messages: ``BEGIN_SCENE <n> scene=images/<id>.jpg``
    instead of ``TRIALID``, ``END_SCENE`` instead of ``TRIAL_RESULT``; no ``!V`` messages."""
    out, n = [], 0
    for line in lines:
        if line.startswith("MSG") and " TRIALID " in line:
            line = f"MSG\t{line.split()[1]} BEGIN_SCENE {n} scene=images/{1001 + n % 2}.jpg\n"
            n += 1
        elif line.startswith("MSG") and " TRIAL_RESULT" in line:
            line = f"MSG\t{line.split()[1]} END_SCENE\n"
        elif line.startswith("MSG") and "!V " in line:
            continue
        out.append(line)
    return out


CUSTOM_RULES = dict(
    trial_start=r"^BEGIN_SCENE (?P<trial>\d+)",
    image=r"scene=(?P<image>\S+)",
    onset="Initial_display",
    offset="End_trial_display",
)
