"""Benchmark the live path end to end: send → state updated → WebSocket message received.

    .venv/bin/python bench/bench_live.py [--seconds S] [--maps N]

A real ``lookwhere serve`` process (stimuli: OSIE's 800×600 photographs from ../shared/data, or
generated 800×600 images when it is absent; a map store of N random 800×600 maps per image), an
experiment-side :class:`experiment.sender.Sender` streaming a session at 250 Hz gaze plus
4 fixations/s (a new 5 s trial every 20 fixations), and a WebSocket client in the same process
(one clock). Latencies, from ``Sender.send`` returning to the client receiving the message:

``gaze``        a gaze sample → the ``gaze`` section carrying its ``seq``;
``fixation``    a fixation → the ``fixations`` section listing it (the state has applied it);
``scores``      a fixation → the ``scores`` section scored through it (heatmap and every map ×
                every metric recomputed on a copy of the state; coalesced: one scoring covers all
                fixations that arrived during the previous one).

Reference, same run and connection: a WebSocket ping → pong round trip (the floor of the last leg).
Targets here (CPU): fixation p50 ≤ 10 ms, p99 ≤ 30 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.cnn.store import MapStoreWriter  # noqa: E402
from experiment.sender import Sender  # noqa: E402
from lookwhere.protocol import FixationRecord, GazeSample, SessionEnd, SessionStart, TrialEnd, TrialStart  # noqa: E402
from server.app import SERVER_INFO_FILE  # noqa: E402
from stimuli.geometry import DisplayGeometry  # noqa: E402
from stimuli.sets import StimulusSet  # noqa: E402

OSIE = ROOT.parent / "shared" / "data" / "osie" / "stimuli"
GAZE_HZ = 250.0
FIXATIONS_PER_S = 4.0
FIXATIONS_PER_TRIAL = 20


def _stimuli(folder: Path, n_images: int) -> StimulusSet:
    """``n_images`` OSIE photographs (linked), or random 800×600 images when the data is absent."""
    folder.mkdir()
    if OSIE.is_dir():
        for path in sorted(OSIE.glob("*.jpg"))[:n_images]:
            (folder / path.name).symlink_to(path)
        return StimulusSet(folder)
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(n_images):
        Image.fromarray(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)).save(folder / f"{1001 + index}.png")
    return StimulusSet(folder)


def _store(path: Path, stimuli: StimulusSet, n_maps: int) -> None:
    rng = np.random.default_rng(1)
    names = [f"map{index:02d}" for index in range(n_maps)]
    writer = MapStoreWriter(path, {"map_names": names, "model": {"architecture": "bench"},
                                   "weights": {"label": "untrained (random maps)", "untrained": True, "seed": 1},
                                   "input": {"size": [600, 800]}, "parameters": {}})
    for image in stimuli.image_ids:
        shape = stimuli.shape(image)
        writer.write_image(image, {name: rng.random(shape, dtype=np.float32) for name in names},
                           record={"original_shape": list(shape)})


class _Client(threading.Thread):
    """Receives the dashboard feed; stamps when each gaze/fixation seq and scoring first shows."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        from websockets.sync.client import connect

        self.socket = connect(url.replace("http://", "ws://").split("?")[0] + "ws", max_size=None)
        self.seen: dict[tuple[str, int], float] = {}
        self.pings_ms: list[float] = []
        self.messages = 0

    def run(self) -> None:
        try:
            for text in self.socket:
                now = time.perf_counter()
                self.messages += 1
                sections = json.loads(text)["sections"]
                gaze = sections.get("gaze", {}).get("gaze")
                if gaze:
                    self.seen.setdefault(("gaze", gaze["seq"]), now)
                for fixation in sections.get("fixations", {}).get("fixations", []):
                    self.seen.setdefault(("fixation", fixation["seq"]), now)
                through = sections.get("scores", {}).get("through_seq") or {}
                for seq in through.values():
                    self.seen.setdefault(("scores", seq), now)
        except Exception:  # the socket closes at the end of the run
            pass

    def ping(self) -> None:
        started = time.perf_counter()
        self.socket.ping().wait(timeout=5)
        self.pings_ms.append((time.perf_counter() - started) * 1000.0)


def _stream(sender: Sender, stimuli: StimulusSet, client: _Client, seconds: float) -> dict[str, dict[int, float]]:
    """Stream a session in real time; the send time of each gaze and fixation seq."""
    sent: dict[str, dict[int, float]] = {"gaze": {}, "fixation": {}}
    images = stimuli.image_ids
    sender.send(SessionStart, participant="bench", tracker="simulated", n_trials=len(images),
                screen_width_px=1920, screen_height_px=1080, wall_time_s=time.time())
    rng = np.random.default_rng(2)
    start = time.perf_counter()
    next_gaze = next_fixation = next_ping = 0.0
    n_fixations, trial, geometry = 0, -1, None
    while (now := time.perf_counter() - start) < seconds:
        if n_fixations % FIXATIONS_PER_TRIAL == 0 and trial < n_fixations // FIXATIONS_PER_TRIAL:
            if trial >= 0:
                sender.send(TrialEnd, trial=trial, image=image, offset_tracker_ms=now * 1000, offset_session_ms=now * 1000,
                            n_fixations=FIXATIONS_PER_TRIAL, dropped_frames=0, aborted=False)
                sender.flush(fsync=False)
            trial += 1
            image = images[trial % len(images)]
            geometry = DisplayGeometry.fit(*stimuli.size(image))
            sender.send(TrialStart, trial=trial, image=image, onset_tracker_ms=now * 1000, onset_session_ms=now * 1000,
                        stimulus_duration_ms=5000.0, **geometry.to_dict())
        if now >= next_gaze:
            x, y = rng.uniform(0, geometry.image_width_px), rng.uniform(0, geometry.image_height_px)
            xd, yd = geometry.image_to_display(x, y)
            record = sender.send(GazeSample, trial=trial, t_tracker_ms=now * 1000, t_session_ms=now * 1000, eye="R",
                                 x_display_px=float(xd), y_display_px=float(yd), pupil=1000.0)
            sent["gaze"][record.seq] = time.perf_counter()
            next_gaze += 1.0 / GAZE_HZ
        if now >= next_fixation:
            x, y = rng.uniform(0, geometry.image_width_px), rng.uniform(0, geometry.image_height_px)
            xd, yd = geometry.image_to_display(x, y)
            t_ms = now * 1000
            record = sender.send(
                FixationRecord, participant="bench", trial=trial, image=image, eye="R",
                start_ms=t_ms - 200, end_ms=t_ms, duration_ms=200.0, x_display_px=float(xd), y_display_px=float(yd),
                x_image_px=float(x), y_image_px=float(y), stimulus_duration_ms=5000.0, pupil=1000.0,
                start_tracker_ms=t_ms - 200, end_tracker_ms=t_ms, start_session_ms=t_ms - 200, end_session_ms=t_ms)
            sent["fixation"][record.seq] = time.perf_counter()
            n_fixations += 1
            next_fixation += 1.0 / FIXATIONS_PER_S
        if now >= next_ping:
            threading.Thread(target=client.ping, daemon=True).start()
            next_ping += 0.5
        sender.service()
        # sleep until the next record is due: the bench's own CPU use must not delay the server
        time.sleep(max(0.0, min(next_gaze, next_fixation, next_ping) - (time.perf_counter() - start)))
    sender.send(SessionEnd, reason="completed", n_trials=trial, t_session_ms=seconds * 1000)
    deadline = time.monotonic() + 30
    while sender.pending and time.monotonic() < deadline:
        sender.service()
        time.sleep(0.005)
    time.sleep(3.0)  # the last scoring
    return sent


def _row(name: str, values_ms: list[float], missing: int = 0) -> str:
    if not values_ms:
        return f"| {name} | – | – | – | 0 | {missing} |"
    array = np.asarray(values_ms)
    return (f"| {name} | {np.percentile(array, 50):.2f} | {np.percentile(array, 99):.2f} | {array.max():.2f} "
            f"| {array.size} | {missing} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="streaming time (default 30)")
    parser.add_argument("--maps", type=int, default=20, help="model maps per image (default 20)")
    parser.add_argument("--images", type=int, default=8, help="stimuli (a new one every 5 s trial)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        stimuli = _stimuli(tmp / "stimuli", args.images)
        print(f"map store: {args.maps} random maps × {len(stimuli.image_ids)} images …", flush=True)
        _store(tmp / "maps", stimuli, args.maps)
        data = tmp / "data"
        process = subprocess.Popen(
            [sys.executable, "-m", "lookwhere", "serve", "--stimuli", str(stimuli.folder), "--maps", str(tmp / "maps"),
             "--data", str(data), "--http-port", "0", "--zmq-port", "0"], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not (data / SERVER_INFO_FILE).exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"lookwhere serve did not start: {process.stderr.read()}")
                time.sleep(0.05)
            info = json.loads((data / SERVER_INFO_FILE).read_text())
            client = _Client(info["url"])
            client.start()
            sender = Sender(info["zmq_endpoint"], tmp / "journal.msgpack", session=str(uuid.uuid4()))
            sent = _stream(sender, stimuli, client, args.seconds)
            sender.close()
            with urllib.request.urlopen(info["url"] + "api/health") as response:
                health = json.loads(response.read())
            client.socket.close()
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=20)
            errors = process.stderr.read()
            if errors.strip():
                print(f"server stderr:\n{errors}", file=sys.stderr)

    rows = []
    for kind, label in (("gaze", "gaze → gaze section"), ("fixation", "fixation → fixations section (state updated)")):
        latencies = [(client.seen[(kind, seq)] - t) * 1000 for seq, t in sent[kind].items() if (kind, seq) in client.seen]
        rows.append(_row(label, latencies, len(sent[kind]) - len(latencies)))
    # a scoring through seq S covers every fixation sent at or before S
    scored = sorted((seq, t) for (kind, seq), t in client.seen.items() if kind == "scores")
    score_latency, missing = [], 0
    for seq, t_sent in sent["fixation"].items():
        first = next((t for s, t in scored if s >= seq), None)
        if first is None:
            missing += 1
        else:
            score_latency.append((first - t_sent) * 1000)
    rows.append(_row("fixation → scores section (every map × metric)", score_latency, missing))
    rows.append(_row("reference: WebSocket ping → pong (same connection)", client.pings_ms))

    n_fix = len(sent["fixation"])
    print(f"\n{args.seconds:.0f} s stream: {len(sent['gaze'])} gaze samples ({GAZE_HZ:.0f} Hz), {n_fix} fixations "
          f"({FIXATIONS_PER_S:.0f}/s), {args.maps} maps × 800×600, {client.messages} WebSocket messages; "
          f"CPU threads: {os.cpu_count()}")
    print("\n| path | p50 ms | p99 ms | max ms | n | not seen |\n|---|---|---|---|---|---|")
    print("\n".join(rows))
    scoring = health["score_ms"]
    print(f"\nserver: scoring p50 {scoring['p50']:.0f} ms, p99 {scoring['p99']:.0f} ms over {scoring['n']} scorings; "
          f"apply p50 {health['apply_ms']['p50']:.3f} ms, p99 {health['apply_ms']['p99']:.3f} ms; "
          f"heartbeat latency p50 {health['latency_ms']['p50']:.2f} ms")
    print("targets (CPU): fixation → state → WebSocket p50 ≤ 10 ms, p99 ≤ 30 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
