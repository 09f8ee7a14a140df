"""Start ``lookwhere serve`` as a real process for the tests, and stop it."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from server.app import SERVER_INFO_FILE


@contextlib.contextmanager
def serve_process(stimuli: Path, data_dir: Path, *arguments: str, timeout_s: float = 60.0) -> Iterator[dict]:
    """Run ``lookwhere serve`` on free ports; yield its ``server.json`` plus ``process``.

    Stopped with SIGINT (the graceful path a user's Ctrl-C takes) when the block ends; its output
    is attached to any failure to start.
    """
    info_file = Path(data_dir) / SERVER_INFO_FILE
    info_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "lookwhere", "serve", "--stimuli", str(stimuli), "--data", str(data_dir),
               "--http-port", "0", "--zmq-port", "0", *arguments]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while not info_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"lookwhere serve did not start: {process.communicate()[0]}")
            time.sleep(0.05)
        yield {**json.loads(info_file.read_text()), "process": process}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
