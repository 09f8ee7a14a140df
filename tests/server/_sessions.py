"""Real OSIE fixations streamed as experiment sessions, and a small map store, for the server tests."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd

from analysis.cnn.store import MapStore, MapStoreWriter
from experiment.sender import Sender
from lookwhere import protocol
from lookwhere.protocol import FixationRecord, SessionEnd, SessionStart, TrialEnd, TrialStart
from server.receiver import Receiver
from stimuli.geometry import DisplayGeometry
from stimuli.sets import StimulusSet
from tests.server._stream import pump

IMAGES = ("1001", "1002", "1003")
OBSERVERS = ("s01", "s02", "s03")
STIMULUS_MS = 2000.0
RANDOM_METRICS = {"auc_judd", "auc_borji", "auc_shuffled"}
STORE_MAPS = ("cam_a", "cam_b")
MAPS = {"center_bias", "dataset_prior", "blank", "uniform", "human_loso", *STORE_MAPS}


def small_store(path) -> MapStore:
    """A small map store of random native-size maps (16×16, upsampled by the store on load)."""
    rng = np.random.default_rng(5)
    writer = MapStoreWriter(
        path,
        {
            "map_names": list(STORE_MAPS),
            "model": {"architecture": "test"},
            "weights": {"label": "untrained", "untrained": True, "seed": 0},
            "input": {"size": [16, 16]},
            "parameters": {},
        },
    )
    for image in IMAGES:
        writer.write_image(
            image, {name: rng.random((16, 16)) for name in STORE_MAPS}, record={"original_shape": [600, 800]}
        )
    return MapStore.open(path)


def timed(osie: pd.DataFrame) -> pd.DataFrame:
    """OSIE gives durations only: lay each trial's fixations end to end from onset, so the last
    ones overrun the 2 s display and the display filter has something to drop."""
    table = osie.copy()
    end = table.groupby(["participant", "image"], sort=False)["duration_ms"].cumsum()
    table["start_ms"] = end - table["duration_ms"]
    table["end_ms"] = end
    return table


def stream(
    table: pd.DataFrame,
    stimuli: StimulusSet,
    endpoint: str,
    tmp_path,
    *,
    receiver: Receiver | None = None,
    after_trial=None,
) -> tuple[list, pd.DataFrame]:
    """Send one session per participant to ``endpoint``, each until acknowledged; return the
    records ``receiver`` accepted (when it runs in this process) and the table as sent.
    ``after_trial(participant, trial, sender)`` is called after each trial's last record is sent."""
    accepted: list[protocol.Record] = []
    sent_rows = []
    for number, (participant, rows) in enumerate(table.groupby("participant", sort=True)):
        session = str(uuid.UUID(int=number + 1))
        sender = Sender(endpoint, tmp_path / f"{participant}.msgpack", session=session, heartbeat_interval_s=None)
        sender.send(
            SessionStart(
                participant=participant,
                tracker="simulated",
                n_trials=len(IMAGES),
                screen_width_px=1920,
                screen_height_px=1080,
                wall_time_s=1_790_000_000.0 + number,
            )
        )
        for trial, (image, trial_rows) in enumerate(rows.groupby("image", sort=False)):
            geometry = DisplayGeometry.fit(*stimuli.size(image))
            sender.send(
                TrialStart(
                    trial=trial,
                    image=image,
                    onset_tracker_ms=1000.0 * trial,
                    onset_session_ms=1000.0 * trial,
                    stimulus_duration_ms=STIMULUS_MS,
                    **geometry.to_dict(),
                )
            )
            x_display, y_display = geometry.image_to_display(
                trial_rows["x_image_px"].to_numpy(), trial_rows["y_image_px"].to_numpy()
            )
            for row, x_d, y_d in zip(trial_rows.itertuples(), x_display, y_display):
                record = sender.send(
                    FixationRecord(
                        participant=participant,
                        trial=trial,
                        image=image,
                        eye="",
                        start_ms=row.start_ms,
                        end_ms=row.end_ms,
                        duration_ms=row.duration_ms,
                        x_display_px=float(x_d),
                        y_display_px=float(y_d),
                        x_image_px=row.x_image_px,
                        y_image_px=row.y_image_px,
                        stimulus_duration_ms=STIMULUS_MS,
                        pupil=float("nan"),
                        start_tracker_ms=row.start_ms,
                        end_tracker_ms=row.end_ms,
                        start_session_ms=row.start_ms,
                        end_session_ms=row.end_ms,
                    )
                )
                sent_rows.append(record.to_fixation())
            sender.send(
                TrialEnd(
                    trial=trial,
                    image=image,
                    offset_tracker_ms=1000.0 * trial + STIMULUS_MS,
                    offset_session_ms=1000.0 * trial + STIMULUS_MS,
                    n_fixations=len(trial_rows),
                    dropped_frames=0,
                    aborted=False,
                )
            )
            if after_trial is not None:
                after_trial(participant, trial, sender)
        last = sender.send(SessionEnd(reason="completed", n_trials=len(IMAGES), t_session_ms=9000.0))
        pump(receiver, [sender], until=lambda: sender.acked_seq == last.seq, sink=accepted)  # noqa: B023 — called now
        sender.close()
    return accepted, pd.DataFrame(sent_rows)


def stimulus_subset(source, images, folder):
    """A stimulus folder of links to some of ``source``'s images (a server needs maps for all)."""
    folder.mkdir(parents=True)
    for image in images:
        (folder / f"{image}.jpg").symlink_to(source / f"{image}.jpg")
    return folder


def offline_analysis(sent: pd.DataFrame, stimuli, store_path, folder, *, notes_dir=None):
    """The oracle: ``run_analysis`` (``--dataset session``, seed 7) on the very fixations sent, with
    the density parameters the live server uses (the defaults: fitting them needs every image's maps);
    ``notes_dir``: the server's data folder, whose notes exclude trials (``analyze --notes``).
    Each session is a folder as ``lookwhere run`` writes it (its id in ``config.json``, its trials in
    ``trials.jsonl``), so the notes find their trials. Its ``scores`` leave out ``human_gold``, which
    only the offline analysis computes."""
    from analysis.offline import AnalysisConfig, run_analysis
    from analysis.quality import QualityRules

    for session, rows in sent.groupby("session", sort=False):
        participant = str(rows["participant"].iloc[0])
        session_dir = folder / "sessions" / participant
        session_dir.mkdir(parents=True, exist_ok=True)
        rows.to_csv(session_dir / "fixations.csv", index=False, na_rep="nan")
        (session_dir / "config.json").write_text(json.dumps({"session_id": session, "participant": participant}))
        trials = rows.drop_duplicates("trial")
        (session_dir / "trials.jsonl").write_text(
            "".join(json.dumps({"trial": int(t.trial), "image": str(t.image)}) + "\n" for t in trials.itertuples())
        )
    config = AnalysisConfig(
        dataset="session",
        fixations=folder / "sessions",
        stimuli=stimuli,
        out=folder / ("offline" if notes_dir is None else "offline-notes"),
        maps=store_path,
        seed=7,
        bootstrap_resamples=100,
        n_overlays=0,
        density_fit="default",
        split_half_splits=1,
        heatmaps_float64=True,
        quality=QualityRules(notes_dir=notes_dir),
    )
    result = run_analysis(config, progress=False)
    assert (result.scores["map"] == "human_gold").any()
    result.scores = result.scores[result.scores["map"] != "human_gold"]
    return result
