"""The ``lookwhere`` command.

Each subcommand lives in its package's ``cli`` module, which must be cheap to import: it defines
``add_arguments(parser)`` and ``main(args) -> int`` and imports heavy libraries (torch, PsychoPy)
only inside ``main``. Only the named subcommand's module is imported (``lookwhere run`` imports
nothing of the analysis), and ``--help`` is instant. This is the one entry point (also as
``python -m lookwhere``); only it configures logging and turns input errors into one line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

__all__ = ["main", "SUBCOMMANDS"]

#: subcommand → (module with add_arguments/main, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("analysis.cli", "score human fixation heatmaps against baselines and CNN maps"),
    "precompute": ("analysis.cnn.cli", "compute the CNN attention maps of a stimulus set into a map store"),
    "run": ("experiment.cli", "run one participant's session (PsychoPy, eye tracker, microphone)"),
    "serve": ("server.cli", "run the live analysis server and the experimenter's dashboard"),
    "keys": ("lookwhere.keys", "create a CURVE key pair for encrypted streaming"),
    "demo": ("lookwhere.demo", "run the main job on embedded defaults"),
    "stimuli": ("stimuli.cli", "prepare and check stimulus sets (VOC 2007, the demo set, any folder)"),
    "recording": ("analysis.readers.cli", "inspect an EyeLink recording (ASC or EDF) before analysing it"),
    "voice": ("analysis.voice.cli", "find the spoken names in the per-trial audio: onsets, offsets, words"),
    "review": ("server.review_cli", "review and correct the spoken names' onsets on recorded sessions (a web page)"),
    "export": ("analysis.export.cli", "write recorded sessions in another layout (bids: BIDS 1.11 with eye tracking)"),
}


_OWN_PACKAGES = ("lookwhere", "analysis", "experiment", "server", "stimuli")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``lookwhere`` parser; with ``command``, only that subcommand's options are added (its
    module alone is imported), otherwise every subcommand's."""
    parser = argparse.ArgumentParser(prog="lookwhere", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if command is None or command == name:
            importlib.import_module(module_name).add_arguments(sub)
        sub.set_defaults(_module=module_name)
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lookwhere`` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_command(words)).parse_args(words)
    args.argv = words  # the words typed, for provenance records
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # -v/-vv raise the project's own loggers only; third-party chatter stays at WARNING.
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    for package in _OWN_PACKAGES:
        logging.getLogger(package).setLevel(level)
    module = importlib.import_module(args._module)
    try:
        return int(module.main(args) or 0)
    except (FileNotFoundError, ValueError, KeyError, OSError) as error:
        # Input problems: one clear line, no traceback (use -vv for it).
        logging.getLogger("lookwhere").debug("traceback", exc_info=True)
        print(f"lookwhere {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
