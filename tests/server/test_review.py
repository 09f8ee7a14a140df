"""The review API (``lookwhere review`` and ``/review`` of ``lookwhere serve``) through a test client.

Oracles: the espeak-ng words' known onsets in the session's WAVs (plus the recorded offset), the
WAV's samples for the envelope (min and max per column by numpy), the corrections file as
:func:`analysis.voice.corrections.read_corrections` reads it, and the naming analysis's own
reading of the session (:func:`analysis.naming.session_utterances`).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from analysis.naming import NamingParams, session_utterances
from analysis.voice.corrections import CORRECTIONS_FILE, read_corrections
from analysis.voice.recordings import read_wav
from server.app import create_review_app
from server.review import ReviewConfig, ReviewLibrary
from tests.analysis._speech import ESPEAK, write_session

pytestmark = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")

OFFSET_MS = 8.0
SPOKEN = {0: (["dog", "person"], [900.0, 2100.0]), 1: (["chair"], [1200.0])}
BASE = "http://127.0.0.1:8766"


@pytest.fixture
def sessions(tmp_path):
    """A folder of sessions: one with spoken names two levels down, one without audio."""
    root = tmp_path / "sessions"
    write_session(root / "lab" / "P01", SPOKEN, offset_ms=OFFSET_MS)
    (root / "P02").mkdir(parents=True)
    (root / "P02" / "trials.jsonl").write_text(json.dumps({"trial": 0, "image": "1001", "mic_file": None}) + "\n")
    return root


def _client(roots, *, names: bool = False, **config) -> TestClient:
    library = ReviewLibrary(roots, names=names)
    return TestClient(create_review_app(ReviewConfig(roots=tuple(roots), **config), library), base_url=BASE)


def _session_key(client) -> str:
    (session,) = client.get("/api/review/sessions").raise_for_status().json()["sessions"]
    return session["key"]


def test_sessions_and_trials_are_listed(sessions):
    client = _client([sessions])
    listing = client.get("/api/review/sessions").raise_for_status().json()
    assert [(s["participant"], s["n_trials"], s["n_reviewed"]) for s in listing["sessions"]] == [("P01", 2, 0)]
    assert listing["voice_params"]["method"] == "silero"
    key = listing["sessions"][0]["key"]
    trials = client.get(f"/api/review/sessions/{key}/trials").raise_for_status().json()
    assert [(t["trial"], t["image"], t["reviewed"]) for t in trials["trials"]] == [
        (0, "1001", False),
        (1, "1002", False),
    ]
    assert client.get("/review").status_code == 200 and "review.js" in client.get("/review").text
    assert client.get("/", follow_redirects=False).headers["location"] == "/review"


def test_a_trial_has_its_waveform_utterances_and_names(sessions):
    client = _client([sessions], names=True)
    key = _session_key(client)
    detail = client.get(f"/api/review/sessions/{key}/trials/0").raise_for_status().json()
    assert (detail["image"], detail["offset_ms"], detail["aligned"]) == ("1001", OFFSET_MS, True)
    # Oracle: the words' first samples in the WAV, plus the WAV's recorded offset.
    onsets = [u["onset_ms"] for u in detail["automatic"]]
    np.testing.assert_allclose(onsets, [900.0 + OFFSET_MS, 2100.0 + OFFSET_MS], atol=30)
    assert [u["word"] for u in detail["automatic"]] == ["dog", "person"]
    assert detail["names"]["puppy"] == "dog" and detail["review"] is None
    # The envelope: min and max of each 2.5 ms column of the WAV (110.25 samples: 110 per column).
    samples, rate_hz = read_wav(sessions / "lab" / "P01" / "audio" / "trial000_1001.wav")
    envelope = detail["envelope"]
    assert envelope["bin_ms"] == pytest.approx(110 * 1000 / rate_hz)
    assert len(envelope["max"]) == int(np.ceil(samples.size / 110))
    column = samples[110 * 400 : 110 * 401]
    assert (envelope["min"][400], envelope["max"][400]) == pytest.approx((column.min(), column.max()), abs=1e-4)
    wav = client.get(f"/api/review/sessions/{key}/trials/0/audio.wav")
    assert wav.headers["content-type"] == "audio/wav"
    assert wav.content == (sessions / "lab" / "P01" / "audio" / "trial000_1001.wav").read_bytes()


def test_a_saved_review_is_appended_and_used_by_the_analysis(sessions, osie_stimuli):
    client = _client([sessions])
    key = _session_key(client)
    folder = sessions / "lab" / "P01"
    automatic = client.get(f"/api/review/sessions/{key}/trials/0").raise_for_status().json()["automatic"]
    corrected = [
        {"onset_ms": 2095.5, "offset_ms": 2600.0, "word": "man", "name_class": "person"},
        {"onset_ms": 880.0, "offset_ms": 1300.0, "word": "puppy", "name_class": "dog"},  # saved in time order
    ]
    saved = client.post(f"/api/review/sessions/{key}/trials/0", json={"utterances": corrected, "reviewer": "AB"})
    assert saved.status_code == 201, saved.text
    client.post(f"/api/review/sessions/{key}/trials/1", json={"utterances": []}).raise_for_status()  # no speech
    lines = (folder / CORRECTIONS_FILE).read_text().splitlines()
    assert len(lines) == 2  # appended, one line per save
    first = json.loads(lines[0])
    assert (first["trial"], first["image"], first["reviewer"]) == (0, "1001", "AB")  # the image from trials.jsonl
    assert first["automatic"]["onsets_ms"] == [u["onset_ms"] for u in automatic]
    reviews = read_corrections(folder)
    assert [u.onset_ms for u in reviews[0].utterances] == [880.0, 2095.5] and reviews[1].utterances == ()
    detail = client.get(f"/api/review/sessions/{key}/trials/0").json()
    assert [u["word"] for u in detail["review"]["utterances"]] == ["puppy", "man"]
    assert detail["automatic"] == automatic  # the automatic values are untouched
    trials = client.get(f"/api/review/sessions/{key}/trials").json()["trials"]
    assert [(t["reviewed"], t["n_utterances"]) for t in trials] == [(True, 2), (True, 0)]
    # The analysis reads the review in place of the automatic utterances of both trials.
    table, record = session_utterances(NamingParams(names=False), sessions / "lab", stimuli=osie_stimuli)
    assert table[["trial", "onset_ms", "word", "source"]].values.tolist() == [
        [0, 880.0, "puppy", "corrected"],
        [0, 2095.5, "man", "corrected"],
    ]
    assert record["corrections"][0]["trials_corrected"] == [0, 1]


def test_bad_requests_are_refused_and_nothing_is_written(sessions):
    client = _client([sessions])
    key = _session_key(client)
    corrections = sessions / "lab" / "P01" / CORRECTIONS_FILE
    backwards = {"utterances": [{"onset_ms": 900.0, "offset_ms": 800.0}]}
    response = client.post(f"/api/review/sessions/{key}/trials/0", json=backwards)
    assert response.status_code == 422 and "offset_ms" in response.text
    assert client.post(f"/api/review/sessions/{key}/trials/7", json={"utterances": []}).status_code == 404
    assert client.post("/api/review/sessions/0123456789abcdef/trials/0", json={"utterances": []}).status_code == 404
    infinite = {"utterances": [{"onset_ms": "Infinity", "offset_ms": 800.0}]}
    assert client.post(f"/api/review/sessions/{key}/trials/0", json=infinite).status_code == 422
    # A page of another site may post to a loopback server; its Origin gives it away.
    foreign = client.post(
        f"/api/review/sessions/{key}/trials/0", json={"utterances": []}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    assert client.get("/api/review/sessions", headers={"Host": "evil.example:8766"}).status_code == 400
    assert not corrections.exists()


def test_a_server_bound_elsewhere_needs_its_token(sessions):
    client = _client([sessions], bind="0.0.0.0", token="secret")
    assert client.get("/api/review/sessions").status_code == 401
    assert client.get("/api/review/sessions", headers={"Authorization": "Bearer secret"}).status_code == 200
    page = client.get("/review?token=secret")
    assert page.status_code == 200 and page.cookies.get("lookwhere_token") == "secret"


def test_lookwhere_review_serves_the_page_on_session_folders(sessions, tmp_path, capsys):
    import signal
    import subprocess
    import sys

    import httpx

    from lookwhere.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["review", str(tmp_path / "empty")]) == 2
    assert "no session with audio" in capsys.readouterr().err
    command = [sys.executable, "-m", "lookwhere", "review", str(sessions), "--http-port", "0", "--reviewer", "AB"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("review: http://127.0.0.1:") and line.rstrip().endswith("/review?reviewer=AB"), line
        base = line.split()[1].split("/review")[0]
        listing = httpx.get(f"{base}/api/review/sessions", timeout=30).raise_for_status().json()
        assert [s["participant"] for s in listing["sessions"]] == ["P01"]
        assert httpx.get(f"{base}/review", timeout=10).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
