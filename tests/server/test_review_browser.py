"""The review page in a real headless browser, served by ``lookwhere serve --sessions``: drag an
onset mark, name the utterance, save; the corrections file holds the dragged onset and
``lookwhere analyze --dataset session`` uses it.

Oracles: the pointer's position on the waveform (the time under it, from the trial's recorded span
and the waveform's box on the page), the corrections file as written, and the analysis's
``utterances.csv`` and ``params.json``.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.readers import read_osie
from analysis.voice.corrections import CORRECTIONS_FILE
from lookwhere.cli import main
from lookwhere.records import SESSION_FIXATIONS_FILE
from tests.analysis._speech import ESPEAK, write_session
from tests.server._serve import serve_process

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)"),
]

WAIT_MS = 20_000
DRAG_PX = 40


@pytest.fixture
def session(tmp_path, osie_fixations_path):
    """One participant's session: two trials with spoken names, OSIE observer s01's fixations."""
    folder = write_session(
        tmp_path / "sessions" / "P01", {0: (["dog", "person"], [900.0, 2100.0]), 1: (["chair"], [1200.0])}
    )
    fixations = read_osie(osie_fixations_path, images=["1001", "1002"])
    fixations = fixations[fixations["participant"] == "s01"]
    end = fixations.groupby("image")["duration_ms"].cumsum()  # one trial each: consecutive from the onset
    fixations = fixations.assign(
        participant="P01",
        session="s-1",
        start_ms=end - fixations["duration_ms"],
        end_ms=end,
        stimulus_duration_ms=3000.0,
        trial=fixations["image"].astype(int) - 1001,
    )
    fixations.to_csv(folder / SESSION_FIXATIONS_FILE, index=False, na_rep="nan")
    return folder


@pytest.mark.timeout(240)
def test_a_dragged_onset_is_saved_and_analysed(browser, osie_stimuli, session, tmp_path, artifacts):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    testid = page.get_by_test_id
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    with serve_process(osie_stimuli, tmp_path / "data", "--sessions", str(session.parent)) as server:
        page.goto(server["url"] + "review?reviewer=AB")
        expect(testid("trial-item")).to_have_count(2)
        expect(testid("trial-state")).to_have_attribute("data-state", "automatic")
        expect(testid("mark-onset")).to_have_count(2)
        expect(testid("auto-span")).to_have_count(2)
        onset = testid("mark-onset").first
        automatic_ms = float(onset.get_attribute("data-ms"))
        assert abs(automatic_ms - 908.0) < 30  # the word's onset plus the WAV's 8 ms offset

        # Drag the first onset 40 px to the left; the oracle is the time under the pointer.
        box, wave = onset.bounding_box(), testid("wave").bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x - DRAG_PX, y, steps=8)
        page.mouse.up()
        start_ms, duration_ms = 8.0, 3000.0
        expected_ms = round(start_ms + (x - DRAG_PX - wave["x"]) / wave["width"] * duration_ms, 1)
        dragged_ms = float(onset.get_attribute("data-ms"))
        assert dragged_ms == pytest.approx(expected_ms, abs=0.11)
        assert dragged_ms < automatic_ms - 20
        expect(testid("onset").first).to_have_value(str(dragged_ms).removesuffix(".0"))
        expect(testid("trial-state")).to_have_attribute("data-state", "unsaved")

        testid("word").first.fill("puppy")
        testid("word").first.dispatch_event("change")
        expect(testid("class").first).to_have_value("dog")  # the synonyms file's class of the name
        testid("save").click()
        expect(testid("trial-state")).to_have_attribute("data-state", "reviewed")
        expect(testid("trial-item").first).to_have_attribute("data-status", "reviewed")
        page.screenshot(path=artifacts / "review-saved.png", full_page=True)

        # The recording plays in the browser: decoded at its length; an utterance plays from just before it.
        page.wait_for_function("() => document.querySelector('[data-testid=audio]').duration > 2.9")
        testid("play-utterance").first.click()
        position_s = page.evaluate("() => document.querySelector('[data-testid=audio]').currentTime")
        assert (dragged_ms - 150 - start_ms) / 1000 - 0.01 <= position_s <= (dragged_ms - start_ms) / 1000
        testid("stop").click()

        # Reloaded, the page shows the saved review.
        page.reload()
        expect(testid("trial-state")).to_have_attribute("data-state", "reviewed")
        expect(testid("mark-onset").first).to_have_attribute("data-ms", str(dragged_ms).removesuffix(".0"))
    assert not script_errors, script_errors

    (line,) = (session / CORRECTIONS_FILE).read_text().splitlines()
    review = json.loads(line)
    assert (review["trial"], review["image"], review["reviewer"]) == (0, "1001", "AB")
    first = review["utterances"][0]
    assert (first["onset_ms"], first["word"], first["name_class"]) == (dragged_ms, "puppy", "dog")
    assert review["automatic"]["onsets_ms"][0] == automatic_ms

    out = tmp_path / "report"
    arguments = ["analyze", "--dataset", "session", "--fixations", str(session.parent), "--stimuli", str(osie_stimuli)]
    assert (
        main([*arguments, "--out", str(out), "--bootstrap", "100", "--max-fixation-index", "2", "--no-progress"]) == 0
    )
    utterances = pd.read_csv(out / "utterances.csv")
    trial = utterances[utterances["trial"] == 0]
    assert trial["source"].tolist() == ["corrected", "corrected"]
    assert trial["onset_ms"].iloc[0] == dragged_ms and trial["word"].iloc[0] == "puppy"
    assert set(utterances.loc[utterances["trial"] == 1, "source"]) == {"automatic"}
    params = json.loads((out / "params.json").read_text())
    assert params["naming"]["corrections"][0]["trials_corrected"] == [0]
    assert params["naming"]["utterances_by_source"] == {"corrected": 2, "automatic": 1}
