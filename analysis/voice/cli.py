"""``lookwhere voice``: the spoken names in the per-trial recordings (see :mod:`analysis.voice`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_detector_arguments(parser) -> None:
    """The detector and name options, shared by ``lookwhere voice detect`` and ``lookwhere analyze``."""
    parser.add_argument(
        "--voice-method",
        choices=["silero", "energy"],
        default="silero",
        help="speech frames from the Silero VAD model (default) or an energy threshold (reference)",
    )
    parser.add_argument(
        "--voice-threshold",
        type=float,
        default=0.5,
        help="silero: speech probability that starts an utterance (default 0.5)",
    )
    parser.add_argument(
        "--energy-threshold-db",
        type=float,
        default=15.0,
        help="energy: dB above the noise floor that counts as speech (default 15)",
    )
    parser.add_argument("--min-speech-ms", type=float, default=100.0, help="shorter speech is dropped (default 100)")
    parser.add_argument(
        "--min-silence-ms", type=float, default=200.0, help="shorter pauses do not end an utterance (default 200)"
    )
    parser.add_argument(
        "--min-voiced-ms",
        type=float,
        default=30.0,
        help="utterances with less voicing are breaths or clicks and dropped (default 30; 0 keeps all)",
    )
    parser.add_argument(
        "--no-refine", action="store_true", help="keep the detector's frame edges instead of the acoustic rise and fall"
    )
    parser.add_argument(
        "--names",
        choices=["on", "off"],
        default="on",
        help="recognise the object name of each utterance with pocketsphinx (default on)",
    )
    parser.add_argument(
        "--synonyms",
        type=Path,
        help="CSV class,name[,pronunciation] of the names each object class may get "
        "(default: the VOC 2007 classes' list shipped with lookwhere)",
    )


def voice_params_from_args(args: argparse.Namespace):
    """The :class:`~analysis.voice.detect.VoiceParams` of :func:`add_detector_arguments`' options."""
    from analysis.voice.detect import VoiceParams

    return VoiceParams(
        method=args.voice_method,
        threshold=args.voice_threshold,
        energy_threshold_db=args.energy_threshold_db,
        min_speech_ms=args.min_speech_ms,
        min_silence_ms=args.min_silence_ms,
        min_voiced_ms=args.min_voiced_ms,
        refine=not args.no_refine,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="voice_command", metavar="COMMAND", required=True)
    detect = commands.add_parser(
        "detect",
        help="every utterance of every trial, with its onset, offset and name",
        description="Find every utterance in the per-trial recordings: onset_ms and offset_ms from the image onset "
        "(through the WAV's recorded offset in trials.jsonl), a confidence, and the recognised name.",
    )
    detect.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="WAV files, folders of them, session folders or folders of sessions",
    )
    detect.add_argument("--out", type=Path, required=True, help="CSV file to write")
    detect.add_argument(
        "--stimuli",
        type=Path,
        help="stimulus folder whose manifest.csv lists each image's classes (default: each session's "
        "own stimulus folder, from its config.json)",
    )
    add_detector_arguments(detect)
    detect.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from analysis.voice.recordings import find_utterances

    table = find_utterances(
        args.paths,
        params=voice_params_from_args(args),
        names=args.names == "on",
        synonyms=args.synonyms,
        stimuli=args.stimuli,
        progress=not args.no_progress,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    trials = table.groupby(["file"]).ngroups
    print(f"{len(table)} utterances in {trials} recordings with speech: {args.out}")
    if len(table) and not table["aligned"].all():
        print(
            "some recordings are outside a session (no recorded offset): their times are from the WAV's first "
            "sample (aligned = False)",
            file=sys.stderr,
        )
    return 0
