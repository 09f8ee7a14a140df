"""``lookwhere run``: run one participant's session (SPEC §4).

Cheap to import: PsychoPy, pylink and sounddevice are imported only inside :func:`main`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

__all__ = ["add_arguments", "main", "build_config"]

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``lookwhere run`` to ``parser``."""
    parser.add_argument("--participant", required=True, help="participant id, e.g. P07 (names the session folder)")
    parser.add_argument("--stimuli", type=Path, required=True, help="folder of stimulus images")
    parser.add_argument(
        "--tracker",
        choices=["eyelink", "eyelink-dummy", "simulated"],
        default="eyelink",
        help="tracker backend (default: eyelink)",
    )
    parser.add_argument("--host", default="100.1.1.1", help="EyeLink host PC address (default: 100.1.1.1)")
    parser.add_argument("--out", type=Path, default=Path("sessions"), help="parent folder of session folders")
    parser.add_argument("--trials", type=int, default=None, help="number of trials (default: every image once)")
    parser.add_argument("--duration-ms", type=float, default=5000.0, help="image display time (default: 5000)")
    parser.add_argument("--scale", type=float, default=2.0, help="display scale of the images (default: 2)")
    parser.add_argument(
        "--screen",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        default=(1920, 1080),
        help="screen size in pixels (default: 1920 1080)",
    )
    parser.add_argument(
        "--fullscreen",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="full-screen window (--windowed is the same as --no-fullscreen)",
    )
    parser.add_argument("--windowed", dest="fullscreen", action="store_false", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=None, help="seed of the image order (default: random, recorded)")
    parser.add_argument("--edf-name", default="", help="EDF name on the host, ≤ 8 chars [A-Za-z0-9_]")
    parser.add_argument("--no-mic", dest="microphone", action="store_false", help="do not record the microphone")
    parser.add_argument("--mic-device", default=None, help="sounddevice input device name or index")
    _add_drift_and_viewing_arguments(parser)
    _add_simulation_arguments(parser)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted session of this participant in --out",
    )
    parser.add_argument(
        "--server",
        default=None,
        metavar="tcp://HOST:PORT",
        help="stream every record live to this analysis server (never blocks; an absent server "
        "gets the records when it comes up, from the journal in the session folder)",
    )
    lsl = parser.add_argument_group("Lab Streaming Layer", "gaze, fixation and marker outlets for an EEG recorder")
    lsl.add_argument(
        "--lsl",
        action="store_true",
        help="open LSL outlets (lookwhere Gaze, Fixations, Markers; needs the lsl extra). LSL has no "
        "authentication and listens on every network interface: use it on the lab's isolated network",
    )
    lsl.add_argument(
        "--lsl-wait-s",
        type=float,
        default=0.0,
        metavar="S",
        help="with --lsl: wait up to S s for a recorder (e.g. LabRecorder) on every outlet before the "
        "session starts (default: 0, do not wait)",
    )


def _add_drift_and_viewing_arguments(parser: argparse.ArgumentParser) -> None:
    drift = parser.add_argument_group("drift correction", "how each image is started")
    drift.add_argument(
        "--drift-start",
        choices=["key", "gaze"],
        default="key",
        help="start each image on the space bar (key) or also once the gaze has held the "
        "central dot (gaze) (default: key)",
    )
    drift.add_argument(
        "--gaze-hold-ms",
        type=float,
        default=500.0,
        help="gaze start: how long the gaze must stay on the dot (default: 500)",
    )
    drift.add_argument(
        "--gaze-radius-px",
        type=float,
        default=60.0,
        help="gaze start: distance from the dot that counts as on it (default: 60)",
    )
    viewing = parser.add_argument_group("viewing geometry", "for the data quality in degrees")
    viewing.add_argument(
        "--screen-width-cm",
        type=float,
        default=None,
        help="visible width of the screen in cm (default: the lab's 53.1, flagged as a default)",
    )
    viewing.add_argument(
        "--viewing-distance-cm",
        type=float,
        default=None,
        help="eye-to-screen distance in cm (default: the lab's 70, flagged as a default)",
    )


def _add_simulation_arguments(parser: argparse.ArgumentParser) -> None:
    simulation = parser.add_argument_group("simulated tracker and participant (--tracker simulated)")
    simulation.add_argument(
        "--scanpaths",
        type=Path,
        default=None,
        help="simulated tracker: CSV of recorded scanpaths to replay",
    )
    simulation.add_argument(
        "--auto-accept-drift-ms",
        type=float,
        default=None,
        help="simulated participant: accept drift correction after this many ms",
    )
    simulation.add_argument(
        "--sim-validation-deg",
        type=float,
        nargs="+",
        default=None,
        metavar="DEG",
        help="simulated tracker: average error of successive validations (the last repeats; default: 0.3)",
    )
    simulation.add_argument(
        "--sim-drift-deg-per-trial",
        type=float,
        default=0.0,
        help="simulated tracker: drift growth per trial since the last calibration, degrees (default: 0)",
    )
    simulation.add_argument(
        "--sim-track-loss-trials",
        type=int,
        nargs="+",
        default=(),
        metavar="TRIAL",
        help="simulated tracker: trials (0-based) during which the eye is lost for a stretch",
    )


def build_config(args: argparse.Namespace):
    """The :class:`~experiment.config.SessionConfig` of parsed arguments (saved one on --resume)."""
    from experiment.config import SessionConfig

    if args.resume:
        path = Path(args.out) / args.participant / "config.json"
        if not path.exists():
            raise FileNotFoundError(f"--resume: no session to resume at {path.parent} (no config.json)")
        return SessionConfig.load(path)
    values = dict(
        participant=args.participant,
        stimuli=args.stimuli,
        tracker=args.tracker,
        host=args.host,
        out=args.out,
        trials=args.trials,
        duration_ms=args.duration_ms,
        scale=args.scale,
        screen_width_px=args.screen[0],
        screen_height_px=args.screen[1],
        fullscreen=args.fullscreen,
        edf_name=args.edf_name,
        microphone=args.microphone,
        mic_device=int(args.mic_device) if str(args.mic_device).isdigit() else args.mic_device,
        scanpaths=args.scanpaths,
        auto_accept_drift_ms=args.auto_accept_drift_ms,
        drift_start=args.drift_start,
        gaze_hold_ms=args.gaze_hold_ms,
        gaze_radius_px=args.gaze_radius_px,
        screen_width_cm=args.screen_width_cm,
        viewing_distance_cm=args.viewing_distance_cm,
        sim_drift_deg_per_trial=args.sim_drift_deg_per_trial,
        sim_track_loss_trials=tuple(args.sim_track_loss_trials),
    )
    if args.sim_validation_deg is not None:
        values["sim_validation_deg"] = tuple(args.sim_validation_deg)
    if args.seed is not None:
        values["seed"] = args.seed
    return SessionConfig(**values)


def main(args: argparse.Namespace) -> int:
    """Run the session; 0 when every trial ran, 1 when it ended early (records are saved)."""
    from pydantic import ValidationError

    from experiment.lifecycle import SessionInterrupted
    from experiment.operator_screens import QuitRequested
    from experiment.preflight import PreflightError
    from experiment.task import Session

    if args.lsl_wait_s < 0 or (args.lsl_wait_s and not args.lsl):
        raise ValueError(f"--lsl-wait-s {args.lsl_wait_s:g}: give a wait >= 0 s, together with --lsl")
    try:
        config = build_config(args)
    except ValidationError as error:
        raise ValueError(str(error)) from None
    try:
        sink = None
        if args.server:
            from experiment.stream import open_stream

            sink = open_stream(args.server, config.session_dir, session=config.session_id)
            if not sink.sender.handshake():
                logger.warning(
                    "preflight: no analysis server answered at %s within 2 s; the session runs and "
                    "its records wait in %s until the server comes up",
                    args.server,
                    sink.sender.journal_path,
                )
        lsl_wait_s = args.lsl_wait_s if args.lsl else None
        with Session(config, sink=sink, resume=args.resume, lsl_wait_s=lsl_wait_s) as session:
            session.run()
    except PreflightError as error:
        raise ValueError(str(error)) from None
    except (QuitRequested, SessionInterrupted, KeyboardInterrupt) as error:
        logger.warning(
            "session ended early (%s); records saved in %s",
            type(error).__name__,
            config.session_dir,
        )
        return 1
    logger.info("session complete: %s", config.session_dir)
    return 0
