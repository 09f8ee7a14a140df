"""A virtual X display (Xvfb) for running the task where there is no screen: tests, CI, the demo."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VirtualDisplay", "start_xvfb"]


@dataclass
class VirtualDisplay:
    """A running Xvfb server; ``display`` is the value for ``$DISPLAY`` (``":N"``)."""

    process: subprocess.Popen
    display: str

    def close(self) -> None:
        """Stop the server (idempotent)."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def start_xvfb(
    *, width_px: int = 1920, height_px: int = 1080, first_display: int = 90, timeout_s: float = 10
) -> VirtualDisplay:
    """Start ``Xvfb :N -screen 0 WxHx24`` on the first free display number from ``first_display``.

    Raises
    ------
    FileNotFoundError
        Xvfb is not installed (``apt-get install xvfb``).
    RuntimeError
        The server did not come up within ``timeout_s``.
    """
    if shutil.which("Xvfb") is None:
        raise FileNotFoundError("Xvfb is not installed; apt-get install xvfb (or run on a real display)")
    number = next(
        n
        for n in range(first_display, first_display + 100)
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists()
    )
    process = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", f"{width_px}x{height_px}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    socket = Path(f"/tmp/.X11-unix/X{number}")
    deadline = time.monotonic() + timeout_s
    while not socket.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"Xvfb :{number} did not start within {timeout_s} s")
        time.sleep(0.05)
    return VirtualDisplay(process, f":{number}")
