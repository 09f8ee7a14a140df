"""SIGKILL of ``lookwhere run`` and of ``lookwhere serve`` at seeded random moments, through the
real processes (simulated tracker, PsychoPy under Xvfb, ZeroMQ on 127.0.0.1).

Oracles: the session folder, which ``--resume`` keeps exactly (every trial once): the server's
journal must hold exactly the records of the session's own journal (``stream.journal``), record
by record, with no conflict; and every live score the server's API reports must equal
``lookwhere analyze --dataset session`` on the session folder (1e-9; the seeded AUCs exactly).

One session is killed and resumed 20 times in a chain (a process start costs ~5 s here, so 20
sessions would cost far more than one chain). The kill moments are seeded: during the image
(uniform within it), during the drift-correction dot (uniform within its auto-accept time) and
between trials (as soon as a trial's end is journalled, i.e. while the trial row is written).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgpack
import numpy as np
import pandas as pd
import pytest

from analysis.cnn.store import MapStoreWriter
from experiment.records import SessionRecords
from experiment.stream import JOURNAL_NAME
from server.process import start_server, stop_server
from server.receiver import CONFLICTS_FOLDER
from stimuli.sets import StimulusSet
from tests.experiment.test_sender import _journal_payloads

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
N_IMAGES = 16
DURATION_MS = 800
DRIFT_MS = 200
RUN = (
    "--tracker",
    "simulated",
    "--duration-ms",
    str(DURATION_MS),
    "--auto-accept-drift-ms",
    str(DRIFT_MS),
    "--windowed",
    "--no-mic",
    "--screen",
    "1024",
    "768",
    "--seed",
    "3",
)
SERVE = ("--http-port", "0", "--seed", "7")
RANDOM_METRICS = {"auc_judd", "auc_borji", "auc_shuffled"}
# 20 kills: 7 during the image and 7 during drift correction (the interrupted trial runs again,
# or the one before it completed), 6 between trials. At most 13 trials complete in the chain, so
# the session (16 trials) is never over before the last resume.
PHASES = ["image"] * 7 + ["drift"] * 7 + ["between"] * 6


@pytest.fixture(scope="module")
def lab(osie_stimuli, tmp_path_factory) -> dict:
    """16 OSIE photographs and a map store of two smooth random maps each (16×16, upsampled)."""
    folder = tmp_path_factory.mktemp("crash")
    stimuli = folder / "stimuli"
    stimuli.mkdir()
    for path in sorted(osie_stimuli.glob("*.jpg"))[:N_IMAGES]:
        (stimuli / path.name).symlink_to(path)
    rng = np.random.default_rng(17)
    rows, columns = np.mgrid[0:16, 0:16]
    writer = MapStoreWriter(
        folder / "maps",
        {
            "map_names": ["cam_a", "cam_b"],
            "model": {"architecture": "test"},
            "weights": {"label": "untrained", "untrained": True, "seed": 17},
            "input": {"size": [16, 16]},
            "parameters": {},
        },
    )
    stimulus_set = StimulusSet(stimuli)
    for image in stimulus_set.image_ids:
        centres = rng.uniform(3, 13, size=(2, 2))
        writer.write_image(
            image,
            {
                name: np.exp(-((rows - r) ** 2 + (columns - c) ** 2) / 18.0)
                for name, (r, c) in zip(("cam_a", "cam_b"), centres)
            },
            record={"original_shape": list(stimulus_set.shape(image))},
        )
    return {"stimuli": stimuli, "maps": folder / "maps"}


class _Tail:
    """The records appended to a journal since the last look (the file only grows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._unpacker = msgpack.Unpacker(raw=False)
        self.last_kind = "nothing"

    def new(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as file:
            file.seek(self._offset)
            data = file.read()
        self._offset += len(data)
        self._unpacker.feed(data)
        records = list(self._unpacker)
        if records:
            self.last_kind = records[-1]["kind"]
        return records


def _start_run(lab: dict, out: Path, participant: str, endpoint: str, log: Path, *extra: str) -> subprocess.Popen:
    """``lookwhere run`` in the background; its output to ``log`` (a pipe nobody reads would fill)."""
    with open(log, "a") as file:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lookwhere",
                "-v",
                "run",
                "--participant",
                participant,
                "--stimuli",
                str(lab["stimuli"]),
                "--out",
                str(out),
                "--server",
                endpoint,
                *RUN,
                *extra,
            ],
            cwd=REPO,
            env=lab["env"],
            stdout=file,
            stderr=subprocess.STDOUT,
        )


def _wait_for(tail: _Tail, kind: str, process: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    """Poll the journal every 5 ms until a new ``kind`` record appears."""
    deadline = time.monotonic() + timeout_s
    while not any(record["kind"] == kind for record in tail.new()):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {kind} record (exit {process.poll()}); {log}:\n{log.read_text()[-3000:]}")
        time.sleep(0.005)


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def _settled(url: str, n_fixations: int) -> list[str]:
    """Wait until the server's scored state holds every fixation; the images that have some."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = httpx.get(f"{url}api/images", timeout=10).json()
        history = progress["images"]
        if progress["settled"] and sum(row["n_fixations"] for row in history) == n_fixations:
            return [row["image"] for row in history if row["n_fixations"]]
        time.sleep(0.1)
    raise AssertionError(f"the server's scored state never reached {n_fixations} fixations: {history}")


def _live_scores(url: str, images: list[str]) -> pd.DataFrame:
    rows = []
    for image in images:
        summary = httpx.get(f"{url}api/images/{image}", timeout=30).raise_for_status().json()
        rows += [
            {"image": image, "map": name, "metric": metric, "value": np.nan if value is None else value}
            for name, values in summary["scores"].items()
            for metric, value in values.items()
        ]
    return pd.DataFrame(rows)


def _check(folder: Path, data: Path, live: pd.DataFrame, health: dict, lab: dict, out: Path) -> None:
    """The oracle: journals record by record, no conflict, live scores = the offline analysis."""
    from analysis.offline import AnalysisConfig, run_analysis

    session = SessionRecords(folder).read_manifest()["session"]
    sent = _journal_payloads(folder / JOURNAL_NAME)
    held = _journal_payloads(data / "stream" / f"{session}.msgpack")
    assert len(held) == len(sent)
    for seq, (a, b) in enumerate(zip(held, sent), start=1):
        assert a == b, f"seq {seq}: the server holds {msgpack.unpackb(a)}, the session {msgpack.unpackb(b)}"
    assert health["receiver"]["conflicts"] == 0 and not (data / "stream" / CONFLICTS_FOLDER).exists()
    assert health["ignored"] == {}  # every fixation had its trial, none came before its session
    for log in folder.parent.parent.glob("run*.log"):  # no false alarm from the stream
        warnings = [
            line
            for line in log.read_text().splitlines()
            if "WARNING experiment.sender" in line or "no analysis server answered" in line
        ]
        assert warnings == [], log

    offline = run_analysis(
        AnalysisConfig(
            dataset="session",
            fixations=folder.parent,
            stimuli=lab["stimuli"],
            maps=lab["maps"],
            out=out,
            seed=7,
            bootstrap_resamples=100,
            n_overlays=0,
            # the live server's density parameters (the defaults), so that live and offline compare
            density_fit="default",
            split_half_splits=1,
            heatmaps_float64=True,
        ),
        progress=False,
    ).scores
    offline = offline[offline["map"] != "human_gold"]  # offline only: fitted across images
    merged = offline.merge(
        live, on=["image", "map", "metric"], how="outer", suffixes=("_offline", "_live"), indicator=True
    )
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    deterministic = ~merged["metric"].isin(RANDOM_METRICS) | (merged["map"] == "human_loso")
    np.testing.assert_allclose(
        merged.loc[deterministic, "value_live"], merged.loc[deterministic, "value_offline"], rtol=0, atol=1e-9
    )
    random_rows = merged[~deterministic]
    np.testing.assert_array_equal(random_rows["value_live"], random_rows["value_offline"])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _finish(lab: dict, out: Path, participant: str, endpoint: str, log: Path) -> SessionRecords:
    """Run the session's remaining trials (``--resume``) to the end; its records."""
    process = _start_run(lab, out, participant, endpoint, log, "--resume")
    assert process.wait(timeout=180) == 0, log.read_text()[-3000:]
    records = SessionRecords(out / participant)
    assert [row["trial"] for row in records.completed_trials()] == list(range(N_IMAGES))
    return records


@pytest.mark.timeout(480)
def test_run_killed_twenty_times_and_resumed(lab, xvfb_display, tmp_path):
    rng = np.random.default_rng(20261127)
    lab = {**lab, "env": {**os.environ, "DISPLAY": xvfb_display}}
    out, folder = tmp_path / "sessions", tmp_path / "sessions" / "K01"
    data = tmp_path / "data"
    server, info = start_server(lab["stimuli"], data, *SERVE, "--zmq-port", "0", "--maps", str(lab["maps"]))
    try:
        endpoint = info["zmq_endpoint"]
        tail = _Tail(folder / JOURNAL_NAME)
        moments = []
        for kill, phase in enumerate(rng.permutation(PHASES)):
            log = tmp_path / f"run-{kill:02d}.log"
            process = _start_run(lab, out, "K01", endpoint, log, *(("--resume",) if kill else ()))
            try:
                if phase == "image":
                    _wait_for(tail, "trial_start", process, log)
                    time.sleep(rng.uniform(0, DURATION_MS / 1000))
                else:
                    _wait_for(tail, "trial_end", process, log)
                    if phase == "drift":
                        time.sleep(rng.uniform(0.02, DRIFT_MS / 1000))
            finally:
                _kill(process)
            tail.new()
            moments.append(f"{phase}/{tail.last_kind}")
        records = _finish(lab, out, "K01", endpoint, tmp_path / "run-final.log")
        images = _settled(info["url"], len(records.read_fixations()))
        live = _live_scores(info["url"], images)
        health = httpx.get(f"{info['url']}api/health", timeout=10).json()
    finally:
        stop_server(server)
    segments = records.read_manifest()["segments"]
    print(
        f"lookwhere run SIGKILLed 20 times ({len(segments)} segments), at: {', '.join(moments)}; "
        f"receiver {health['receiver']}"
    )
    assert len(segments) == 21
    _check(folder, data, live, health, lab, tmp_path / "offline")


@pytest.mark.timeout(300)
def test_serve_killed_at_random_moments_and_restarted(lab, xvfb_display, tmp_path):
    """Four kills at seeded random moments, all before trial 13 of 16 starts (the last restart
    must be done before the session ends, or its last records would wait in its journal); the
    trials last 3 s here, so that a restart (3 s on an idle CI machine, up to ~10 s loaded) leaves
    room for the next kill."""
    rng = np.random.default_rng(20261128)
    lab = {**lab, "env": {**os.environ, "DISPLAY": xvfb_display}}
    out, folder = tmp_path / "sessions", tmp_path / "sessions" / "S01"
    data, port = tmp_path / "data", _free_port()
    options = (*SERVE, "--zmq-port", str(port), "--maps", str(lab["maps"]))
    server, info = start_server(lab["stimuli"], data, *options)
    log = tmp_path / "run.log"
    process = _start_run(lab, out, "S01", f"tcp://127.0.0.1:{port}", log, "--duration-ms", "3000")
    tail, trial = _Tail(folder / JOURNAL_NAME), -1
    kills: list[str] = []
    try:
        _wait_for(tail, "session_start", process, log)
        while True:
            time.sleep(rng.uniform(0.05, 2.0))
            trial = max([trial] + [r["trial"] for r in tail.new() if r["kind"] == "trial_start"])
            if trial >= N_IMAGES - 3 or len(kills) == 4:
                break
            _kill(server)
            kills.append(f"trial {trial}/{tail.last_kind}")
            server, info = start_server(lab["stimuli"], data, *options)
        assert process.wait(timeout=120) == 0, log.read_text()[-3000:]
        records = SessionRecords(folder)
        assert len(records.completed_trials()) == N_IMAGES
        images = _settled(info["url"], len(records.read_fixations()))
        live = _live_scores(info["url"], images)
        health = httpx.get(f"{info['url']}api/health", timeout=10).json()
    finally:
        if process.poll() is None:
            _kill(process)
        stop_server(server)
    print(f"lookwhere serve SIGKILLed {len(kills)} times, at: {', '.join(kills)}; last receiver {health['receiver']}")
    assert len(kills) == 4
    _check(folder, data, live, health, lab, tmp_path / "offline")
