"""The per-trial WAVs of a real simulated session whose virtual microphone hears spoken names.

``lookwhere run`` runs in a PsychoPy window under Xvfb with the simulated tracker; ALSA's
default capture device is the virtual microphone of ``tests/_virtual_mic.py``, playing a looped
tape in real time: espeak-ng words over a room tone of uniform integer noise of ±10 LSB (-75 dBFS
RMS, as a real microphone is never digitally silent; the experiment's preflight refuses one that is).

Oracle: each word's first sample above twice the room tone's peak in the trial's WAV (the words
cross it within 0.07 ms of their first non-zero sample), plus the WAV's recorded offset from
``trials.jsonl``. The tape's wall-clock schedule cannot be the oracle: the virtual microphone
skips whole periods when its player is late. Only the WAV's own content says when a word was
recorded, and only whole-length runs of sound count as words, since a trial's start or end, or a
skip, can cut one.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from analysis.voice.recordings import audio_trials, detect_trials, read_wav
from lookwhere.cli import main
from tests._virtual_mic import VirtualMic
from tests.analysis._speech import ESPEAK, RATE_HZ, synthesize
from tests.conftest import SHARED_DATA
from tests.experiment.conftest import run_session

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)"),
]

TAPE_S = 4.0
# ms into each loop of the tape
TAPE_WORDS = (["motorbike", "chair", "horse", "dog"], [50.0, 1250.0, 2250.0, 3250.0])
DURATION_MS = 2500
TOLERANCE_MS = 20  # the target for the median error
ROOM_TONE_LSB = 10
SOUND_ABOVE = 2 * ROOM_TONE_LSB / 32768  # the oracle's threshold, full scale


@pytest.fixture(scope="module")
def speaking_session(tmp_path_factory):
    """A finished 4-trial session recorded while the tape played; yields its folder and stimulus folder."""
    from experiment.xvfb import start_xvfb

    tmp_path = tmp_path_factory.mktemp("speaking")
    stimuli = SHARED_DATA / "osie" / "stimuli"
    if not stimuli.is_dir():
        pytest.skip(f"real data folder {stimuli} is absent")
    try:
        display = start_xvfb()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    images = tmp_path / "stimuli"
    images.mkdir()
    for name in ("1001.jpg", "1002.jpg", "1003.jpg", "1004.jpg"):
        (images / name).symlink_to(stimuli / name)
    noise = np.random.default_rng(0).integers(-ROOM_TONE_LSB, ROOM_TONE_LSB + 1, int(TAPE_S * RATE_HZ))
    tape = noise / 32767
    for word, onset_ms in zip(*TAPE_WORDS):
        spoken = synthesize(word)
        start = int(onset_ms * RATE_HZ / 1000)
        tape[start : start + spoken.size] += spoken
    (tmp_path / "mic").mkdir()
    try:
        with VirtualMic(tmp_path / "mic", tape, RATE_HZ) as alsa:
            env = {**os.environ, "DISPLAY": display.display, **alsa}
            result = run_session(
                env,
                *("--participant", "P01", "--stimuli", str(images), "--tracker", "simulated"),
                *("--out", str(tmp_path / "sessions"), "--trials", "4", "--seed", "2"),
                *("--duration-ms", str(DURATION_MS), "--auto-accept-drift-ms", "150", "--windowed"),
                timeout_s=120,
            )
            assert result.returncode == 0, result.stderr[-3000:]
            yield tmp_path / "sessions" / "P01", images
    finally:
        display.close()


def _word_onsets_ms(samples: np.ndarray, rate_hz: int) -> tuple[list[float], list[float]]:
    """Starts and ends (ms into the WAV) of the runs of sound above the room tone, joined across < 100 ms."""
    sound = np.flatnonzero(np.abs(samples) > SOUND_ABOVE)
    if not sound.size:
        return [], []
    breaks = np.flatnonzero(np.diff(sound) > rate_hz // 10)
    starts, ends = sound[np.r_[0, breaks + 1]], sound[np.r_[breaks, sound.size - 1]]
    return list(starts * 1000 / rate_hz), list(ends * 1000 / rate_hz)


def test_utterances_are_found_at_their_image_relative_times(speaking_session):
    folder, _ = speaking_session
    rows = {row["trial"]: row for row in map(json.loads, (folder / "trials.jsonl").read_text().splitlines())}
    table = detect_trials(audio_trials([folder]))
    errors_ms, heard = [], {}
    for trial, row in rows.items():
        samples, rate_hz = read_wav(folder / row["mic_file"])
        starts, ends = _word_onsets_ms(samples, rate_hz)
        heard[trial] = (np.sum(np.abs(samples) > SOUND_ABOVE), samples.size, np.round(starts), np.round(ends))
        duration_ms = samples.size * 1000 / rate_hz
        found = table.loc[table["trial"] == trial, "onset_ms"].to_numpy()
        # Words wholly inside the WAV, in image-relative time. The microphone's jumps can leave a
        # fragment of a word, or glue two fragments: only runs of a whole word's length count.
        for start, end in zip(starts, ends):
            if start > 50 and end < duration_ms - 50 and end - start >= 300:
                onset_ms = start + row["mic_offset_ms"]
                errors_ms.append(np.min(np.abs(found - onset_ms)) if found.size else np.inf)
        # Nothing is invented in the silence: every utterance starts within a run of sound (where
        # the microphone's jumps glued two words together, the second one's onset is inside a run).
        runs = [
            (start + row["mic_offset_ms"] - TOLERANCE_MS, end + row["mic_offset_ms"])
            for start, end in zip(starts, ends)
        ]
        for onset_ms in found:
            assert any(lo <= onset_ms <= hi for lo, hi in runs), (trial, onset_ms, runs)
    errors = np.array(errors_ms)
    print("onset errors (ms):", np.round(errors, 1))
    assert errors.size >= 2, f"whole words per trial: (samples above the room tone, samples, run starts, ends) {heard}"
    assert np.median(errors) <= 10 and np.mean(errors <= TOLERANCE_MS) >= 0.75, errors
    assert table["aligned"].all() and (table["participant"] == "P01").all()


def test_the_session_report_has_naming_and_time_course(speaking_session, tmp_path):
    folder, images = speaking_session
    out = tmp_path / "report"
    assert (
        main(
            [
                "analyze",
                "--dataset",
                "session",
                "--fixations",
                str(folder.parent),
                "--stimuli",
                str(images),
                "--out",
                str(out),
                "--bootstrap",
                "100",
                "--max-fixation-index",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    utterances = pd.read_csv(out / "utterances.csv")
    assert len(utterances) >= 3 and set(utterances["source"]) == {"automatic"}
    # Names come from the grammar of every class (OSIE has no classes); the decoder may find none.
    assert utterances["word"].notna().any()
    naming = pd.read_csv(out / "naming.csv")
    assert (naming["n_fixations"] > 0).any() and len(pd.read_csv(out / "naming_scores.csv")) > 0
    report = (out / "report.html").read_text()
    for figure in ("naming_latency", "naming_scores", "timecourse_time", "timecourse_index", "first_fixation_latency"):
        assert f'alt="{figure}.png"' in report
