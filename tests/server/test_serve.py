"""``lookwhere serve`` as a real process: what its API reports equals the offline analysis.

Real OSIE fixations of three images by three observers, one session each, streamed by the
experiment's :class:`experiment.sender.Sender` over ZeroMQ to a running server; the oracle is
:func:`analysis.offline.run_analysis` on the same fixations (as in ``test_state``, which checks the
state itself; this checks the path through the hub, its scored copy and the JSON API). The server is
then restarted on its data folder and must report the same. Then the experimenter excludes a trial
on the dashboard's API: the live scores must equal ``analyze --notes DATA_DIR``'s, also after a
restart.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest

from analysis.readers import read_osie
from server.config import CONFIG_FILE
from stimuli.sets import StimulusSet
from tests.server._serve import serve_process
from tests.server._sessions import (
    IMAGES,
    MAPS,
    OBSERVERS,
    RANDOM_METRICS,
    offline_analysis,
    small_store,
    stimulus_subset,
    stream,
    timed,
)

pytestmark = pytest.mark.slow


def _api_scores(url: str) -> pd.DataFrame:
    rows = []
    for image in IMAGES:
        summary = httpx.get(f"{url}api/images/{image}", timeout=30).raise_for_status().json()
        rows += [
            {"image": image, "map": name, "metric": metric, "value": np.nan if value is None else value}
            for name, values in summary["scores"].items()
            for metric, value in values.items()
        ]
    return pd.DataFrame(rows)


def _settled(url: str, n_fixations: int) -> None:
    """Wait until the scored copy holds every fixation (scoring runs behind the stream)."""
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        progress = httpx.get(f"{url}api/images", timeout=10).json()
        history = progress["images"]
        if progress["settled"] and sum(row["n_fixations"] for row in history) == n_fixations:
            return
        time.sleep(0.1)
    raise AssertionError(f"the server's scored state never reached {n_fixations} fixations: {history}")


@pytest.fixture(scope="module")
def served(osie_fixations_path, osie_stimuli, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("serve")
    osie = read_osie(osie_fixations_path, images=IMAGES)
    table = timed(osie[osie["participant"].isin(OBSERVERS)])
    store = small_store(tmp_path / "maps")
    data = tmp_path / "data"
    stimuli = stimulus_subset(osie_stimuli, IMAGES, tmp_path / "stimuli")
    options = ("--maps", str(store.path), "--seed", "7")
    with serve_process(stimuli, data, *options) as server:
        _, sent = stream(table, StimulusSet(osie_stimuli), server["zmq_endpoint"], tmp_path)
        _settled(server["url"], len(sent))
        live = _api_scores(server["url"])
        session = httpx.get(f"{server['url']}api/session", timeout=10).json()
        health = httpx.get(f"{server['url']}api/health", timeout=10).json()
    with serve_process(stimuli, data, *options) as server:
        _settled(server["url"], len(sent))
        restarted = _api_scores(server["url"])
        # the current session (the last observer's): its second trial excluded on the dashboard
        note = httpx.post(f"{server['url']}api/notes", json={"kind": "exclude_trial", "trial": 1}, timeout=10)
        assert note.status_code == 201, note.text
        dropped = sent[(sent["session"] == note.json()["session"]) & (sent["trial"] == 1)]
        _settled(server["url"], len(sent) - len(dropped))
        excluded = _api_scores(server["url"])
    with serve_process(stimuli, data, *options) as server:  # the notes read again at start
        _settled(server["url"], len(sent) - len(dropped))
        excluded_restarted = _api_scores(server["url"])

    offline = offline_analysis(sent, osie_stimuli, store.path, tmp_path)
    offline_notes = offline_analysis(sent, osie_stimuli, store.path, tmp_path, notes_dir=data)
    return dict(
        live=live,
        restarted=restarted,
        excluded=excluded,
        excluded_restarted=excluded_restarted,
        offline_notes=offline_notes.scores,
        offline=offline.scores,
        session=session,
        health=health,
        sent=sent,
        data=data,
        stimuli=stimuli,
        table=table,
        options=options,
    )


def test_api_scores_equal_the_offline_analysis(served):
    _assert_equal(served["offline"], served["live"])


def test_a_trial_excluded_by_a_note_scores_as_analyze_with_the_notes(served):
    assert not served["excluded"].equals(served["live"])
    _assert_equal(served["offline_notes"], served["excluded"])
    pd.testing.assert_frame_equal(served["excluded_restarted"], served["excluded"])


def _assert_equal(offline: pd.DataFrame, live: pd.DataFrame) -> None:
    """Deterministic scores to 1e-9, the seeded random AUCs exactly."""
    merged = offline.merge(
        live, on=["image", "map", "metric"], how="outer", suffixes=("_offline", "_live"), indicator=True
    )
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    assert set(merged["map"]) == MAPS
    deterministic = ~merged["metric"].isin(RANDOM_METRICS) | (merged["map"] == "human_loso")
    np.testing.assert_allclose(
        merged.loc[deterministic, "value_live"], merged.loc[deterministic, "value_offline"], rtol=0, atol=1e-9
    )
    # the seeded random AUCs: same seed, same functions, so equal (JSON keeps every digit of a float)
    random_rows = merged[~deterministic]
    np.testing.assert_array_equal(random_rows["value_live"], random_rows["value_offline"])


def test_a_restarted_server_reports_the_same(served):
    pd.testing.assert_frame_equal(served["restarted"], served["live"])


def test_session_and_health_report_the_stream(served):
    session, health = served["session"], served["health"]
    assert session["participant"] == OBSERVERS[-1] and session["ended"] == "completed"
    assert session["n_fixations"] == len(served["sent"]) and session["n_sessions"] == 3
    assert session["images"] == sorted(IMAGES) and session["ignored"] == {}
    receiver = health["receiver"]
    assert receiver["accepted"] == session["n_records"]
    assert receiver["gaps"] == 0 and receiver["duplicates"] == 0 and health["malformed_total"] == 0
    # scorings of fixations only (the wake-ups without any took ~0 ms and hid them)
    assert health["score_ms"]["n"] > 0 and health["score_ms"]["p50"] > 1.0, health["score_ms"]
    assert {key: health["maps"][key] for key in ("names", "label", "untrained")} == {
        "names": ["cam_a", "cam_b"],
        "label": "untrained",
        "untrained": True,
    }


def test_the_configuration_is_written_next_to_the_data(served):
    config = json.loads((served["data"] / CONFIG_FILE).read_text())
    assert config["stimuli"] == str(served["stimuli"]) and config["seed"] == 7
    assert config["heatmap"]["sigma_px"] == 20.0 and "token" not in config
    assert (served["data"] / "serve_config.prev.json").exists()  # the first start's, kept at restart


def test_bad_input_is_one_line_and_exit_2(osie_stimuli, tmp_path):
    import subprocess
    import sys

    store = small_store(tmp_path / "maps")  # maps for 3 images, the folder has 200
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lookwhere",
            "serve",
            "--stimuli",
            str(osie_stimuli),
            "--maps",
            str(store.path),
            "--data",
            str(tmp_path / "data"),
            "--http-port",
            "0",
            "--zmq-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"lookwhere serve: error: map store {store.path} lacks the maps of 197 stimuli (e.g. ['1004', '1005', "
        f"'1006']); run `lookwhere precompute --stimuli {osie_stimuli} --out {store.path}`"
    ]


def test_sigkill_mid_session_then_restart_equals_the_uninterrupted_run(served, tmp_path):
    """``lookwhere serve`` killed (SIGKILL) in the middle of the second participant's session and
    restarted on its data folder: the senders replay what was not acknowledged, and the final
    scores equal those of the uninterrupted run — nothing lost, nothing counted twice."""
    import contextlib
    import socket
    import time

    with socket.socket() as probe:  # the restarted server must listen where the sender reconnects
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = (*served["options"], "--zmq-port", str(port))
    data = tmp_path / "data"
    killed: dict = {}
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(serve_process(served["stimuli"], data, *options))

        def kill_mid_session(participant: str, trial: int, sender) -> None:
            if participant != OBSERVERS[1]:
                return
            if trial == 0:  # the server has taken the first trial of this session …
                deadline = time.monotonic() + 10
                while sender.acked_seq == 0 and time.monotonic() < deadline:
                    sender.service()
                    time.sleep(0.005)
            elif trial == 1:  # … and the second is in flight when it dies
                first["process"].kill()
                first["process"].wait()
                killed.update(acked=sender.acked_seq, pending=sender.pending)
                killed["server"] = stack.enter_context(serve_process(served["stimuli"], data, *options))

        _, sent = stream(
            served["table"],
            StimulusSet(served["stimuli"]),
            f"tcp://127.0.0.1:{port}",
            tmp_path,
            after_trial=kill_mid_session,
        )
        url = killed["server"]["url"]
        _settled(url, len(sent))
        after = _api_scores(url)
        health = httpx.get(f"{url}api/health", timeout=10).json()
    assert killed["acked"] > 0 and killed["pending"] > 0  # killed mid-session, records in flight
    print(
        f"SIGKILL of lookwhere serve: {killed['acked']} records acknowledged, {killed['pending']} in flight; "
        f"restarted server's receiver: {health['receiver']}"
    )
    pd.testing.assert_frame_equal(after, served["live"])


def test_a_loopback_server_refuses_foreign_host_names(served, tmp_path):
    """DNS rebinding: a page whose own domain now points at 127.0.0.1 sends its own name as
    ``Host`` (and as ``Origin``); a loopback server answers only to loopback names."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    from websockets.typing import Origin

    with serve_process(served["stimuli"], tmp_path / "data") as server:
        url = server["url"]
        port = url.rsplit(":", 1)[1].strip("/")
        assert httpx.get(f"{url}api/health", timeout=10).status_code == 200
        assert httpx.get(f"http://localhost:{port}/api/health", timeout=10).status_code == 200
        for path in ("", "api/health", "api/images/1001"):
            response = httpx.get(url + path, headers={"Host": f"evil.example:{port}"}, timeout=10)
            assert response.status_code == 400, (path, response.status_code)
        with pytest.raises(InvalidStatus):
            connect(
                f"ws://127.0.0.1:{port}/ws",
                additional_headers={"Host": f"evil.example:{port}"},
                origin=Origin(f"http://evil.example:{port}"),
            ).close()
