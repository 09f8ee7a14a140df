"""Benchmark the live path end to end: send → state updated → scores on the dashboard, for the
incremental engine and for the full recomputation it replaced, in one run.

    .venv/bin/python bench/bench_live.py [--seconds S] [--maps N] [--images N] [--device cpu|cuda|auto]

For each route, a real ``lookwhere serve`` process (stimuli: OSIE's 800×600 photographs from
../shared/data, or generated 800×600 images when it is absent; a map store of N random 800×600
maps per image), an experiment-side :class:`experiment.sender.Sender` streaming a session at
250 Hz gaze plus 4 fixations/s during 5 s trials (20 fixations, the first ending 230 ms after the
onset; 1 s of drift correction between trials; 5 s of calibration before the first; the images in
turn, so each is seen again), and a WebSocket client in the same process (one clock). Routes:

``engine``      the product: :class:`server.scoring.LiveScorer` updates the image's
                :class:`analysis.engine.ImageEngine` by each new fixation;
``reference``   the route before the engine (``tests/analysis/_reference.py``: every heatmap and
                every map × metric recomputed from scratch at each scoring; no participant scores),
                run in the same server by swapping the scorer (``--serve-reference``).

Latencies, from ``Sender.send`` returning to the client receiving the message:

``fixation → fixations``  the state applied it; ``gaze → gaze``: the live cursor;
``fixation → scores``     the ``scores`` section scored through it: the 20 maps and the two
                          baselines × 9 metrics (coalesced: one scoring covers the fixations that
                          arrived during the previous one);
``… with the ceiling``    the same section completed with the human ceiling (every participant
                          against the others) and, for the engine, the participant's own scores;
``trial start → shown``   the ``scores`` section of the new image (its latest pooled scores, or
                          an empty table for an image without fixations);
``trial start → scored``  the first scoring of the new image in this trial (an engine is built
                          for an image seen before only when it was evicted).

Then the engine against the full recomputation for 200 fixations on one image, in process
(``bench_engine.py``). Reference of the last leg: a WebSocket ping → pong on the same connection.
Targets (issue 10): fixation → scores p99 ≤ 100 ms on the 2-core CPU machine (≥ 6× the old
route), ≤ 15 ms on a GPU.
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
from typing import IO, Any

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
FIXATIONS_PER_TRIAL = 20  # the 5 s display
CALIBRATION_S = 5.0  # session start → first trial (a real calibration and validation take longer)
DRIFT_CHECK_S = 1.0  # trial end → next trial (the participant-initiated drift correction)


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
    writer = MapStoreWriter(
        path,
        {
            "map_names": names,
            "model": {"architecture": "bench"},
            "weights": {"label": "untrained (random maps)", "untrained": True, "seed": 1},
            "input": {"size": [600, 800]},
            "parameters": {},
        },
    )
    for image in stimuli.image_ids:
        shape = stimuli.shape(image)
        writer.write_image(
            image, {name: rng.random(shape, dtype=np.float32) for name in names}, record={"original_shape": list(shape)}
        )


class _Client(threading.Thread):
    """Receives the dashboard feed; stamps when each gaze/fixation seq and each scoring first shows."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        from websockets.sync.client import connect

        self.socket = connect(url.replace("http://", "ws://").split("?")[0] + "ws", max_size=None)
        self.seen: dict[tuple[str, int], float] = {}
        self.scores: list[tuple[float, str | None, bool]] = []  # (time, image, scored now or shown as kept)
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
                scores = sections.get("scores")
                if scores is not None:
                    self.scores.append((now, scores["image"], scores["score_ms"] is not None))
                    if scores["score_ms"] is not None:
                        complete = (scores.get("summary") or {}).get("complete", True)
                        for seq in (scores.get("through_seq") or {}).values():
                            self.seen.setdefault(("scores", seq), now)
                            if complete:
                                self.seen.setdefault(("complete", seq), now)
        except Exception:  # the socket closes at the end of the run
            pass

    def ping(self) -> None:
        started = time.perf_counter()
        self.socket.ping().wait(timeout=5)
        self.pings_ms.append((time.perf_counter() - started) * 1000.0)


def _random_point(rng: np.random.Generator, geometry: DisplayGeometry) -> tuple[float, float, float, float]:
    """A uniform random point of the image: ``(x_image_px, y_image_px, x_display_px, y_display_px)``."""
    x, y = rng.uniform(0, geometry.image_width_px), rng.uniform(0, geometry.image_height_px)
    xd, yd = geometry.image_to_display(x, y)
    return float(x), float(y), float(xd), float(yd)


def _fixation(
    trial: int, image: str, point: tuple[float, float, float, float], *, end_ms: float, onset_ms: float
) -> FixationRecord:
    """A 200 ms fixation at ``point`` (:func:`_random_point`) ending at ``end_ms`` (session and
    tracker clock) in a trial whose image appeared at ``onset_ms``."""
    x, y, xd, yd = point
    start_ms = end_ms - 200
    return FixationRecord(
        participant="bench",
        trial=trial,
        image=image,
        eye="R",
        start_ms=start_ms - onset_ms,
        end_ms=end_ms - onset_ms,
        duration_ms=200.0,
        x_display_px=xd,
        y_display_px=yd,
        x_image_px=x,
        y_image_px=y,
        stimulus_duration_ms=5000.0,
        pupil=1000.0,
        start_tracker_ms=start_ms,
        end_tracker_ms=end_ms,
        start_session_ms=start_ms,
        end_session_ms=end_ms,
    )


def _end_trial(sender: Sender, trial: int, image: str, *, now_ms: float) -> None:
    sender.send(
        TrialEnd(
            trial=trial,
            image=image,
            offset_tracker_ms=now_ms,
            offset_session_ms=now_ms,
            n_fixations=FIXATIONS_PER_TRIAL,
            dropped_frames=0,
            aborted=False,
        )
    )
    sender.flush(fsync=False)


def _start_trial(
    sender: Sender, stimuli: StimulusSet, trial: int, *, now_s: float, duration_s: float
) -> DisplayGeometry:
    """Send trial ``trial``'s start (the images in turn); its display geometry."""
    images = stimuli.image_ids
    image = images[trial % len(images)]
    geometry = DisplayGeometry.fit(*stimuli.size(image))
    sender.send(
        TrialStart(
            trial=trial,
            image=image,
            onset_tracker_ms=now_s * 1000,
            onset_session_ms=now_s * 1000,
            stimulus_duration_ms=duration_s * 1000,
            next_image=images[(trial + 1) % len(images)],
            **geometry.to_dict(),
        )
    )
    return geometry


def _stream(sender: Sender, stimuli: StimulusSet, client: _Client, seconds: float) -> dict[str, dict[int, Any]]:
    """Stream a session in real time; the send time of each gaze and fixation seq."""
    # gaze and fixation: seq → send time; trial: trial → (start time, image)
    sent: dict[str, dict[int, Any]] = {"gaze": {}, "fixation": {}, "trial": {}}
    images = stimuli.image_ids
    sender.handshake()  # as the task does at session start: the connection is up before the first send
    sender.send(
        SessionStart(
            participant="bench",
            tracker="simulated",
            n_trials=len(images),
            screen_width_px=1920,
            screen_height_px=1080,
            wall_time_s=time.time(),
            first_image=images[0],
        )
    )
    calibration_ends = time.perf_counter() + CALIBRATION_S  # the server prepares the first image meanwhile
    while time.perf_counter() < calibration_ends:
        sender.service()  # as the task does every frame, calibration included
        time.sleep(0.01)
    rng = np.random.default_rng(2)
    start = time.perf_counter()
    trial_s = FIXATIONS_PER_TRIAL / FIXATIONS_PER_S
    next_gaze = next_ping = 0.0
    next_trial, next_fixation = 0.0, float("inf")
    trial, n_in_trial, onset_s = -1, 0, 0.0
    image = images[0]
    geometry = DisplayGeometry.fit(*stimuli.size(image))
    while (now := time.perf_counter() - start) < seconds:
        if now >= next_trial:
            trial += 1
            image = images[trial % len(images)]
            geometry = _start_trial(sender, stimuli, trial, now_s=now, duration_s=trial_s)
            sent["trial"][trial] = (time.perf_counter(), image)
            onset_s = now
            next_fixation = next_trial + 1.0 / FIXATIONS_PER_S - 0.02  # the last ends 20 ms before the offset
            next_trial += trial_s + DRIFT_CHECK_S
            n_in_trial = 0
        if now >= next_gaze:
            x, y, xd, yd = _random_point(rng, geometry)
            gaze = sender.send(
                GazeSample(
                    trial=trial,
                    t_tracker_ms=now * 1000,
                    t_session_ms=now * 1000,
                    eye="R",
                    x_display_px=xd,
                    y_display_px=yd,
                    pupil=1000.0,
                )
            )
            sent["gaze"][gaze.seq] = time.perf_counter()
            next_gaze += 1.0 / GAZE_HZ
        if now >= next_fixation:
            point = _random_point(rng, geometry)
            record = sender.send(_fixation(trial, image, point, end_ms=now * 1000, onset_ms=onset_s * 1000))
            sent["fixation"][record.seq] = time.perf_counter()
            n_in_trial += 1
            next_fixation += 1.0 / FIXATIONS_PER_S
            if n_in_trial == FIXATIONS_PER_TRIAL:  # the display ends with its last fixation
                _end_trial(sender, trial, image, now_ms=now * 1000)
                next_fixation = float("inf")
        if now >= next_ping:
            threading.Thread(target=client.ping, daemon=True).start()
            next_ping += 0.5
        sender.service()
        # sleep until the next record is due: the bench's own CPU use must not delay the server
        due = min(next_gaze, next_fixation, next_ping, next_trial)
        time.sleep(max(0.0, due - (time.perf_counter() - start)))
    sender.send(SessionEnd(reason="completed", n_trials=trial, t_session_ms=seconds * 1000))
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
    return (
        f"| {name} | {np.percentile(array, 50):.2f} | {np.percentile(array, 99):.2f} | {array.max():.2f} "
        f"| {array.size} | {missing} |"
    )


def _serve_reference(arguments: list[str]) -> int:
    """``lookwhere serve`` with the full recomputation in place of the engine (the reference route)."""
    import server.state
    from analysis.heatmap import select_fixations
    from analysis.offline import without_selection
    from lookwhere.cli import main as lookwhere_main
    from server.scoring import LiveScorer, fixation_table
    from tests.analysis._reference import reference_score_image

    class FullRecomputation(LiveScorer):
        """Every scoring recomputes the image from the whole pooled table, as before the engine."""

        last = None  # (item, summary): the hub asks twice per scoring (first and complete)

        def summary(self, item, context, *, complete=True):  # one step: the full recomputation
            if self.last is not None and self.last[0] == item:
                return self.last[1]
            rows, shapes = context()
            selected = select_fixations(fixation_table(rows), self.params)
            options = self._engine_options
            scoring = {key: options[key] for key in ("metrics", "seed", "variant", "mae_normalize")}
            result = reference_score_image(
                item.image,
                selected,
                shapes,
                params=without_selection(self.params),
                scoring=scoring,
                maps=self.maps.load(item.image, shape=item.shape) if self.maps is not None else None,
                center_bias_sigma_fraction=options["center_bias_sigma_fraction"],
            )
            scores = {**result.scores, **({"human_loso": result.human_loso} if result.loso else {})}
            own = selected[selected["image"] == item.image]
            table = fixation_table(item.rows)
            summary = {
                "image": item.image,
                "shape": list(item.shape),
                "heatmap_params": self.params.model_dump(),
                "n_fixations": len(table),
                "n_fixations_used": len(own),
                "n_participants": int(own["participant"].nunique()),
                "participant": item.participant,
                "n_fixations_participant": int((table["participant"] == item.participant).sum()),
                "scores": scores,
                "participant_scores": None,
                "complete": True,
            }
            self.last = (item, summary)
            return summary

    server.state.LiveScorer = FullRecomputation  # type: ignore[misc]  # monkeypatched: what LiveState scores with
    return lookwhere_main(["serve", *arguments])


def _read(stream: IO[str] | None) -> str:
    return "" if stream is None else stream.read()


def _run_route(route: str, tmp: Path, stimuli: StimulusSet, args) -> dict:
    """Stream one session to a fresh server of ``route``; what the client saw and what was sent."""
    data = tmp / f"data-{route}"
    serve = [
        "--stimuli",
        str(stimuli.folder),
        "--maps",
        str(tmp / "maps"),
        "--data",
        str(data),
        "--http-port",
        "0",
        "--zmq-port",
        "0",
        "--device",
        args.device,
    ]
    command = (
        [sys.executable, __file__, "--serve-reference", *serve]
        if route == "reference"
        else [sys.executable, "-m", "lookwhere", "serve", *serve]
    )
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (data / SERVER_INFO_FILE).exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"lookwhere serve ({route}) did not start: {_read(process.stderr)}")
            time.sleep(0.05)
        info = json.loads((data / SERVER_INFO_FILE).read_text())
        client = _Client(info["url"])
        client.start()
        sender = Sender(info["zmq_endpoint"], tmp / f"journal-{route}.msgpack", session=str(uuid.uuid4()))
        sent = _stream(sender, stimuli, client, args.seconds)
        sender.close()
        with urllib.request.urlopen(info["url"] + "api/health") as response:
            health = json.loads(response.read())
        client.socket.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        errors = _read(process.stderr)
        if "Traceback" in errors:
            print(f"server ({route}) stderr:\n{errors}", file=sys.stderr)
    return {"client": client, "sent": sent, "health": health}


def _latencies(run: dict) -> dict[str, tuple[list[float], int]]:
    """Per path: the latencies (ms) and how many were never seen."""
    client, sent = run["client"], run["sent"]
    out = {}
    for kind in ("gaze", "fixation"):
        latencies = [
            (client.seen[(kind, seq)] - t) * 1000 for seq, t in sent[kind].items() if (kind, seq) in client.seen
        ]
        out[kind] = (latencies, len(sent[kind]) - len(latencies))
    # a scoring through seq S covers every fixation sent at or before S
    for stage in ("scores", "complete"):
        scored = sorted((seq, t) for (kind, seq), t in client.seen.items() if kind == stage)
        latencies, missing = [], 0
        for seq, t_sent in sent["fixation"].items():
            first = next((t for s, t in scored if s >= seq), None)
            if first is None:
                missing += 1
            else:
                latencies.append((first - t_sent) * 1000)
        out[stage] = (latencies, missing)
    for label, scored_only in (("shown", False), ("scored", True)):
        latencies, missing = [], 0
        for t_sent, image in sent["trial"].values():
            first = next(
                (t for t, shown, now in client.scores if t >= t_sent and shown == image and (now or not scored_only)),
                None,
            )
            if first is None:
                missing += 1
            else:
                latencies.append((first - t_sent) * 1000)
        out[f"trial_{label}"] = (latencies, missing)
    return out


def main() -> int:
    if sys.argv[1:2] == ["--serve-reference"]:
        return _serve_reference(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="streaming time per route (default 40)")
    parser.add_argument("--maps", type=int, default=20, help="model maps per image (default 20)")
    parser.add_argument("--images", type=int, default=4, help="stimuli shown in turn, a new one every 5 s trial")
    parser.add_argument("--device", default="auto", help="lookwhere serve --device (default auto)")
    parser.add_argument("--routes", default="engine,reference", help="which routes to run (default both)")
    parser.add_argument("--skip-engine-bench", action="store_true", help="skip the in-process 200-fixation comparison")
    args = parser.parse_args()

    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        stimuli = _stimuli(tmp / "stimuli", args.images)
        print(f"map store: {args.maps} random maps × {len(stimuli.image_ids)} images …", flush=True)
        _store(tmp / "maps", stimuli, args.maps)
        for route in args.routes.split(","):
            print(f"route {route}: streaming {args.seconds:.0f} s …", flush=True)
            runs[route] = _run_route(route, tmp, stimuli, args)

    labels = {
        "fixation": "fixation → fixations section (state updated)",
        "gaze": "gaze → gaze section",
        "scores": "fixation → scores of the 20 maps + 2 baselines × 9 metrics",
        "complete": "fixation → with the human ceiling and the participant's own",
        "trial_shown": "trial start → scores shown",
        "trial_scored": "trial start → scored for this trial",
    }
    print(
        f"\n{args.seconds:.0f} s stream per route: gaze {GAZE_HZ:.0f} Hz, {FIXATIONS_PER_S:.0f} fixations/s, "
        f"{args.maps} maps × 800×600, {args.images} images in turn; CPU threads: {os.cpu_count()}"
    )
    print("\n| path | route | p50 ms | p99 ms | max ms | n | not seen |\n|---|---|---|---|---|---|---|")
    latencies = {route: _latencies(run) for route, run in runs.items()}
    for key, label in labels.items():
        for route in runs:
            values, missing = latencies[route][key]
            print(_row(f"{label} | {route}", values, missing))
    for route, run in runs.items():
        print(_row(f"reference: WebSocket ping → pong | {route}", run["client"].pings_ms))
    for route in runs:  # an outlier's trial says which preparation it waited for
        per_trial = ", ".join(f"{value:.0f}" for value in latencies[route]["trial_scored"][0])
        print(f"trial start → scored, trial by trial ({route}): {per_trial} ms")
    if {"engine", "reference"} <= set(runs):
        engine, reference = (np.asarray(latencies[r]["scores"][0]) for r in ("engine", "reference"))
        if engine.size and reference.size:
            print(
                "\nfixation → scores, reference / engine: "
                f"p50 ×{np.percentile(reference, 50) / np.percentile(engine, 50):.1f}, "
                f"p99 ×{np.percentile(reference, 99) / np.percentile(engine, 99):.1f}"
            )
    for route, run in runs.items():
        health = run["health"]
        scoring = health["score_ms"]
        print(
            f"server ({route}, scoring on {health.get('scoring_device')}): scoring p50 {scoring['p50']:.0f} ms, "
            f"p99 {scoring['p99']:.0f} ms over {scoring['n']} scorings; apply p50 {health['apply_ms']['p50']:.3f} ms, "
            f"p99 {health['apply_ms']['p99']:.3f} ms"
        )
    print(
        "targets: fixation → scores p99 ≤ 100 ms on the 2-core CPU machine, ≤ 15 ms on a GPU; "
        "fixation → state → WebSocket p50 ≤ 10 ms, p99 ≤ 30 ms"
    )
    if not args.skip_engine_bench:
        print("\n200 fixations on one image, in process (bench_engine.py):", flush=True)
        from bench_engine import main as engine_bench

        engine_bench(
            ["--fixations", "200", "--maps", str(args.maps), "--reference-every", "25", "--device", args.device]
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
