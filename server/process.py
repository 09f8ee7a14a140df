"""``lookwhere serve`` as a child process, for programs that run it beside their own work (the
demo, the tests): start it, wait until it serves, stop it the way Ctrl-C does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from server.app import SERVER_INFO_FILE

__all__ = ["start_server", "stop_server"]


def start_server(stimuli: Path, data_dir: Path, *arguments: str, output: IO | int = subprocess.PIPE,
                 timeout_s: float = 60.0, **popen) -> tuple[subprocess.Popen, dict]:
    """Start ``python -m lookwhere serve --stimuli STIMULI --data DATA_DIR ARGUMENTS``.

    Returns once the server has written ``<data_dir>/server.json``: the process and that file's
    contents (``url``, ``zmq_endpoint``, ``pid``).

    Parameters
    ----------
    output
        Where the server's stdout and stderr go (a pipe by default).
    timeout_s : float
        How long it may take to start.
    **popen
        More keyword arguments of :class:`subprocess.Popen`.

    Raises
    ------
    RuntimeError
        The server exited or did not start within ``timeout_s``; the message holds its output when
        it went to a pipe.
    """
    info_file = Path(data_dir) / SERVER_INFO_FILE
    info_file.unlink(missing_ok=True)  # a server killed with SIGKILL leaves its own behind
    command = [sys.executable, "-m", "lookwhere", "serve", "--stimuli", str(stimuli), "--data", str(data_dir),
               *arguments]
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True, **popen)
    deadline = time.monotonic() + timeout_s
    while not info_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            said = process.communicate()[0] if output == subprocess.PIPE else ""
            raise RuntimeError(f"lookwhere serve did not start (exit {process.poll()}): {said or 'see its log'}")
        time.sleep(0.05)
    return process, json.loads(info_file.read_text())


def stop_server(process: subprocess.Popen, *, timeout_s: float = 20.0) -> None:
    """Stop it with SIGINT (journals flushed, ``server.json`` removed); SIGKILL after ``timeout_s``."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
