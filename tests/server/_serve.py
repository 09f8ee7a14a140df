"""Start ``lookwhere serve`` as a real process for the tests, and stop it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from server.process import start_server, stop_server


@contextlib.contextmanager
def serve_process(stimuli: Path, data_dir: Path, *arguments: str, timeout_s: float = 60.0) -> Iterator[dict]:
    """Run ``lookwhere serve`` on free ports (unless ``arguments`` name them); yield its
    ``server.json`` plus ``process``. Stopped with SIGINT, as a user's Ctrl-C, when the block ends."""
    process, info = start_server(
        stimuli, data_dir, "--http-port", "0", "--zmq-port", "0", *arguments, timeout_s=timeout_s
    )
    try:
        yield {**info, "process": process}
    finally:
        stop_server(process, timeout_s=15)
