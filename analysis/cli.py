"""``lookwhere analyze``: offline re-analysis of recorded fixations (see :mod:`analysis.offline`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
    """The heatmap and metric options, shared by ``lookwhere analyze`` and ``lookwhere serve`` so
    that live and offline numbers are asked for the same way."""
    parser.add_argument("--sigma-px", type=float, default=20.0, help="Gaussian σ in image pixels (paper: 20)")
    parser.add_argument("--kernel-size-px", type=int, default=80, help="kernel side in pixels (paper: 80); 0 = untruncated")
    parser.add_argument("--kernel-centre", choices=["matlab", "scipy"], default="matlab",
                        help="anchor of an even kernel: MATLAB conv2 'same' (default, the paper's) or SciPy "
                             "convolve2d 'same' (half a pixel down and right)")
    parser.add_argument("--no-duration-weighting", action="store_true", help="count fixations instead of adding durations")
    parser.add_argument("--exclude-first-fixation", action="store_true", help="drop each trial's first fixation")
    parser.add_argument("--metric-variant", choices=["mit", "pysaliency"], default="mit",
                        help="metric definitions: MIT saliency benchmark (default) or pysaliency")
    parser.add_argument("--mae-normalize", choices=["minmax", "none"], default="minmax",
                        help="min-max both maps before MAE (default); 'none' is the paper-literal MAE")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random metrics (shuffled AUC, AUC-Borji)")


def heatmap_params_from_args(args: argparse.Namespace):
    """The :class:`~analysis.heatmap.HeatmapParams` of :func:`add_scoring_arguments`' options."""
    from analysis.heatmap import HeatmapParams

    return HeatmapParams(
        sigma_px=args.sigma_px,
        kernel_size_px=args.kernel_size_px or None,
        even_kernel_centre=args.kernel_centre,
        duration_weighted=not args.no_duration_weighting,
        exclude_first_fixation=args.exclude_first_fixation,
    )


def add_trial_rule_arguments(parser) -> None:
    """The trial, image, onset and offset message options (:class:`~analysis.readers.eyelink.TrialRules`),
    shared by ``lookwhere analyze`` and ``lookwhere recording info``."""
    parser.add_argument("--trial-start", metavar="REGEX",
                        help="message that starts a trial; a named group 'trial' gives its id, else trials are "
                             "numbered 0, 1, … (default: TRIALID, else start_trial)")
    parser.add_argument("--trial-end", metavar="REGEX",
                        help="message that ends a trial (default with --trial-start: the next trial's start)")
    parser.add_argument("--image-message", metavar="REGEX",
                        help="message naming the trial's image, with a named group 'image' "
                             "(default: !V TRIAL_VAR image, else the !V IMGLOAD file)")
    parser.add_argument("--onset-message", metavar="REGEX",
                        help="image onset message (default: IMAGE_ONSET, SYNCTIME or DISPLAY ON)")
    parser.add_argument("--offset-message", metavar="REGEX",
                        help="image offset message (default: IMAGE_OFFSET, DISPLAY OFF or blank_screen)")


def trial_rules_from_args(args: argparse.Namespace):
    """The :class:`~analysis.readers.eyelink.TrialRules` of :func:`add_trial_rule_arguments`' options."""
    from analysis.readers.eyelink import DEFAULT_OFFSET_PATTERN, DEFAULT_ONSET_PATTERN, TrialRules

    return TrialRules(
        trial_start=args.trial_start, trial_end=args.trial_end, image=args.image_message,
        onset=args.onset_message or DEFAULT_ONSET_PATTERN, offset=args.offset_message or DEFAULT_OFFSET_PATTERN,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=["osie", "eyelink", "asc", "session"], required=True,
                        help="format of the fixation data ('asc' is an alias of 'eyelink')")
    parser.add_argument("--fixations", type=Path, required=True,
                        help="fixations.mat (osie), an EyeLink .asc/.edf file or a folder of them (eyelink), "
                             "or a session folder / folder of sessions (session)")
    parser.add_argument("--stimuli", type=Path, required=True, help="folder of the stimulus images")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--source", choices=["edf", "link"],
                        help="session: fixations from the transferred EDF or from the link record "
                             "(default: the EDF when the session folder holds it)")
    parser.add_argument("--images", type=_image_list, help="comma-separated image ids (default: all)")
    parser.add_argument("--maps", type=Path, help="CNN map store (lookwhere precompute) to score too")
    add_scoring_arguments(parser)
    mapping = parser.add_argument_group(
        "EyeLink recordings (--dataset eyelink)",
        "Which trial showed which image, and where; patterns are Python regular expressions searched in the "
        "message text (anchor with ^). `lookwhere recording info FILE` lists the messages that repeat per trial.",
    )
    add_trial_rule_arguments(mapping)
    mapping.add_argument("--trials-table", type=Path, metavar="CSV",
                         help="CSV with columns recording,trial,image[,onset_ms,offset_ms] (tracker ms), "
                              "overriding the messages")
    mapping.add_argument("--screen", type=int, nargs=2, metavar=("W", "H"),
                         help="screen size in pixels, overriding DISPLAY_COORDS/GAZE_COORDS")
    mapping.add_argument("--scale", type=float,
                         help="drawn size / image size (default: ×2 fitted to the screen, or the size in each "
                              "trial's !V IMGLOAD)")
    mapping.add_argument("--eye", choices=["best", "left", "right", "both"], default="best",
                        help="eye whose fixations count in binocular recordings: best (default) = the better "
                             "last validation, else the right; both = each eye separately, both in the heatmaps")
    parser.add_argument("--kl-ig-maps", choices=["density", "raw"], default="density",
                        help="KL divergence and information gain on each map turned into a density, blur and "
                             "centre-bias mixture fitted on the other images (default), or on the raw maps")
    parser.add_argument("--density-fit", choices=["cv", "default"], default="cv",
                        help="the densities' parameters fitted leave one image out (default), or the defaults the "
                             "live server uses")
    parser.add_argument("--overlays", type=_overlays, default=6, metavar="N|IDS",
                        help="overlays in the report: the first N images (default 6) or comma-separated image ids")
    parser.add_argument("--float64", action="store_true", help="heatmaps.npz in float64 (default float32)")
    parser.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples for CIs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace):
    from analysis.offline import AnalysisConfig

    return AnalysisConfig(
        dataset=args.dataset, fixations=args.fixations, stimuli=args.stimuli, out=args.out,
        images=args.images, maps=args.maps, heatmap=heatmap_params_from_args(args), metric_variant=args.metric_variant,
        mae_normalize=args.mae_normalize, trial_rules=trial_rules_from_args(args), source=args.source, trials_table=args.trials_table,
        screen_px=tuple(args.screen) if args.screen else None, scale=args.scale, eye=args.eye,
        bootstrap_resamples=args.bootstrap, seed=args.seed, kl_ig_maps=args.kl_ig_maps, density_fit=args.density_fit,
        n_overlays=args.overlays if isinstance(args.overlays, int) else len(args.overlays),
        overlay_images=None if isinstance(args.overlays, int) else args.overlays, heatmaps_float64=args.float64,
    )


def main(args: argparse.Namespace) -> int:
    from analysis.offline import run_analysis

    command_line = ["lookwhere", *args.argv] if getattr(args, "argv", None) else None
    result = run_analysis(config_from_args(args), progress=not args.no_progress, command_line=command_line)
    print(f"report: {result.files['report']}")
    print(f"scores: {result.files['scores']} ({len(result.scores)} rows)")
    for why in result.failed.values():
        print(f"left out: {why}", file=sys.stderr)
    if result.warnings:
        print(f"{len(result.warnings)} data warnings: see params.json and the report", file=sys.stderr)
    # The analysis of the readable files is complete; a non-zero status says some were left out.
    return 1 if result.failed else 0
