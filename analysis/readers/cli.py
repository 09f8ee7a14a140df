"""``lookwhere recording``: inspect an EyeLink recording before analysing it.

``lookwhere recording info FILE`` prints what :func:`analysis.readers.info.recording_info` finds:
format, eyes, sample rate, display size and its source, units, event counts per eye, calibrations
and validations, the messages that repeat once per trial, and every problem with what to do.
``--json`` prints the same as JSON. The trial options of ``lookwhere analyze`` can be tried here.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from analysis.cli import add_trial_rule_arguments, trial_rules_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = actions.add_parser(
        "info",
        help="what an ASC or EDF file holds and what stands in the way of analysing it",
        description="What an EyeLink ASC or EDF file holds and what stands in the way of "
        "analysing it (each problem names the option that fixes it).",
    )
    info.add_argument("file", type=Path, help="an EyeLink .asc or .edf file")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_trial_rule_arguments(info.add_argument_group("trial messages to try (as in lookwhere analyze)"))


def main(args: argparse.Namespace) -> int:
    from analysis.readers.info import format_info, recording_info

    if not args.verbose:
        # The reader's data warnings are the report's "problems"; logged too, they would print twice.
        logging.getLogger("analysis.readers").setLevel(logging.ERROR)

    info = recording_info(args.file, rules=trial_rules_from_args(args))
    print(json.dumps(info, indent=2, default=str) if args.json else format_info(info))
    return 0
