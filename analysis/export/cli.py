"""``lookwhere export``: recorded sessions in other tools' layouts (``export bids``: BIDS 1.11 with eye
tracking). Cheap to import: the exporter is imported in :func:`main`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    formats = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    bids = formats.add_parser(
        "bids",
        help="write the sessions as a BIDS 1.11 dataset with eye tracking (physio, physioevents, events)",
        description="Write recorded sessions as a BIDS 1.11 dataset with eye tracking (BEP020): per "
        "session the samples (from the EDF, else the streamed gaze), the fixations, saccades, blinks and "
        "messages, the trials; the stimuli, the session records with their audio under sourcedata/, the "
        "scores under derivatives/lookwhere/. A session that cannot be read is reported and left out "
        "(exit status 1).",
    )
    bids.add_argument(
        "--sessions", type=Path, required=True, help="a session folder or the --out folder of lookwhere run"
    )
    bids.add_argument("--stimuli", type=Path, required=True, help="the stimulus folder the sessions showed")
    bids.add_argument(
        "--out", type=Path, required=True, help="dataset folder: new, empty, or an earlier export (replaced whole)"
    )
    scores = bids.add_mutually_exclusive_group()
    scores.add_argument(
        "--scores",
        type=Path,
        metavar="DIR",
        help="an output folder of lookwhere analyze to copy into derivatives/lookwhere "
        "(default: run lookwhere analyze --dataset session on the sessions)",
    )
    scores.add_argument("--no-scores", action="store_true", help="write no derivatives")
    bids.add_argument("--task", default="naming", help="BIDS task label (default: naming)")
    bids.add_argument("--name", default=None, help="dataset name (default: from the sessions folder)")


def main(args: argparse.Namespace) -> int:
    """Export; 0 when every session was exported, 1 when some were left out (listed on stderr)."""
    from analysis.export.bids import export_bids

    result = export_bids(
        args.sessions,
        stimuli=args.stimuli,
        out=args.out,
        task=args.task,
        name=args.name,
        scores=not args.no_scores,
        scores_from=args.scores,
    )
    print(f"BIDS dataset: {result.out} ({len(result.subjects)} participants: {', '.join(result.subjects)})")
    if result.scores is not None:
        print(f"scores: {result.scores}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for folder, why in result.failed.items():
        print(f"left out: {folder}: {why}", file=sys.stderr)
    return 1 if result.failed else 0
