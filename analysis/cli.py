"""``lookwhere analyze``: offline re-analysis of recorded fixations (see :mod:`analysis.offline`)."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from analysis import scoring_config
from analysis.scoring_config import ScoringConfig

if TYPE_CHECKING:
    from analysis.offline import AnalysisConfig

from analysis.distributed import add_scheduler_argument, open_client
from analysis.quality import add_quality_arguments, quality_rules_from_args
from analysis.voice.cli import add_detector_arguments, voice_params_from_args


def _image_list(text: str) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in text.split(",") if part.strip())
    if not ids:
        raise argparse.ArgumentTypeError("--images needs comma-separated image ids, e.g. 1001,1002")
    return ids


def _overlays(text: str) -> int | tuple[str, ...]:
    """``--overlays``: a number of images, or comma-separated image ids."""
    if text.strip().isdigit():
        return int(text)
    return _image_list(text)


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """The scoring options (one per :class:`~analysis.scoring_config.ScoringConfig` choice, generated
    from it), shared by ``lookwhere analyze`` and ``lookwhere serve`` so that live and offline numbers
    are asked for the same way."""
    scoring_config.add_arguments(parser)


def scoring_from_args(args: argparse.Namespace) -> ScoringConfig:
    """The :class:`~analysis.scoring_config.ScoringConfig` of :func:`add_scoring_arguments`' options.

    Raises
    ------
    ValueError
        A value the configuration refuses, with the reason.
    """
    try:
        return scoring_config.from_args(args)
    except ValidationError as error:
        raise ValueError(str(error)) from None


def add_trial_rule_arguments(parser) -> None:
    """The trial, image, onset and offset message options (:class:`~analysis.readers.eyelink.TrialRules`),
    shared by ``lookwhere analyze`` and ``lookwhere recording info``."""
    parser.add_argument(
        "--trial-start",
        metavar="REGEX",
        help="message that starts a trial; a named group 'trial' gives its id, else trials are "
        "numbered 0, 1, … (default: TRIALID, else start_trial)",
    )
    parser.add_argument(
        "--trial-end",
        metavar="REGEX",
        help="message that ends a trial (default with --trial-start: the next trial's start)",
    )
    parser.add_argument(
        "--image-message",
        metavar="REGEX",
        help="message naming the trial's image, with a named group 'image' "
        "(default: !V TRIAL_VAR image, else the !V IMGLOAD file)",
    )
    parser.add_argument(
        "--onset-message", metavar="REGEX", help="image onset message (default: IMAGE_ONSET, SYNCTIME or DISPLAY ON)"
    )
    parser.add_argument(
        "--offset-message",
        metavar="REGEX",
        help="image offset message (default: IMAGE_OFFSET, DISPLAY OFF or blank_screen)",
    )


def trial_rules_from_args(args: argparse.Namespace):
    """The :class:`~analysis.readers.eyelink.TrialRules` of :func:`add_trial_rule_arguments`' options."""
    from analysis.readers.eyelink import DEFAULT_OFFSET_PATTERN, DEFAULT_ONSET_PATTERN, TrialRules

    return TrialRules(
        trial_start=args.trial_start,
        trial_end=args.trial_end,
        image=args.image_message,
        onset=args.onset_message or DEFAULT_ONSET_PATTERN,
        offset=args.offset_message or DEFAULT_OFFSET_PATTERN,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        choices=["osie", "eyelink", "asc", "session"],
        required=True,
        help="format of the fixation data ('asc' is an alias of 'eyelink')",
    )
    parser.add_argument(
        "--fixations",
        type=Path,
        required=True,
        help="fixations.mat (osie), an EyeLink .asc/.edf file or a folder of them (eyelink), "
        "or a session folder / folder of sessions (session)",
    )
    parser.add_argument("--stimuli", type=Path, required=True, help="folder of the stimulus images")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--source",
        choices=["edf", "link"],
        help="session: fixations from the transferred EDF or from the link record "
        "(default: the EDF when the session folder holds it)",
    )
    parser.add_argument("--images", type=_image_list, help="comma-separated image ids (default: all)")
    parser.add_argument("--maps", type=Path, help="CNN map store (lookwhere precompute) to score too")
    add_scoring_arguments(parser)
    _add_eyelink_arguments(parser)
    _add_timecourse_and_naming_arguments(parser)
    add_quality_arguments(parser)
    parser.add_argument(
        "--kl-ig-maps",
        choices=["density", "raw"],
        default="density",
        help="KL divergence and information gain on each map turned into a density, blur and "
        "centre-bias mixture fitted on the other images (default), or on the raw maps",
    )
    parser.add_argument(
        "--density-fit",
        choices=["cv", "default"],
        default="cv",
        help="the densities' parameters fitted leave one image out (default), or the defaults the live server uses",
    )
    parser.add_argument(
        "--overlays",
        type=_overlays,
        default=6,
        metavar="N|IDS",
        help="overlays in the report: the first N images (default 6) or comma-separated image ids",
    )
    parser.add_argument("--float64", action="store_true", help="heatmaps.npz in float64 (default float32)")
    parser.add_argument(
        "--no-mixed-model",
        action="store_true",
        help="skip the mixed model (about 40 s per metric on 200 images x 15 participants)",
    )
    parser.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples for CIs")
    add_scheduler_argument(parser, work="score the images")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_eyelink_arguments(parser: argparse.ArgumentParser) -> None:
    mapping = parser.add_argument_group(
        "EyeLink recordings (--dataset eyelink)",
        "Which trial showed which image, and where; patterns are Python regular expressions searched in the "
        "message text (anchor with ^). `lookwhere recording info FILE` lists the messages that repeat per trial.",
    )
    add_trial_rule_arguments(mapping)
    mapping.add_argument(
        "--trials-table",
        type=Path,
        metavar="CSV",
        help="CSV with columns recording,trial,image[,onset_ms,offset_ms] (tracker ms), overriding the messages",
    )
    mapping.add_argument(
        "--screen",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        help="screen size in pixels, overriding DISPLAY_COORDS/GAZE_COORDS",
    )
    mapping.add_argument(
        "--scale",
        type=float,
        help="drawn size / image size (default: ×2 fitted to the screen, or the size in each trial's !V IMGLOAD)",
    )
    mapping.add_argument(
        "--eye",
        choices=["best", "left", "right", "both"],
        default="best",
        help="eye whose fixations count in binocular recordings: best (default) = the better "
        "last validation, else the right; both = each eye separately, both in the heatmaps",
    )


def _add_timecourse_and_naming_arguments(parser: argparse.ArgumentParser) -> None:
    timecourse = parser.add_argument_group("Time course", "Scores per viewing-time bin and per fixation index")
    timecourse.add_argument("--time-bin-ms", type=float, default=1000.0, help="width of the time bins (default 1000)")
    timecourse.add_argument(
        "--max-fixation-index",
        type=int,
        default=10,
        help="score the 1st … nth fixation of each trial (default 10; 0: none)",
    )
    timecourse.add_argument("--no-timecourse", action="store_true", help="skip the time course")
    naming = parser.add_argument_group(
        "Naming (--dataset session)",
        "Utterances in each trial's recording (as lookwhere voice detect), reviewed values from the session's "
        "voice_corrections.jsonl where present, and the fixations before each utterance's onset.",
    )
    naming.add_argument(
        "--voice",
        choices=["on", "off"],
        default="on",
        help="find the utterances and align fixations to them (default on)",
    )
    naming.add_argument(
        "--voice-corrections",
        choices=["use", "ignore"],
        default="use",
        help="use reviewed utterances where present (default) or the automatic ones only",
    )
    naming.add_argument(
        "--naming-window-ms",
        type=float,
        default=1000.0,
        help="fixations this long before each utterance's onset (default 1000)",
    )
    naming.add_argument(
        "--boxes",
        type=Path,
        help="object boxes: a VOC Annotations folder or a CSV image,class,xmin_px,ymin_px,xmax_px,ymax_px "
        "(default: Annotations/ or boxes.csv in the stimulus folder)",
    )
    add_detector_arguments(naming)


def config_from_args(args: argparse.Namespace) -> AnalysisConfig:
    """The :class:`~analysis.offline.AnalysisConfig` of ``lookwhere analyze``'s options."""
    from analysis.naming import NamingParams
    from analysis.offline import AnalysisConfig
    from analysis.timecourse import TimecourseParams

    return AnalysisConfig(
        **dict(scoring_from_args(args)),
        dataset=args.dataset,
        fixations=args.fixations,
        stimuli=args.stimuli,
        out=args.out,
        images=args.images,
        maps=args.maps,
        trial_rules=trial_rules_from_args(args),
        source=args.source,
        trials_table=args.trials_table,
        screen_px=tuple(args.screen) if args.screen else None,
        scale=args.scale,
        eye=args.eye,
        bootstrap_resamples=args.bootstrap,
        timecourse=TimecourseParams(
            enabled=not args.no_timecourse, bin_ms=args.time_bin_ms, max_fixation_index=args.max_fixation_index
        ),
        naming=NamingParams(
            enabled=args.voice == "on",
            voice=voice_params_from_args(args),
            names=args.names == "on",
            synonyms=args.synonyms,
            corrections=args.voice_corrections,
            window_ms=args.naming_window_ms,
            boxes=args.boxes,
        ),
        quality=quality_rules_from_args(args),
        kl_ig_maps=args.kl_ig_maps,
        density_fit=args.density_fit,
        n_overlays=args.overlays if isinstance(args.overlays, int) else len(args.overlays),
        overlay_images=None if isinstance(args.overlays, int) else args.overlays,
        heatmaps_float64=args.float64,
        mixed_model=not args.no_mixed_model,
    )


def main(args: argparse.Namespace) -> int:
    from analysis.offline import run_analysis

    command_line = ["lookwhere", *args.argv] if getattr(args, "argv", None) else None
    config = config_from_args(args)
    with ExitStack() as stack:
        client = None if args.scheduler is None else stack.enter_context(open_client(args.scheduler))
        result = run_analysis(config, progress=not args.no_progress, command_line=command_line, client=client)
    print(f"report: {result.files['report']}")
    print(f"scores: {result.files['scores']} ({len(result.scores)} rows)")
    for why in result.failed.values():
        print(f"left out: {why}", file=sys.stderr)
    if result.warnings:
        print(f"{len(result.warnings)} data warnings: see params.json and the report", file=sys.stderr)
    # The analysis of the readable files is complete; a non-zero status says some were left out.
    return 1 if result.failed else 0
