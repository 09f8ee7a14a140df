"""The live state equals the offline analysis on the same fixations.

Oracle: :func:`analysis.offline.run_analysis` (``--dataset session``) on a ``fixations.csv`` holding
the very fixations that were streamed — real OSIE fixations of three images by three observers
(one session each), sent by the experiment's :class:`experiment.sender.Sender` to a real
:class:`server.receiver.Receiver`, scored with the baselines and a small map store. Heatmaps and
deterministic scores agree to 1e-9; the seeded random AUCs agree exactly (same seed, same functions).
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from analysis.readers import read_osie
from analysis.scoring_config import ScoringConfig
from lookwhere import protocol
from lookwhere.notes import NoteKind, OperatorNote
from server.notes import NoteBook
from server.receiver import Receiver
from server.state import Change, LiveState
from stimuli.geometry import DisplayGeometry
from stimuli.sets import StimulusSet
from tests.protocol._samples import FIELDS
from tests.server._sessions import (
    IMAGES,
    MAPS,
    OBSERVERS,
    RANDOM_METRICS,
    STIMULUS_MS,
    offline_analysis,
    small_store,
    stream,
    timed,
)


@pytest.fixture(scope="module")
def streamed(osie_fixations_path, osie_stimuli, tmp_path_factory):
    """The streamed experiment: live state, server data folder, offline result."""
    tmp_path = tmp_path_factory.mktemp("state")
    stimuli = StimulusSet(osie_stimuli)
    osie = read_osie(osie_fixations_path, images=IMAGES)
    table = timed(osie[osie["participant"].isin(OBSERVERS)])
    with Receiver(tmp_path / "server") as receiver:
        records, sent = stream(table, stimuli, receiver.endpoint, tmp_path, receiver=receiver)
    store = small_store(tmp_path / "maps")
    state = LiveState(stimuli, maps=store, scoring=ScoringConfig(seed=7))
    changed = state.apply_all(records)

    offline = offline_analysis(sent, osie_stimuli, store.path, tmp_path)
    return dict(
        state=state,
        changed=changed,
        records=records,
        data=tmp_path / "server",
        stimuli=stimuli,
        store=store,
        offline=offline,
        sent=sent,
    )


def test_live_heatmaps_and_scores_equal_offline(streamed):
    state, offline = streamed["state"], streamed["offline"]
    assert streamed["changed"] == set(IMAGES)
    assert state.image_ids == sorted(IMAGES)
    assert state.ignored == {}
    assert len(state.fixations()) == len(streamed["sent"])
    _assert_equal_offline(state, offline)


def _assert_equal_offline(state: LiveState, offline) -> None:
    """Heatmaps and deterministic scores to 1e-9, the seeded random AUCs exactly."""
    with np.load(offline.files["heatmaps"]) as expected:
        assert sorted(expected.files) == sorted(IMAGES)
        for image in IMAGES:
            np.testing.assert_allclose(state.heatmap(image), expected[image], rtol=0, atol=1e-9)

    live = pd.DataFrame(
        [
            {"image": image, "map": name, "metric": metric, "value": value}
            for image in IMAGES
            for name, values in state.scores(image).items()
            for metric, value in values.items()
        ]
    )
    merged = offline.scores.merge(
        live, on=["image", "map", "metric"], how="outer", suffixes=("_offline", "_live"), indicator=True
    )
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    assert set(merged["map"]) == MAPS
    assert len(merged) == len(IMAGES) * len(MAPS) * len(state.metrics)
    deterministic = ~merged["metric"].isin(RANDOM_METRICS) | (merged["map"] == "human_loso")
    np.testing.assert_allclose(
        merged.loc[deterministic, "value_live"], merged.loc[deterministic, "value_offline"], rtol=0, atol=1e-9
    )
    random_rows = merged[~deterministic]
    assert set(state.metrics) >= RANDOM_METRICS
    assert len(random_rows) == len(IMAGES) * (len(MAPS) - 1) * len(RANDOM_METRICS)
    # equal, NaN included (the constant controls have no AUC-Borji)
    np.testing.assert_array_equal(random_rows["value_live"].to_numpy(), random_rows["value_offline"].to_numpy())


def test_trials_excluded_by_notes_score_as_analyze_with_the_notes(streamed, osie_stimuli, tmp_path):
    """Oracle: ``analyze --dataset session --notes DATA_DIR`` (run_analysis with the server's notes)
    on the sessions sent; the excluded trial's fixations counted with pandas."""
    sent = streamed["sent"]
    session = sent["session"].unique()[1]  # the second observer's
    book = NoteBook(tmp_path / "server")
    notes: list[tuple[int, NoteKind]] = [(1, "exclude_trial"), (0, "exclude_trial"), (0, "keep_trial")]
    for trial, kind in notes:  # trial 0's exclusion undone
        book.add(OperatorNote(session=session, participant=OBSERVERS[1], trial=trial, kind=kind, unix_s=1e9 + trial))
    assert book.excluded(session) == [1]
    dropped = sent[(sent["session"] == session) & (sent["trial"] == 1)]
    offline = offline_analysis(sent, osie_stimuli, streamed["store"].path, tmp_path, notes_dir=tmp_path / "server")

    state = streamed["state"].copy()  # the notes come after the trial
    assert state.exclude_trials(session, book.excluded(session)) == set(dropped["image"])
    assert len(state.fixations()) == len(sent) - len(dropped) > 0
    _assert_equal_offline(state, offline)
    assert state.exclude_trials(session, book.excluded(session)) == set()  # nothing new
    # the notes come first (X pressed while the trial runs): its fixations are left out as they arrive
    early = LiveState(streamed["stimuli"], maps=streamed["store"], scoring=ScoringConfig(seed=7))
    early.exclude_trials(session, [1])
    early.apply_all(streamed["records"])
    _assert_equal_offline(early, offline)
    # a "keep trial" note brings it back
    assert state.exclude_trials(session, []) == set(dropped["image"])
    _assert_equal_offline(state, streamed["offline"])


def test_participant_heatmap_is_the_current_participants_fixations(streamed):
    state = streamed["state"]
    assert state.participant == OBSERVERS[-1] and state.session_ended == "completed"
    rows = state.image_fixations("1001", participant=OBSERVERS[-1])
    assert len(rows) > 0 and set(rows["participant"]) == {OBSERVERS[-1]}
    own = state.heatmap("1001", participant=OBSERVERS[-1])
    pooled = state.heatmap("1001")
    # Prenormalised to max 1 per map, so the participant's map is not a share of the pooled one:
    # it must differ, and must be zero wherever no kernel of theirs reaches (the oracle: more
    # participants add mass, never remove it).
    assert own.shape == pooled.shape == (600, 800)
    assert not np.allclose(own, pooled)
    assert np.all(pooled[own > 0] > 0)


def test_restart_from_receiver_data_equals_the_live_state(streamed):
    state = streamed["state"]
    rebuilt = LiveState.from_receiver_data(
        streamed["data"], streamed["stimuli"], maps=streamed["store"], scoring=ScoringConfig(seed=7)
    )
    pd.testing.assert_frame_equal(rebuilt.fixations(), state.fixations())
    for image in IMAGES:
        np.testing.assert_array_equal(rebuilt.heatmap(image), state.heatmap(image))
        # equal, NaN included (the constant controls have undefined scores)
        pd.testing.assert_frame_equal(pd.DataFrame(rebuilt.scores(image)), pd.DataFrame(state.scores(image)))
    assert rebuilt.session_summary() == {**state.session_summary(), "n_records": len(streamed["records"])}


def test_summaries_are_json_ready(streamed):
    import json

    state = streamed["state"]
    summary = json.loads(json.dumps(state.session_summary()))
    assert summary["n_sessions"] == 3 and summary["n_participants"] == 3
    assert summary["images"] == sorted(IMAGES) and summary["ignored"] == {}
    image = json.loads(json.dumps(state.image_summary("1002")))
    sent = streamed["sent"]
    assert image["n_fixations"] == int((sent["image"] == "1002").sum())
    # Fixations overrunning the 2 s display are dropped by the display filter (within_display_only).
    in_display = sent[(sent["image"] == "1002") & (sent["end_ms"] <= STIMULUS_MS)]
    assert image["n_fixations_used"] == len(in_display) < image["n_fixations"]
    assert image["heatmap_params"]["sigma_px"] == 20.0
    assert set(image["scores"]) == MAPS
    assert set(image["scores"]["center_bias"]) == set(state.metrics)


SESSION = str(uuid.UUID(int=99))


def _record(kind: str, seq: int, **changes) -> protocol.Record:
    return protocol.RECORD_TYPES[kind](session=SESSION, seq=seq, **{**FIELDS[kind], **changes})


def test_unknown_image_and_bad_geometry_are_counted_not_fatal(osie_stimuli):
    state = LiveState(StimulusSet(osie_stimuli), scoring=ScoringConfig(metrics=("cc",)))
    geometry = DisplayGeometry.fit(800, 600).to_dict()
    fixation = dict(image="1001", x_image_px=400.0, y_image_px=300.0)
    records = [
        _record("fixation", 1, trial=0, **fixation),  # before the session start
        _record("session_start", 2),
        _record("trial_start", 3, trial=0, image="no_such_image", **geometry),
        _record("fixation", 4, trial=0, image="no_such_image"),
        _record("trial_start", 5, trial=1, image="1001", **{**geometry, "display_width_px": 5000}),
        _record("fixation", 6, trial=1, **fixation),
        _record("trial_start", 7, trial=2, image="1001", **{**geometry, "image_width_px": 801}),
        _record("trial_start", 8, trial=3, image="1001", **geometry),
        _record("fixation", 9, trial=3, **{**fixation, "image": "1002"}),
        _record("fixation", 10, trial=3, **fixation),
    ]
    changed = [state.apply(record).images for record in records]
    assert changed[-1] == {"1001"} and not any(changed[:-1])
    assert state.ignored == {
        "unknown_session": 1,
        "unknown_image": 1,
        "no_trial": 2,
        "bad_geometry": 2,
        "image_mismatch": 1,
    }
    assert len(state.fixations()) == 1 and state.image_ids == ["1001"]
    # one participant: no human_loso
    assert set(state.scores("1001")) == {"center_bias", "dataset_prior", "blank", "uniform"}
    with pytest.raises(KeyError, match="no fixation yet"):
        state.heatmap("1002")


def test_a_corrupt_journal_entry_is_counted_at_restart(osie_stimuli, tmp_path):
    import msgpack

    stream = tmp_path / "stream"
    stream.mkdir()
    good = protocol.record_map(_record("session_start", 1))
    bad = {
        **protocol.record_map(_record("trial_start", 2, image="1001", **DisplayGeometry.fit(800, 600).to_dict())),
        "trial": "three",
    }
    (stream / f"{SESSION}.msgpack").write_bytes(msgpack.packb(good) + msgpack.packb(bad))
    state = LiveState.from_receiver_data(tmp_path, StimulusSet(osie_stimuli))
    assert state.ignored == {"malformed_journal": 1}
    assert state.session_summary()["participant"] == FIELDS["session_start"]["participant"]


def test_an_aborted_run_of_a_trial_is_dropped(osie_stimuli):
    """The operator ended trial 0's image early: the experiment keeps none of that run and runs
    the trial again, so the state keeps only the second run (oracle: the records kept on disk)."""
    state = LiveState(StimulusSet(osie_stimuli), scoring=ScoringConfig(metrics=("cc",)))
    geometry = DisplayGeometry.fit(800, 600).to_dict()
    fixation = dict(trial=0, image="1001", y_image_px=300.0)
    records = [
        _record("session_start", 1),
        _record("trial_start", 2, trial=0, image="1001", **geometry),
        _record("fixation", 3, **fixation, x_image_px=100.0),
        _record("fixation", 4, **fixation, x_image_px=200.0),
        _record("trial_end", 5, trial=0, image="1001", aborted=True),
        _record("trial_start", 6, trial=0, image="1001", **geometry),
        _record("fixation", 7, **fixation, x_image_px=300.0),
        _record("trial_end", 8, trial=0, image="1001", aborted=False),
        _record("trial_start", 9, trial=1, image="1002", **geometry),
        _record("fixation", 10, trial=1, image="1002", x_image_px=50.0, y_image_px=60.0),
        _record("trial_end", 11, trial=1, image="1002", aborted=False),
    ]
    changed = [state.apply(record).images for record in records]
    assert changed[4] == {"1001"}  # the retraction changes the image
    assert state.fixations()["x_image_px"].tolist() == [300.0, 50.0]
    assert state.image_fixations("1001")["x_image_px"].tolist() == [300.0]


def test_fixations_take_the_measured_display_time_at_trial_end(osie_stimuli):
    """The stream carries the nominal display time with each fixation, the session file the
    measured one (offset − onset): a fixation ending in the 6 ms by which a late offset exceeds
    the nominal 1000 ms is dropped by the display filter until the trial ends, then kept, as
    offline (oracle: ``select_fixations`` on the rows the experiment writes)."""
    state = LiveState(StimulusSet(osie_stimuli), scoring=ScoringConfig(metrics=("cc",)))
    geometry = DisplayGeometry.fit(800, 600).to_dict()
    timing = dict(stimulus_duration_ms=1000.0, start_ms=900.0, end_ms=1004.0, duration_ms=104.0)
    records = [
        _record("session_start", 1),
        _record(
            "trial_start", 2, trial=0, image="1001", onset_session_ms=5000.0, stimulus_duration_ms=1000.0, **geometry
        ),
        _record(
            "fixation",
            3,
            trial=0,
            image="1001",
            x_image_px=100.0,
            y_image_px=100.0,
            **{**timing, "start_ms": 100.0, "end_ms": 300.0, "duration_ms": 200.0},
        ),
        _record("fixation", 4, trial=0, image="1001", x_image_px=500.0, y_image_px=300.0, **timing),
    ]
    state.apply_all(records)
    assert state.image_fixations("1001")["x_image_px"].tolist() == [100.0]
    assert state.apply(
        _record("trial_end", 5, trial=0, image="1001", offset_session_ms=6006.0, aborted=False)
    ).images == {"1001"}
    assert state.fixations()["stimulus_duration_ms"].tolist() == [1006.0, 1006.0]
    assert state.image_fixations("1001")["x_image_px"].tolist() == [100.0, 500.0]


def test_a_run_cut_by_a_crash_is_dropped_when_the_trial_starts_again(osie_stimuli):
    """The experiment crashed during trial 0 (no trial_end) and ``--resume`` ran it again in the
    same session: the session's files hold only the second run, so the state does too; and an
    image whose only fixations were dropped is no longer analysed (offline never sees it)."""
    state = LiveState(StimulusSet(osie_stimuli), scoring=ScoringConfig(metrics=("cc",)))
    geometry = DisplayGeometry.fit(800, 600).to_dict()
    state.apply_all(
        [
            _record("session_start", 1),
            _record("trial_start", 2, trial=0, image="1001", **geometry),
            _record("fixation", 3, trial=0, image="1001", x_image_px=100.0, y_image_px=300.0),
            _record("trial_start", 4, trial=0, image="1002", **geometry),  # resumed: the order reshuffled
            _record("fixation", 5, trial=0, image="1002", x_image_px=300.0, y_image_px=300.0),
        ]
    )
    assert state.fixations()["x_image_px"].tolist() == [300.0]
    assert state.image_ids == ["1002"]
    with pytest.raises(KeyError, match="no fixation yet"):
        state.scores("1001")


def test_apply_says_what_changed_and_keeps_the_live_view(osie_stimuli):
    """One dispatch: each record is applied once and says what it changed; the live view (trial,
    its fixations, gaze, what the task waits for) follows. Oracle: the records, by hand."""
    state = LiveState(StimulusSet(osie_stimuli), scoring=ScoringConfig(metrics=("cc",)))
    geometry = DisplayGeometry.fit(800, 600)
    assert state.apply(_record("session_start", 1)) == Change(
        session=True,
        trial=True,
        trial_fixations=True,
        gaze=True,
        quality=True,  # the new session's quality panel, with its viewing geometry
        upcoming=FIELDS["session_start"]["first_image"],
    )
    ignored = state.apply(_record("trial_start", 2, trial=0, image="no_such_image", **geometry.to_dict()))
    assert ignored == Change(session=True) and state.live.trial is None
    started = state.apply(_record("trial_start", 3, trial=1, image="1001", **geometry.to_dict()))
    assert started.started == "1001" and state.live.trial is not None and state.live.trial.image == "1001"
    assert started.upcoming == FIELDS["trial_start"]["next_image"]  # its maps are prepared meanwhile
    fixation = state.apply(_record("fixation", 4, trial=1, image="1001", x_image_px=400.0, y_image_px=300.0))
    assert fixation == Change(session=True, trial_fixations=True, images=frozenset({"1001"}))
    assert [f.x_image_px for f in state.live.fixations] == [400.0]
    x_display, y_display = (float(v[0]) for v in geometry.image_to_display([200.0], [100.0]))
    assert state.apply(_record("gaze", 5, x_display_px=x_display, y_display_px=y_display)) == Change(gaze=True)
    assert state.live.gaze is not None
    assert (state.live.gaze.x_image_px, state.live.gaze.y_image_px) == pytest.approx((200.0, 100.0))
    beat = state.apply(_record("heartbeat", 6, waiting="drift_correction"))
    # the notes the experiment holds: the hub sends it the others
    assert beat == Change(session=True, sent_wall_time_s=FIELDS["heartbeat"]["wall_time_s"], notes_held=(SESSION, 2))
    again = state.apply(_record("heartbeat", 7, waiting="drift_correction", notes=None))
    assert not again.session and again.notes_held is None  # no change of waiting; a sender taking no notes
    aborted = state.apply(_record("trial_end", 8, trial=1, image="1001", aborted=True))
    assert aborted.images == {"1001"} and state.live.fixations == []
    assert state.live.trial is not None and state.live.trial.ended and state.live.trial.aborted
    assert state.live.applied_seq == {SESSION: 8}
