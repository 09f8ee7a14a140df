"""The per-trial WAVs of a real simulated session whose virtual microphone hears spoken names.

``lookwhere run`` runs in a PsychoPy window under Xvfb with the simulated tracker; ALSA's
default capture device reads a named pipe (as ``tests/experiment/conftest.py`` sets it up) into
which a thread plays, in real time, a looped tape of espeak-ng words in digital silence.

Oracle: each word's first non-zero sample in the trial's WAV (16-bit silence is exactly 0), plus
the WAV's recorded offset from ``trials.jsonl``. Neither the tape's wall-clock schedule nor its
samples can be the oracle: this virtual microphone is not a faithful device. ALSA's ``file`` plugin
over the unpaced ``null`` PCM asks for ~48,500 frames a second from a pipe fed at 44,100 and fills
what the pipe lacks with zeros (measured: 145,540 frames captured in 3 s, a ramp interrupted 1,858
times), so the recorded words are stretched and now and then cut; no overrun is reported. Only the
WAV's own content says when a word was recorded, and only whole-length runs of sound count as words."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.voice.recordings import audio_trials, detect_trials, read_wav
from lookwhere.cli import main
from tests.analysis._speech import ESPEAK, RATE_HZ, synthesize
from tests.conftest import SHARED_DATA

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)"),
]

REPO = Path(__file__).resolve().parents[2]
TAPE_S = 4.0
# ms into each loop of the tape; the first word is long and early: the experiment's preflight checks
# that the microphone is not silent 0.3 s after it starts.
TAPE_WORDS = (["motorbike", "chair", "horse", "dog"], [50.0, 1250.0, 2250.0, 3250.0])
DURATION_MS = 2500
TOLERANCE_MS = 20  # the target for the median error
PACE = 1.25  # the tape player's speed over real time (the pipe holds 2 s)


class _TapePlayer(threading.Thread):
    """Plays the tape into a named pipe at real-time pace, from its start for each new reader."""

    def __init__(self, fifo: Path, tape: np.ndarray) -> None:
        super().__init__(daemon=True)
        self.fifo, self.stopped = fifo, threading.Event()
        self.tape = (np.clip(tape, -1, 1) * 32767).astype("<i2").tobytes()

    def run(self) -> None:
        chunk = RATE_HZ // 100 * 2  # 10 ms of S16 mono
        while not self.stopped.is_set():
            fd = os.open(self.fifo, os.O_WRONLY)  # blocks until a reader opens the pipe
            started, written = time.monotonic(), 0
            try:
                while not self.stopped.is_set():
                    offset = (written * chunk) % len(self.tape)
                    os.write(fd, self.tape[offset : offset + chunk])
                    written += 1
                    # faster than real time (the write blocks while the pipe is full): ALSA's file
                    # plugin reads ~8 % faster than real time and, finding the pipe empty, repeats
                    # stale fragments, clicks in the silences that hid the words from the oracle
                    time.sleep(max(0.0, started + written * 0.01 / PACE - time.monotonic()))
            except BrokenPipeError:
                pass
            finally:
                os.close(fd)

    def stop(self) -> None:
        self.stopped.set()
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        time.sleep(0.05)
        os.close(fd)
        self.join(timeout=5)


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
    fifo = tmp_path / "mic.pipe"
    os.mkfifo(fifo)
    (tmp_path / "asound.conf").write_text(f"""
pcm.!default {{ type asym; playback.pcm "null"; capture.pcm "lookwhere_mic" }}
pcm.lookwhere_mic {{ type plug; slave {{ pcm "lookwhere_mic_file"; format S16_LE; rate {RATE_HZ}; channels 1 }} }}
pcm.lookwhere_mic_file {{ type file; slave.pcm "null"; file "/dev/null"; infile "{fifo}"; format "raw" }}
""")
    tape = np.zeros(int(TAPE_S * RATE_HZ))  # digital silence between the words: no dither
    for word, onset_ms in zip(*TAPE_WORDS):
        spoken = synthesize(word)
        start = int(onset_ms * RATE_HZ / 1000)
        tape[start : start + spoken.size] = spoken
    player = _TapePlayer(fifo, tape)
    player.start()
    env = {
        **os.environ,
        "DISPLAY": display.display,
        "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{tmp_path / 'asound.conf'}",
    }
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "lookwhere",
                "run",
                "--participant",
                "P01",
                "--stimuli",
                str(images),
                "--tracker",
                "simulated",
                "--out",
                str(tmp_path / "sessions"),
                "--trials",
                "4",
                "--seed",
                "2",
                "--duration-ms",
                str(DURATION_MS),
                "--auto-accept-drift-ms",
                "150",
                "--windowed",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        yield tmp_path / "sessions" / "P01", images
    finally:
        player.stop()
        display.close()


def _word_onsets_ms(samples: np.ndarray, rate_hz: int) -> tuple[list[float], list[float]]:
    """Starts and ends (ms into the WAV) of the runs of non-zero samples, joined across < 100 ms of zeros."""
    sound = np.flatnonzero(samples)
    if not sound.size:
        return [], []
    breaks = np.flatnonzero(np.diff(sound) > rate_hz // 10)
    starts, ends = sound[np.r_[0, breaks + 1]], sound[np.r_[breaks, sound.size - 1]]
    return list(starts * 1000 / rate_hz), list(ends * 1000 / rate_hz)


def test_utterances_are_found_at_their_image_relative_times(speaking_session):
    folder, _ = speaking_session
    rows = {row["trial"]: row for row in map(json.loads, (folder / "trials.jsonl").read_text().splitlines())}
    table = detect_trials(audio_trials([folder]))
    errors_ms = []
    for trial, row in rows.items():
        samples, rate_hz = read_wav(folder / row["mic_file"])
        starts, ends = _word_onsets_ms(samples, rate_hz)
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
    assert errors.size >= 2
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
