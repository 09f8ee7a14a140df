"""The experimenter's notes in a real headless browser against ``lookwhere serve`` (with a token, so
the page's POSTs must carry its cookie), fed over ZeroMQ by the experiment's stream: a note typed in
the box, a hotkey and a preset button each land as a line of the session's ``notes.jsonl`` on the
server and, sent back over the stream, in the experiment's session folder; the page lists them;
"keep" undoes an exclusion.

Oracles: the records the test sends (session id, trials and their images) and what it types.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from experiment.stream import StreamSink, open_stream
from lookwhere.notes import NOTES_FILE, read_notes, server_notes_path
from lookwhere.protocol import SessionStart, TrialEnd, TrialStart
from stimuli.geometry import DisplayGeometry
from tests.server._serve import serve_process

WAIT_MS = 10_000
TOKEN = "notes-token"
IMAGES = ("1001", "1002")


def _deliver(sink: StreamSink, record):
    record = sink.sender.send(record)
    deadline = time.monotonic() + 10.0
    while sink.sender.acked_seq < record.seq:
        assert time.monotonic() < deadline, f"the server did not acknowledge {record.kind} seq {record.seq}"
        sink.service()
        time.sleep(0.005)
    return record


def _trial_start(trial: int) -> TrialStart:
    geometry = DisplayGeometry.fit(800, 600)
    return TrialStart(
        trial=trial,
        image=IMAGES[trial],
        onset_tracker_ms=1000.0 + 3000.0 * trial,
        onset_session_ms=1000.0 + 3000.0 * trial,
        stimulus_duration_ms=2000.0,
        **geometry.to_dict(),
    )


@pytest.mark.timeout(120)
def test_notes_typed_and_hot_keyed_on_the_page_land_in_notes_jsonl(browser, osie_stimuli, tmp_path, artifacts):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    data = tmp_path / "data"
    page = browser.new_page(viewport={"width": 1600, "height": 1100})
    testid = page.get_by_test_id
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    with serve_process(osie_stimuli, data, "--token", TOKEN) as server:
        base = server["url"].split("?")[0].rstrip("/")
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=base, timeout=10.0) as api:
            assert api.post("/api/notes", json={"kind": "participant_moved"}).status_code == 401
            before = api.post("/api/notes", json={"kind": "participant_moved"}, headers=bearer)
            assert before.status_code == 409 and "no session" in before.json()["detail"]

            page.goto(server["url"])
            expect(testid("connection")).to_have_attribute("data-state", "live")
            folder = tmp_path / "sessions" / "P07"  # the experiment's session folder
            sender = open_stream(server["zmq_endpoint"], folder, session=str(uuid.uuid4()))
            start = SessionStart(
                participant="P07",
                tracker="simulated",
                n_trials=2,
                screen_width_px=1920,
                screen_height_px=1080,
                wall_time_s=time.time(),
            )
            session = _deliver(sender, start).session
            _deliver(sender, _trial_start(0))
            _deliver(
                sender,
                TrialEnd(
                    trial=0,
                    image=IMAGES[0],
                    offset_tracker_ms=3000.0,
                    offset_session_ms=3000.0,
                    n_fixations=0,
                    dropped_frames=0,
                    aborted=False,
                ),
            )
            _deliver(sender, _trial_start(1))
            expect(testid("trial")).to_have_text("2 / 2")
            expect(testid("note-trial")).to_have_value("2")  # follows the live trial

            # typed: Enter saves it for the live trial
            testid("note-text").fill("participant yawned")
            testid("note-text").press("Enter")
            expect(testid("note")).to_have_count(1)
            expect(testid("note").first).to_contain_text("trial 2")
            expect(testid("note").first).to_contain_text("participant yawned")
            expect(testid("note-text")).to_have_value("")
            # a hotkey, pressed outside the box (Esc leaves it)
            testid("note-text").press("Escape")
            page.keyboard.press("m")
            expect(testid("note")).to_have_count(2)
            expect(testid("note").first).to_contain_text("participant moved")
            # the preset button for an earlier trial, with a reason typed
            testid("note-trial").fill("1")
            testid("note-text").fill("looked away")
            testid("note-exclude_trial").click()
            expect(testid("note")).to_have_count(3)
            expect(testid("notes-excluded")).to_have_text("excluded: trial 1")
            expect(testid("note-status")).to_contain_text("exclude trial, trial 1")
            page.screenshot(path=artifacts / "dashboard-notes.png", full_page=True)

            notes = read_notes(server_notes_path(data, session))
            assert [(n.kind, n.trial, n.image, n.text) for n in notes] == [
                ("text", 1, "1002", "participant yawned"),
                ("participant_moved", 1, "1002", ""),
                ("exclude_trial", 0, "1001", "looked away"),
            ]
            assert {(n.session, n.participant) for n in notes} == {(session, "P07")}
            stamps = [n.unix_s for n in notes]
            assert stamps == sorted(stamps) and time.time() - 60 < stamps[0] <= time.time()
            lines = server_notes_path(data, session).read_text().splitlines()
            assert json.loads(lines[2])["kind"] == "exclude_trial"  # one JSON object per line

            # "keep" undoes the exclusion with a note of its own; the file only grows
            testid("note-undo").click()
            expect(testid("note")).to_have_count(4)
            expect(testid("notes-excluded")).to_have_text("")
            assert read_notes(server_notes_path(data, session))[-1].kind == "keep_trial"

            # the API: the same notes; a trial not started and a foreign page are refused
            listed = api.get("/api/notes", headers=bearer).json()
            assert (listed["session"], len(listed["notes"]), listed["excluded_trials"]) == (session, 4, [])
            late = api.post("/api/notes", json={"kind": "exclude_trial", "trial": 5}, headers=bearer)
            assert late.status_code == 422 and "has not started" in late.json()["detail"]
            foreign = api.post(
                "/api/notes", json={"kind": "text", "text": "x"}, headers={**bearer, "Origin": "http://evil.example"}
            )
            assert foreign.status_code == 403
            assert len(read_notes(server_notes_path(data, session))) == 4
            # the experiment's heartbeats asked for them: the same notes in its session folder
            deadline = time.monotonic() + 10.0
            while len(read_notes(folder / NOTES_FILE)) < 4:
                assert time.monotonic() < deadline, "the notes did not reach the session folder"
                sender.service()
                sender.flush()  # between trials
                time.sleep(0.01)
            assert (folder / NOTES_FILE).read_text() == server_notes_path(data, session).read_text()
            sender.close()
    assert script_errors == []
