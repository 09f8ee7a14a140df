"""The dashboard's quality panel in a real headless browser, fed over ZeroMQ by a sender as the
experiment's: a poor validation shows red, a good one green; the drift strip grows one bar per
trial and the alarm appears at the second offset above 1.0° in a row, not at the first.

Oracles: the records the test sends, the issue's default thresholds (0.5°/1.0° average error, drift
alarm above 1.0° twice in a row) and the server's quality section.
"""

from __future__ import annotations

import time

import pytest

from experiment.sender import Sender
from lookwhere.protocol import DriftCheck, SessionStart, TrialQualityRecord, Validation
from tests.server._serve import serve_process

WAIT_MS = 10_000
#: drift-check offsets of trials 0..3, degrees: above 1.0° from trial 1, so the alarm is on from trial 2
DRIFT_DEG = (0.6, 1.2, 1.8, 2.4)


def _deliver(sender: Sender, record):
    record = sender.send(record)
    deadline = time.monotonic() + 10.0
    while sender.acked_seq < record.seq:
        assert time.monotonic() < deadline, f"the server did not acknowledge {record.kind} seq {record.seq}"
        sender.service()
        time.sleep(0.005)


def _validation(eye: str, avg_deg: float, grade: str) -> Validation:
    return Validation(
        calibration=0,
        eye=eye,
        grade=grade,
        points=9,
        avg_error_deg=avg_deg,
        max_error_deg=avg_deg * 1.3,
        offset_deg=avg_deg / 3,
        offset_x_px=4.0,
        offset_y_px=-2.0,
        t_session_ms=1000.0,
    )


def _drift(trial: int) -> DriftCheck:
    return DriftCheck(
        trial=trial,
        eye="R",
        offset_x_px=DRIFT_DEG[trial] * 44.2,
        offset_y_px=0.0,
        offset_deg=DRIFT_DEG[trial],
        outcome="accepted",
        attempts=1,
        t_session_ms=2000.0 + 1000.0 * trial,
    )


@pytest.mark.timeout(120)
def test_quality_panel_colours_validations_and_sounds_the_drift_alarm(browser, osie_stimuli, tmp_path, artifacts):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    testid = page.get_by_test_id
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    with serve_process(osie_stimuli, tmp_path / "data") as server:
        page.goto(server["url"])
        expect(testid("connection")).to_have_attribute("data-state", "live")
        sender = Sender(server["zmq_endpoint"], tmp_path / "rig.msgpack", heartbeat_interval_s=0.2)
        _deliver(
            sender,
            SessionStart(
                participant="P07",
                tracker="simulated",
                n_trials=4,
                screen_width_px=1920,
                screen_height_px=1080,
                wall_time_s=time.time(),
                screen_width_cm=53.1,
                viewing_distance_cm=70.0,
                viewing_default=True,
            ),
        )
        expect(testid("quality-viewing")).to_contain_text("lab defaults")
        expect(testid("validations")).to_contain_text("no validation yet")
        _deliver(sender, _validation("R", 1.4, "POOR"))
        _deliver(sender, _validation("L", 0.3, "GOOD"))
        expect(testid("validation-R")).to_have_attribute("data-level", "poor")
        expect(testid("validation-R")).to_contain_text("1.40° avg")
        expect(testid("validation-L")).to_have_attribute("data-level", "good")
        colours = page.evaluate(
            "() => ['L', 'R'].map(eye => getComputedStyle("
            "document.querySelector(`[data-testid=validation-${eye}]`)).backgroundColor)"
        )
        assert colours[0] != colours[1]  # green and red, not one style

        for trial in range(len(DRIFT_DEG)):
            _deliver(sender, _drift(trial))
            expect(testid("drift-strip-bar")).to_have_count(trial + 1)
            if trial < 2:  # 0.6°, then 1.2°: one offset above the threshold is no alarm yet
                expect(testid("drift-alarm")).to_be_hidden()
        expect(testid("drift-alarm")).to_be_visible()
        expect(testid("drift-alarm")).to_contain_text("DRIFT ALARM")
        expect(testid("drift-alarm")).to_contain_text("trials 3, 4")
        expect(testid("drift-last")).to_contain_text("2.40°")

        _deliver(sender, TrialQualityRecord(trial=2, samples=1250, track_loss=0.4, blinks=1, mean_pupil=900.0))
        expect(testid("track-loss-strip-bar")).to_have_count(1)
        expect(testid("track-loss-last")).to_contain_text("40 % lost, 1 blink")
        screenshot = artifacts / "dashboard-quality-alarm.png"
        page.screenshot(path=screenshot, full_page=True)
        print(f"screenshot: {screenshot}")
        sender.close()
    assert script_errors == []
