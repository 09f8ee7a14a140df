"""``lookwhere demo``: the whole system on a fresh machine, in a few minutes.

In the order it runs (each step prints what it did and where):

1. **stimuli** — the bundled demo photographs (:func:`stimuli.demo_set.prepare_demo_set`), or with
   ``--dataset osie`` OSIE's photographs; the first ``--trials`` images form the demo's set;
2. **map store** — the CNN attention maps of those images (ImageNet weights when torchvision can
   load them, otherwise untrained weights, labelled so everywhere);
3. **server** — ``lookwhere serve`` in its own process; the dashboard's URL is printed;
4. **participants** — ``lookwhere run`` with the simulated tracker, one process per participant,
   one after the other, streaming live to the server (windowed on a display, under Xvfb without
   one or with ``--headless``); with ``--dataset osie`` participant *k* replays OSIE observer *k*;
5. **report** — the offline analysis of the recorded sessions (``lookwhere analyze --dataset
   session``): tables, Fig. 9-style chart, overlays; the live scores the dashboard shows are
   saved beside it and compared with the offline ones.

Everything lands in ``--out``; the server keeps serving the dashboard with ``--keep-serving``
until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)

SHARED_OSIE = Path(__file__).resolve().parents[2] / "shared" / "data" / "osie"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        choices=["demo", "osie"],
        default="demo",
        help="demo: bundled photographs, simulated viewers (default); osie: OSIE's images, its observers replayed",
    )
    parser.add_argument(
        "--stimuli", type=Path, default=SHARED_OSIE / "stimuli", help="OSIE stimuli folder (--dataset osie)"
    )
    parser.add_argument(
        "--fixations",
        type=Path,
        default=SHARED_OSIE / "eye" / "fixations.mat",
        help="OSIE fixations.mat (--dataset osie)",
    )
    parser.add_argument("--participants", type=int, default=3, help="simulated participants (default 3)")
    parser.add_argument("--trials", type=int, default=4, help="images per participant (default 4)")
    parser.add_argument(
        "--duration-ms", type=float, default=3000.0, help="image display time (default 3000; the study: 5000)"
    )
    parser.add_argument(
        "--headless",
        action="store_true",
        help="run the experiment under a virtual display even when a screen is present",
    )
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    parser.add_argument("--http-port", type=int, default=8765, help="dashboard port (0: any free one)")
    parser.add_argument(
        "--keep-serving", action="store_true", help="keep the dashboard up after the report, until Ctrl-C"
    )
    parser.add_argument("--no-cnn", action="store_true", help="score the baselines only (no map store)")


def _lookwhere(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "lookwhere", *arguments]


def _demo_stimuli(args: argparse.Namespace, out: Path) -> Path:
    """The demo's stimulus folder: links to the first ``--trials`` images of the chosen set."""
    from stimuli.sets import StimulusSet

    if args.dataset == "demo":
        from stimuli.demo_set import prepare_demo_set

        source = StimulusSet(prepare_demo_set())
    else:
        if not args.fixations.is_file():
            raise FileNotFoundError(
                f"OSIE fixations not found at {args.fixations}; pass --fixations "
                "(e.g. ../shared/data/osie/eye/fixations.mat)"
            )
        source = StimulusSet(args.stimuli)
    paths = list(source.paths.values())
    if not 1 <= args.trials <= len(paths):
        raise ValueError(
            f"--trials must be between 1 and the {len(paths)} images of {source.folder}; got {args.trials}"
        )
    folder = out / "stimuli"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        stale.unlink()
    for path in paths[: args.trials]:
        (folder / path.name).symlink_to(path.resolve())
    return folder


def _map_store(stimuli: Path, out: Path) -> Path:
    """CNN maps of the demo's images: ImageNet weights when they load, else untrained (labelled)."""
    from analysis.cnn.model import load_vgg16
    from analysis.cnn.precompute import precompute_store
    from stimuli.sets import StimulusSet

    try:
        model = load_vgg16("imagenet")
    except FileNotFoundError as error:
        logger.warning("%s", error)
        print(
            "maps:      pretrained VGG16 weights are not available here: UNTRAINED weights "
            "(seed 0) — the maps are labelled untrained everywhere",
            flush=True,
        )
        model = load_vgg16("untrained", seed=0)
    precompute_store(model, StimulusSet(stimuli), out, progress=False)
    return out


def _scanpaths(fixations: Path, stimuli: Path, n_participants: int, out: Path) -> list[Path]:
    """One scanpath file per participant: OSIE observer k's fixations on the demo's images."""
    from analysis.readers import read_osie
    from stimuli.sets import StimulusSet

    table = read_osie(fixations, images=StimulusSet(stimuli).image_ids)
    observers = sorted(table["participant"].unique())
    if n_participants > len(observers):
        raise ValueError(f"--participants {n_participants}: OSIE has {len(observers)} observers of these images")
    files = []
    for observer in observers[:n_participants]:
        path = out / f"scanpaths_{observer}.csv"
        table[table["participant"] == observer].to_csv(path, index=False)
        files.append(path)
    return files


def _display_env(headless: bool):
    """Environment for the experiment, and the virtual display started for it (or None)."""
    if os.environ.get("DISPLAY") and not headless:
        return dict(os.environ), None
    from experiment.xvfb import start_xvfb

    display = start_xvfb()
    print(f"display:   virtual (Xvfb {display.display})", flush=True)
    return {**os.environ, "DISPLAY": display.display}, display


def _run_participants(args, stimuli: Path, endpoint: str, sessions: Path, scanpaths: list[Path] | None) -> None:
    env, display = _display_env(args.headless)
    try:
        for index in range(args.participants):
            participant = f"P{index + 1:02d}"
            command = _lookwhere(
                "run",
                "--participant",
                participant,
                "--stimuli",
                str(stimuli),
                "--tracker",
                "simulated",
                "--out",
                str(sessions),
                "--trials",
                str(args.trials),
                "--duration-ms",
                str(args.duration_ms),
                "--seed",
                str(index + 1),
                "--auto-accept-drift-ms",
                "300",
                "--windowed",
                "--no-mic",
                "--server",
                endpoint,
                *(("--scanpaths", str(scanpaths[index])) if scanpaths else ()),
            )
            started = time.perf_counter()
            print(f"session:   {participant} ({args.trials} images × {args.duration_ms:.0f} ms) …", flush=True)
            result = subprocess.run(command, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(
                    f"participant {participant}'s session failed (exit {result.returncode}):\n{result.stderr[-3000:]}"
                )
            print(f"           done in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        if display is not None:
            display.close()


def live_scores(url: str, image_ids: list[str], *, last_seqs: dict[str, int], timeout_s: float = 60.0):
    """The scores the dashboard shows for every image, once the server has applied every record the
    sessions sent (``last_seqs``: session → last ``seq``) and scored the result.

    Returns
    -------
    DataFrame
        Columns ``image, map, metric, value`` (as the offline ``scores.csv``).
    """
    import urllib.request

    import pandas as pd

    def get(path: str):
        with urllib.request.urlopen(url.split("?")[0] + path, timeout=30) as response:
            return json.loads(response.read())

    deadline = time.monotonic() + timeout_s

    def done() -> bool:
        progress = get("api/images")
        applied = progress["applied_seq"]
        return progress["settled"] and all(applied.get(session, 0) >= seq for session, seq in last_seqs.items())

    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not score the sessions' last records within {timeout_s:.0f} s")
        time.sleep(0.2)
    rows = []
    for image in image_ids:
        for name, values in get(f"api/images/{image}")["scores"].items():
            rows += [
                {"image": image, "map": name, "metric": metric, "value": value} for metric, value in values.items()
            ]
    return pd.DataFrame(rows, columns=["image", "map", "metric", "value"]).astype({"value": float})


def _last_seqs(sessions: Path) -> dict[str, int]:
    """Session id → the last ``seq`` each session streamed (from its journal)."""
    from experiment.stream import JOURNAL_NAME
    from lookwhere.protocol import read_journal

    last = {}
    for journal in sessions.glob(f"*/{JOURNAL_NAME}"):
        for _, data in read_journal(journal):
            last[data["session"]] = data["seq"]
    return last


def main(args: argparse.Namespace) -> int:
    from analysis.offline import AnalysisConfig, run_analysis
    from analysis.quality import QualityRules
    from stimuli.sets import StimulusSet

    if args.participants < 1:
        raise ValueError(f"--participants must be >= 1; got {args.participants}")
    # Ctrl-C and kill (SIGTERM) both reach the finally below, which stops the server (it runs in
    # its own process group, so neither signal reaches it): a background job of a non-interactive
    # shell inherits SIGINT ignored, and SIGTERM would otherwise leave the server running.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.perf_counter()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    stimuli = _demo_stimuli(args, out)
    image_ids = StimulusSet(stimuli).image_ids
    print(f"stimuli:   {len(image_ids)} images ({', '.join(image_ids)}) in {stimuli}", flush=True)
    scanpaths = _scanpaths(args.fixations, stimuli, args.participants, out) if args.dataset == "osie" else None
    maps = None
    if not args.no_cnn:
        step = time.perf_counter()
        maps = _map_store(stimuli, out / "maps")
        print(f"maps:      {maps} ({time.perf_counter() - step:.0f} s)", flush=True)
    data, sessions = out / "server", out / "sessions"
    for folder in (data, sessions):  # a demo starts afresh; its pooled state is its own
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
    data.mkdir()
    from server.process import start_server, stop_server

    server, info = start_server(
        stimuli,
        data,
        "--http-port",
        str(args.http_port),
        "--zmq-port",
        "0",
        "--sessions",  # the review page opens the demo's sessions
        str(sessions),
        *(("--maps", str(maps)) if maps else ()),
        log_file=out / "server.log",
        start_new_session=True,
    )
    try:
        print(f"dashboard: {info['url']}", flush=True)
        _run_participants(args, stimuli, info["zmq_endpoint"], sessions, scanpaths)
        live = live_scores(info["url"], image_ids, last_seqs=_last_seqs(sessions))
        # the live server's density parameters (the defaults), so that live and offline compare
        config = AnalysisConfig(
            dataset="session",
            fixations=sessions,
            stimuli=stimuli,
            out=out / "report",
            maps=maps,
            bootstrap_resamples=2000,
            density_fit="default",
            quality=QualityRules(notes_dir=data),  # the notes typed on the dashboard
        )
        result = run_analysis(config, progress=False)
        live.to_csv(out / "report" / "live_scores.csv", index=False)
        merged = result.scores.merge(live, on=["image", "map", "metric"], suffixes=("_offline", "_live"))
        difference = (merged["value_offline"] - merged["value_live"]).abs().max()
        print(f"live vs offline: {len(merged)} scores compared, largest difference {difference:.2g}", flush=True)
        print(f"report:    {result.files['report']}", flush=True)
        print(f"demo finished in {time.perf_counter() - started:.0f} s", flush=True)
        if args.keep_serving:
            print(f"the dashboard stays at {info['url']}; Ctrl-C to stop", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                server.wait()
    finally:
        stop_server(server)
    return 0
