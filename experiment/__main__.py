"""``python -m experiment``: the same as ``lookwhere run`` (for environments without the script)."""

from __future__ import annotations

import argparse
import logging
import sys

from experiment.cli import add_arguments, main

parser = argparse.ArgumentParser(
    prog="python -m experiment", description="run one participant's session"
)
parser.add_argument("-v", "--verbose", action="count", default=0)
add_arguments(parser)
arguments = parser.parse_args()
logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
logging.getLogger("experiment").setLevel(
    (logging.WARNING, logging.INFO, logging.DEBUG)[min(arguments.verbose, 2)]
)
try:
    sys.exit(main(arguments))
except (FileNotFoundError, ValueError, KeyError, OSError) as error:
    print(f"python -m experiment: error: {error}", file=sys.stderr)
    sys.exit(2)
