"""server.scoring.LiveScorer: incremental updates and background preparation give the numbers of a
scorer that builds each image at once.

Oracle: a fresh LiveScorer asked once for the final state (one engine, all fixations added
together), itself held equal to the full recomputation by tests/analysis/test_engine.py.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from analysis.heatmap import HeatmapParams
from analysis.readers import read_osie
from analysis.scoring_config import ScoringConfig
from experiment.sender import Sender
from lookwhere.protocol import SessionStart, TrialStart
from lookwhere.records import FIXATION_COLUMNS
from server.hub import LiveHub
from server.scoring import ImageInput, LiveScorer
from stimuli.geometry import DisplayGeometry
from stimuli.sets import StimulusSet
from tests.server._sessions import stream, timed
from tests.server._stream import pump

IMAGES = ("1001", "1002", "1003")
SHAPE = (600, 800)


@pytest.fixture(scope="module")
def rows(osie_fixations_path):
    table = read_osie(osie_fixations_path, images=list(IMAGES))
    table = table[table["participant"].isin(sorted(table["participant"].unique())[:3])]
    return [tuple(row) for row in table[list(FIXATION_COLUMNS)].itertuples(index=False, name=None)]


def _scorer(**options) -> LiveScorer:
    rng = np.random.default_rng(5)
    maps = {image: {"noise": rng.random(SHAPE)} for image in IMAGES}

    class Maps:  # the store's interface: maps at the image's size
        map_names = ("noise",)

        def load(self, image, *, shape):
            return maps[image]

    return LiveScorer(maps=Maps(), scoring=ScoringConfig(heatmap=HeatmapParams(), seed=3), **options)


def _input(rows, image: str, version: int) -> ImageInput:
    own = tuple(row for row in rows if row[FIXATION_COLUMNS.index("image")] == image)
    return ImageInput(
        image=image,
        shape=SHAPE,
        rows=own,
        context_version=version,
        participant=own[-1][FIXATION_COLUMNS.index("participant")] if own else None,
    )


def _context(rows):
    return lambda: (list(rows), {image: SHAPE for image in IMAGES})


def test_updates_and_background_preparation_equal_a_fresh_scorer(rows):
    image, other = IMAGES[0], IMAGES[1]
    mine = [row for row in rows if row[FIXATION_COLUMNS.index("image")] == image]
    others = [row for row in rows if row[FIXATION_COLUMNS.index("image")] != image]
    scorer = _scorer()
    scorer.prepare_in_background(_input(others, image, 1), _context(others))  # before its trial
    assert scorer.wait_prepared(timeout_s=60)
    prepared = scorer._engines[image]
    for k in range(1, len(mine) + 1, 7):  # the trial: fixations arrive, scored as they come
        seen = others + mine[:k]
        summary = scorer.summary(_input(seen, image, 1), _context(seen))
    summary = scorer.summary(_input(rows, image, 1), _context(rows))
    assert scorer._engines[image] is prepared  # updated, never rebuilt
    expected = _scorer().summary(_input(rows, image, 1), _context(rows))
    assert summary.keys() == expected.keys()
    _assert_same_scores(summary, expected)
    assert summary["participant_scores"] is not None
    # another image asked for while it is being prepared waits for that preparation
    scorer.prepare_in_background(_input(rows, other, 2), _context(rows))
    assert scorer.summary(_input(rows, other, 2), _context(rows))["n_fixations"] > 0
    assert scorer.wait_prepared(timeout_s=0) and not scorer._queue


def test_engines_are_kept_for_the_last_images_only(rows):
    scorer = _scorer(max_images=2)
    for image in IMAGES:
        scorer.summary(_input(rows, image, 1), _context(rows))
    assert list(scorer._engines) == list(IMAGES[1:])


def _assert_same_scores(summary, expected):
    assert summary["scores"].keys() == expected["scores"].keys()
    for name, values in expected["scores"].items():
        for metric, value in values.items():
            assert summary["scores"][name][metric] == pytest.approx(value, abs=1e-9, nan_ok=True), (name, metric)


def test_an_engine_catches_up_with_its_context_in_the_background_while_scored(rows):
    """At a trial's end the next image's engine takes the trial's fixations into its context (the
    worker), while the scoring thread keeps scoring: one at a time, the same numbers."""
    import threading

    image = IMAGES[0]
    is_image = [row[FIXATION_COLUMNS.index("image")] == image for row in rows]
    mine = [row for row, own in zip(rows, is_image) if own]
    others = [row for row, own in zip(rows, is_image) if not own]
    scorer = _scorer()
    scorer.summary(_input(others[:10], image, 1), _context(others[:10]))
    engine = scorer._engines[image]
    errors: list[BaseException] = []

    def score_meanwhile():
        try:
            for k in range(1, 6):
                scorer.summary(_input(mine[:k] + others[:10], image, 1), _context(others[:10]))
        except BaseException as error:  # reported below
            errors.append(error)

    thread = threading.Thread(target=score_meanwhile)
    thread.start()
    for version, n in enumerate(range(20, len(others), 40), start=2):
        scorer.prepare_in_background(_input(mine[:5] + others[:n], image, version), _context(others[:n]))
    thread.join()
    assert scorer.wait_prepared(timeout_s=60) and not errors
    final = mine[:5] + others
    scorer.prepare_in_background(_input(final, image, 99), _context(final))
    assert scorer.wait_prepared(timeout_s=60)
    assert scorer._engines[image] is engine and engine.context_version == 99  # caught up, not rebuilt
    scorer.ceiling(_input(final, image, 99), _context(final))  # the live scoring's third step, kept
    _assert_same_scores(
        scorer.summary(_input(final, image, 99), _context(final)),
        _scorer().summary(_input(final, image, 99), _context(final)),
    )


@pytest.mark.timeout(120)
def test_health_times_scorings_of_fixations_only(osie_fixations_path, osie_stimuli, tmp_path):
    """The health's scoring p50/p99 time scorings of fixations: readying the engine of a trial's
    image without fixations counted as one too (~0 ms once ready: 0.0 ms shown mid-session)."""
    stimuli = StimulusSet(osie_stimuli)
    hub = LiveHub(stimuli, tmp_path / "server").start()
    try:
        sender = Sender(hub.endpoint, tmp_path / "rig.msgpack", heartbeat_interval_s=None)
        start = SessionStart(
            participant="P01", tracker="simulated", n_trials=3, screen_width_px=1920, screen_height_px=1080,
            wall_time_s=time.time(),
        )  # fmt: skip
        sender.send(start)
        geometry = DisplayGeometry.fit(*stimuli.size("1001"))
        for trial in range(3):  # three trials of an image without fixations
            onset_ms = 1000.0 * trial
            last = sender.send(
                TrialStart(
                    trial=trial, image="1001", onset_tracker_ms=onset_ms, onset_session_ms=onset_ms,
                    stimulus_duration_ms=500.0, **geometry.to_dict(),
                )
            )  # fmt: skip
            pump(None, [sender], until=lambda: sender.acked_seq == last.seq)  # noqa: B023 — called now
            pump(None, [], until=lambda: hub.progress()["settled"], timeout_s=30)
        sender.close()
        assert hub.health().score_ms.n == 0
        osie = read_osie(osie_fixations_path, images=["1001"])
        stream(timed(osie[osie["participant"] == "s01"]), stimuli, hub.endpoint, tmp_path)
        pump(None, [], until=lambda: hub.progress()["settled"] and hub.health().score_ms.n > 0, timeout_s=30)
        score_ms = hub.health().score_ms
        assert score_ms.p50 is not None and score_ms.p50 > 0.0
    finally:
        hub.stop()
