"""Benchmark the live voice strip: how long after a name is spoken its tick shows, and what it costs.

    .venv/bin/python bench/bench_live_voice.py [--trials 8] [--seed 0]

A real ``lookwhere serve`` process (OSIE's photographs as stimuli, or generated images when
../shared/data is absent; no map store), an experiment-side :class:`experiment.sender.Sender`
streaming sessions of synthetic naming trials (``tests/analysis/_speech.py``: 5 s at 44.1 kHz, 1–3
espeak-ng words each at known onsets, cycling through the noise conditions) as ``lookwhere run``
does: ``trial_start``, then the recording in ``mic_audio`` records of 100 ms, each sent as soon as
its last sample was "captured" (sample 0 at the trial's start; a real microphone adds its input
latency, ~10–40 ms, and the frame loop up to one frame, 17 ms), then ``trial_end`` and 1 s before the
next trial; and a WebSocket client in the same process (one clock).

Per word found (the truth: each word's first non-zero sample):

``audio``            ``detected_ms − onset_ms``: how much speech the detector needed (Silero's lag,
                     100 ms of speech frames, 30 ms of voicing) — in audio time;
``→ server``         from the onset's capture to the server's detection (``server_time_s``): the
                     audio's wait for its record (≤ 100 ms), the transport, the queue, the detector;
``→ dashboard``      from the onset's capture to the WebSocket message holding the tick (the
                     page draws it in the next frame);

and the onset error against the truth and against the offline detector on the same recording.
Costs: the experiment's per-record work in the frame loop (``pcm16`` + ``Sender.send``: one record
every ~6 frames at 60 Hz), its CPU time alone and its wall time during the run (beside the server
on the same cores, so with whatever preempts it), and the
server's detector CPU per second of audio (in process, ``time.process_time``). Target (issue 14):
the tick within a second of speech.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.voice.detect import detect_utterances  # noqa: E402
from analysis.voice.live import LiveDetector  # noqa: E402
from experiment.microphone import pcm16  # noqa: E402
from experiment.sender import Sender  # noqa: E402
from lookwhere.protocol import MicAudio, SessionEnd, SessionStart, TrialEnd, TrialStart  # noqa: E402
from server.process import start_server, stop_server  # noqa: E402
from stimuli.geometry import DisplayGeometry  # noqa: E402
from stimuli.sets import StimulusSet  # noqa: E402
from tests.analysis._speech import RATE_HZ, naming_trials  # noqa: E402

OSIE = ROOT.parent / "shared" / "data" / "osie" / "stimuli"
CHUNK_S = 0.1  # experiment.presentation.MIC_AUDIO_INTERVAL_S
BETWEEN_TRIALS_S = 1.0


class _Client(threading.Thread):
    """Receives the dashboard feed; stamps when each (trial, onset) tick first arrives."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        from websockets.sync.client import connect

        self.socket = connect(url.replace("http://", "ws://").split("?")[0] + "ws", max_size=None)
        self.ticks: dict[tuple[int, float], tuple[float, dict]] = {}  # → (arrival unix s, the tick)

    def run(self) -> None:
        try:
            for text in self.socket:
                now = time.time()
                voice = json.loads(text)["sections"].get("voice")
                for tick in (voice or {}).get("utterances", []):
                    self.ticks.setdefault((voice["trial"], tick["onset_ms"]), (now, tick))
        except Exception:  # the socket closes at the end of the run
            pass


def _stimuli(folder: Path) -> StimulusSet:
    folder.mkdir()
    if OSIE.is_dir():
        for path in sorted(OSIE.glob("*.jpg"))[:4]:
            (folder / path.name).symlink_to(path)
        return StimulusSet(folder)
    from PIL import Image

    for index in range(4):
        Image.fromarray(np.full((600, 800, 3), 128, np.uint8)).save(folder / f"{1001 + index}.png")
    return StimulusSet(folder)


def _service_until(sender: Sender, until_s: float) -> None:
    while time.time() < until_s:
        sender.service()
        time.sleep(0.002)


def stream_session(endpoint: str, journal: Path, stimuli: StimulusSet, trials) -> tuple[list[float], list[float]]:
    """Stream the trials in real time; return each trial's start (unix s: its sample 0 captured)
    and the per-record cost of the experiment's side (µs)."""
    sender = Sender(endpoint, journal, session=str(uuid.uuid4()), heartbeat_interval_s=1.0)
    sender.send(
        SessionStart(
            participant="bench",
            tracker="simulated",
            n_trials=len(trials),
            screen_width_px=1920,
            screen_height_px=1080,
            wall_time_s=time.time(),
        )
    )
    starts, costs_us = [], []
    chunk = int(RATE_HZ * CHUNK_S)
    for number, trial in enumerate(trials):
        image = stimuli.image_ids[number % len(stimuli.image_ids)]
        geometry = DisplayGeometry.fit(*stimuli.size(image))
        _service_until(sender, time.time() + BETWEEN_TRIALS_S)
        start_s = time.time()
        sender.send(
            TrialStart(
                trial=number,
                image=image,
                onset_tracker_ms=start_s * 1000,
                onset_session_ms=0.0,
                stimulus_duration_ms=5000.0,
                **geometry.to_dict(),
            )
        )
        starts.append(start_s)
        for index, first in enumerate(range(0, trial.samples.size, chunk)):
            _service_until(sender, start_s + (index + 1) * CHUNK_S)
            began = time.perf_counter()
            sender.send(
                MicAudio(
                    trial=number,
                    mic_offset_ms=0.0,
                    first_sample=first,
                    rate_hz=RATE_HZ,
                    pcm=pcm16(trial.samples[first : first + chunk]),
                )
            )
            costs_us.append((time.perf_counter() - began) * 1e6)
        sender.send(
            TrialEnd(
                trial=number,
                image=image,
                offset_tracker_ms=time.time() * 1000,
                offset_session_ms=(time.time() - start_s) * 1000,
                n_fixations=0,
                dropped_frames=0,
                aborted=False,
            )
        )
    sender.send(SessionEnd(reason="completed", n_trials=len(trials), t_session_ms=0.0))
    sender.drain(10.0)
    sender.close()
    return starts, costs_us


def record_cost_us(trial, journal: Path, n: int = 1000) -> np.ndarray:
    """The experiment's per-record work (``pcm16`` + ``Sender.send``) alone, to an absent server:
    its CPU time (``time.thread_time``; on a shared machine the wall time adds whatever else runs)."""
    logging.getLogger("experiment.sender").setLevel(logging.ERROR)  # "closed with records unacknowledged": meant
    sender = Sender("tcp://127.0.0.1:9", journal, heartbeat_interval_s=None)  # nothing listens: sends pend
    chunk = trial.samples[: int(RATE_HZ * CHUNK_S)]
    costs = []
    for number in range(n):
        began = time.thread_time()
        sender.send(
            MicAudio(trial=0, mic_offset_ms=0.0, first_sample=number * chunk.size, rate_hz=RATE_HZ, pcm=pcm16(chunk))
        )
        costs.append((time.thread_time() - began) * 1e6)
    sender.close()
    return np.array(costs)


def _row(name: str, values, unit: str = "ms") -> str:
    values = np.asarray(values, float)
    return (
        f"{name:<28} {np.median(values):>8.1f} {np.percentile(values, 95):>8.1f} {values.max():>8.1f}  {unit}"
        f"  (n = {values.size})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8, help="5 s naming trials streamed in real time (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of words, onsets, voices and noise")
    args = parser.parse_args(argv)
    trials = naming_trials(args.trials, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stimuli = _stimuli(folder / "stimuli")
        process, info = start_server(folder / "stimuli", folder / "data", "--http-port", "0", "--zmq-port", "0")
        try:
            client = _Client(info["url"])
            client.start()
            starts, costs_us = stream_session(info["zmq_endpoint"], folder / "rig.msgpack", stimuli, trials)
            time.sleep(1.0)
            client.socket.close()
        finally:
            stop_server(process)
        alone_us = record_cost_us(trials[0], folder / "alone.msgpack")

    audio_ms, server_ms, dashboard_ms, errors_ms, to_offline_ms, missed, invented = [], [], [], [], [], 0, 0
    for number, (trial, start_s) in enumerate(zip(trials, starts)):
        found = sorted((onset, arrival, tick) for (t, onset), (arrival, tick) in client.ticks.items() if t == number)
        onsets = np.array([onset for onset, _, _ in found])
        offline = np.array([u.onset_ms for u in detect_utterances(trial.samples, RATE_HZ)])
        matched = set()
        for true_ms in trial.onsets_ms:
            nearest = int(np.argmin(np.abs(onsets - true_ms))) if onsets.size else -1
            if nearest < 0 or abs(onsets[nearest] - true_ms) > 300:
                missed += 1
                continue
            matched.add(nearest)
            onset_ms, arrival_s, tick = found[nearest]
            captured_s = start_s + true_ms / 1000
            audio_ms.append(tick["detected_ms"] - onset_ms)
            server_ms.append((tick["server_time_s"] - captured_s) * 1000)
            dashboard_ms.append((arrival_s - captured_s) * 1000)
            errors_ms.append(abs(onset_ms - true_ms))
            to_offline_ms.append(np.min(np.abs(offline - onset_ms)) if offline.size else np.nan)
        invented += len(found) - len(matched)

    cpu_s = audio_s = 0.0
    for trial in trials:
        detector = LiveDetector(RATE_HZ)
        started = time.process_time()
        for first in range(0, trial.samples.size, int(RATE_HZ * CHUNK_S)):
            detector.push(trial.samples[first : first + int(RATE_HZ * CHUNK_S)])
        cpu_s += time.process_time() - started
        audio_s += trial.samples.size / RATE_HZ

    n_words = sum(len(t.onsets_ms) for t in trials)
    print(f"{len(trials)} trials, {n_words} words streamed in real time in 100 ms mic_audio records (44.1 kHz)")
    print(f"found {n_words - missed}/{n_words} (within 300 ms), invented {invented}")
    print()
    print(f"{'':<28} {'median':>8} {'p95':>8} {'max':>8}")
    print(_row("onset → detected (audio)", audio_ms))
    print(_row("onset captured → server", server_ms))
    print(_row("onset captured → dashboard", dashboard_ms))
    print(_row("|onset − truth|", errors_ms))
    print(_row("|onset − offline onset|", to_offline_ms))
    print(_row("experiment: per record, CPU", alone_us, "µs"))
    print(_row("  … wall, beside the server", costs_us, "µs"))
    print(f"server detector CPU: {cpu_s / audio_s * 1000:.0f} ms per s of audio ({cpu_s / audio_s:.1%} of a core)")


if __name__ == "__main__":
    main()
