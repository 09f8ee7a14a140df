"""The server's quality log: levels against the lab's thresholds, the drift strip and its alarm, a
repeated trial's latest check, unmeasured offsets. Oracle: the records, by hand."""

from __future__ import annotations

from lookwhere import protocol
from lookwhere.quality import QualityThresholds
from server.quality import QualityLog
from tests.protocol._samples import FIELDS, SESSION


def _record(kind: str, seq: int, **changes) -> protocol.Record:
    return protocol.RECORD_TYPES[kind](session=SESSION, seq=seq, **{**FIELDS[kind], **changes})


def test_levels_alarm_and_latest_per_trial_follow_the_records():
    log = QualityLog(QualityThresholds(validation_good_deg=0.4, validation_poor_deg=0.8, drift_alarm_deg=0.5))
    assert log.apply(_record("session_start", 1)) and not log.apply(_record("heartbeat", 2))
    log.apply(_record("validation", 3, eye="L", avg_error_deg=0.41))  # just above the lab's 0.4°
    log.apply(_record("validation", 4, eye="R", avg_error_deg=0.9))
    for seq, (trial, offset) in enumerate([(0, 0.6), (1, float("nan")), (2, 0.7), (3, 0.8), (3, 0.2)], start=5):
        log.apply(_record("drift_check", seq, trial=trial, offset_deg=offset))  # trial 3 repeated: 0.2° kept
    log.apply(_record("trial_quality", 20, trial=0, track_loss=float("nan"), samples=0))
    section = log.section(SESSION)
    assert [(v.eye, v.level) for v in section.validations] == [("L", "fair"), ("R", "poor")]
    assert section.n_validations == 2
    assert [(d.trial, d.offset_deg, d.above, d.alarm) for d in section.drift] == [
        (0, 0.6, True, False),
        (1, None, False, False),  # not measured: breaks the run
        (2, 0.7, True, False),
        (3, 0.2, False, False),
    ]
    assert not section.alarm
    assert section.track_loss[0].track_loss is None
    assert section.viewing is not None and section.viewing.default is True
    assert section.thresholds["drift_alarm_deg"] == 0.5
    assert log.section(None).validations == [] and log.section(None).viewing is None


def test_two_offsets_above_in_a_row_sound_the_alarm_and_a_copy_is_independent():
    log = QualityLog()
    for seq, offset in enumerate((1.1, 1.2), start=1):
        log.apply(_record("drift_check", seq, trial=seq - 1, offset_deg=offset))
    copied = log.copy()
    log.apply(_record("drift_check", 9, trial=2, offset_deg=0.3))
    assert copied.section(SESSION).alarm and not log.section(SESSION).alarm
