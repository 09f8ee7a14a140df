"""``lookwhere demo`` end to end, through the real processes.

A short demo (2 simulated participants × 3 images × 1 s, bundled demo photographs, untrained map
store): the experiment program under Xvfb → ZeroMQ → ``lookwhere serve`` → the dashboard in
headless Chromium → the offline analysis. Oracle: the offline ``scores.csv`` of the same sessions —
every score cell the dashboard shows for every image equals it.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


class _Demo:
    """``python -m lookwhere demo …`` in the background, its output read line by line."""

    def __init__(self, *arguments: str, env: dict) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lookwhere", "demo", *arguments],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # as a background job of a non-interactive shell (CI) starts it: Ctrl-C must still stop it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None  # piped
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, prefix: str, timeout_s: float = 240) -> str:
        """The first (next) output line starting with ``prefix``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the demo printed no {prefix!r} line:\n{''.join(self.output)[-4000:]}") from None
            if line.startswith(prefix):
                return line.rstrip("\n")


def test_demo_live_dashboard_equals_offline_report(browser, artifacts, tmp_path):
    from playwright.sync_api import expect

    out = tmp_path / "demo"
    env = {**os.environ, "LOOKWHERE_CACHE_DIR": str(tmp_path / "cache")}  # the demo set is prepared here
    env.pop("DISPLAY", None)
    started = time.monotonic()
    demo = _Demo(
        "--participants",
        "2",
        "--trials",
        "3",
        "--duration-ms",
        "1000",
        "--headless",
        "--out",
        str(out),
        "--http-port",
        "0",
        "--keep-serving",
        env=env,
    )
    try:
        url = demo.wait_for("dashboard:").split()[-1]
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(url)
        testid = page.get_by_test_id
        # mid-session: the first participant's trials stream in
        demo.wait_for("session:   P01")
        expect(testid("participant")).to_have_text("P01", timeout=60_000)
        page.wait_for_function(
            "() => Number(document.querySelector('[data-testid=n-fixations]').textContent) > 0", timeout=60_000
        )
        expect(testid("untrained-banner")).to_be_visible()
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=score-table] td[data-map]').length > 0", timeout=60_000
        )
        page.screenshot(path=artifacts / "demo-mid-session.png", full_page=True)
        print(f"screenshot: {artifacts / 'demo-mid-session.png'}")

        demo.wait_for("live vs offline:")
        report = Path(demo.wait_for("report:").split(maxsplit=1)[1])
        demo.wait_for("the dashboard stays at")
        offline = pd.read_csv(report.parent / "scores.csv", dtype={"image": str})
        images = sorted(offline["image"].unique())
        assert len(images) == 3 and set(offline["map"]) >= {"center_bias", "dataset_prior", "human_loso", "gradcam"}
        for image in images:
            testid("history-list").locator(f'[data-image="{image}"]').click()
            expect(testid("browse-image")).to_have_text(image)
            expected = offline[(offline["image"] == image) & (offline["map"] != "human_gold")]  # offline only
            # the table fills from the image's summary: wait until it holds this image's rows
            page.wait_for_function(
                "n => document.querySelectorAll('[data-testid=score-table] td[data-map]').length === n",
                arg=len(expected),
                timeout=30_000,
            )
            cells = page.eval_on_selector_all(
                '[data-testid="score-table"] td[data-map]',
                "cells => cells.map(c => [c.dataset.map, c.dataset.metric, c.dataset.value])",
            )
            shown = pd.DataFrame(cells, columns=["map", "metric", "shown"])
            shown["shown"] = pd.to_numeric(shown["shown"], errors="coerce")
            merged = expected.merge(shown, on=["map", "metric"], how="outer", indicator=True)
            assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
            pd.testing.assert_series_equal(merged["shown"], merged["value"], check_names=False, rtol=0, atol=1e-12)
        page.screenshot(path=artifacts / "demo-after-report.png", full_page=True)
        page.close()
    finally:
        stopping = time.monotonic()
        demo.process.send_signal(signal.SIGINT)
        demo.process.wait(timeout=30)  # the server waits at most 3 s for open connections
        print(f"demo stopped {time.monotonic() - stopping:.1f} s after Ctrl-C")
    assert demo.process.returncode == 0, "".join(demo.output)[-4000:]
    assert not (out / "server" / "server.json").exists(), "the demo's server was not stopped"
    print(f"demo wall time (to the end of the test): {time.monotonic() - started:.1f} s")
    assert (out / "report" / "live_scores.csv").is_file() and (out / "report" / "fig9_mae.png").is_file()
