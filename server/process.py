"""``lookwhere serve`` as a child process, for programs that run it beside their own work (the
demo, the tests): start it, wait until it serves, stop it the way Ctrl-C does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from server.app import SERVER_INFO_FILE

__all__ = ["start_server", "stop_server"]


def start_server(
    stimuli: Path, data_dir: Path, *arguments: str, log_file: Path | None = None, timeout_s: float = 60.0, **popen
) -> tuple[subprocess.Popen, dict]:
    """Start ``python -m lookwhere serve --stimuli STIMULI --data DATA_DIR ARGUMENTS``.

    Returns once the server has written ``<data_dir>/server.json``: the process and that file's
    contents (``url``, ``zmq_endpoint``, ``pid``).

    Parameters
    ----------
    log_file : Path, optional
        Where the server's output goes (default ``<data_dir>/serve.log``). A file, never a pipe
        nobody reads: a full pipe would block the server's logging, and with it the server.
    timeout_s : float
        How long it may take to start.
    **popen
        More keyword arguments of :class:`subprocess.Popen`.

    Raises
    ------
    RuntimeError
        The server exited or did not start within ``timeout_s``; the message ends with its log.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = Path(log_file) if log_file is not None else data_dir / "serve.log"
    info_file = data_dir / SERVER_INFO_FILE
    info_file.unlink(missing_ok=True)  # a server killed with SIGKILL leaves its own behind
    command = [
        sys.executable,
        "-m",
        "lookwhere",
        "serve",
        "--stimuli",
        str(stimuli),
        "--data",
        str(data_dir),
        *arguments,
    ]
    with open(log_file, "a") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **popen)
    deadline = time.monotonic() + timeout_s
    while not info_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(
                f"lookwhere serve did not start (exit {process.returncode}); {log_file}:\n"
                f"{log_file.read_text()[-3000:]}"
            )
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
