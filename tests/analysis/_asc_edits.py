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
