"""lookwhere.protocol: every record kind round-trips; every schema error is caught with its reason.

Oracles: the hand-written valid records of ``_samples.FIELDS``, and each error case edits one of
them in one way whose expected rejection reason is written next to it.
"""

from __future__ import annotations

import dataclasses
import math
import time

import msgpack
import pytest

from lookwhere import protocol
from lookwhere.records import Fixation
from tests.protocol._samples import FIELDS, GEOMETRY, SESSION, record_map


def _pack(data) -> bytes:
    return msgpack.packb(data, use_bin_type=True)


@pytest.mark.parametrize("kind", sorted(protocol.RECORD_TYPES))
def test_every_kind_round_trips(kind):
    record = protocol.RECORD_TYPES[kind](session=SESSION, seq=7, **FIELDS[kind])
    topic, payload = protocol.encode(record)
    assert topic == kind.encode()
    back = protocol.decode(topic, payload)
    assert type(back) is type(record)
    assert (back.session, back.seq, back.v) == (SESSION, 7, protocol.SCHEMA_VERSION)
    for name, value in FIELDS[kind].items():
        got = getattr(back, name)
        assert got == value or (math.isnan(value) and math.isnan(got)), name
    assert protocol.encode(back) == (topic, payload)  # byte-identical re-encoding


def test_fixation_record_is_the_fixation_plus_clock_times():
    fixation_fields = [f.name for f in dataclasses.fields(Fixation)]
    wire_fields = {f.name for f in dataclasses.fields(protocol.FixationRecord)}
    assert wire_fields == set(fixation_fields) | {"seq", "v", "start_tracker_ms", "end_tracker_ms",
                                                  "start_session_ms", "end_session_ms"}
    record = protocol.FixationRecord(session=SESSION, seq=1, **FIELDS["fixation"])
    fixation = record.to_fixation()
    assert isinstance(fixation, Fixation)
    assert fixation.session == SESSION and fixation.x_display_px == 960.5 and fixation.duration_ms == 269.0


def test_trial_start_carries_the_display_geometry():
    record = protocol.TrialStart(session=SESSION, seq=1, **FIELDS["trial_start"])
    assert record.geometry() == GEOMETRY
    assert (GEOMETRY.display_width_px, GEOMETRY.display_height_px) == (1440, 1080)  # 800×600 at 1.8


def test_integers_are_accepted_for_float_fields():
    back = protocol.decode(b"mic_level", _pack(record_map("mic_level", 1, rms_dbfs=-30)))
    assert back.rms_dbfs == -30.0 and type(back.rms_dbfs) is float


CASES = [
    # (topic, payload maker, expected reason)
    (b"fixation", lambda: _pack({k: v for k, v in record_map("fixation", 1).items() if k != "x_display_px"}),
     "missing_field"),
    (b"fixation", lambda: _pack(record_map("fixation", 1, extra=1)), "unknown_field"),
    (b"fixation", lambda: _pack(record_map("fixation", 1, x_display_px="960")), "wrong_type"),
    (b"fixation", lambda: _pack(record_map("fixation", 1, trial=3.0)), "wrong_type"),
    (b"fixation", lambda: _pack(record_map("fixation", True)), "wrong_type"),  # bool is not an int
    (b"fixation", lambda: _pack(record_map("fixation", 1, x_display_px=float("nan"))), "out_of_range"),
    (b"fixation", lambda: _pack(record_map("fixation", 1, y_display_px=float("inf"))), "out_of_range"),
    (b"fixation", lambda: _pack(record_map("fixation", 1, x_display_px=1e8)), "out_of_range"),  # lost track
    (b"fixation", lambda: _pack(record_map("fixation", 1, duration_ms=-1.0)), "out_of_range"),
    (b"fixation", lambda: _pack(record_map("fixation", 1, eye="B")), "out_of_range"),
    (b"fixation", lambda: _pack(record_map("fixation", 0)), "out_of_range"),  # seq starts at 1
    (b"fixation", lambda: _pack(record_map("fixation", 1, session="not-a-uuid")), "out_of_range"),
    (b"gaze", lambda: _pack(record_map("gaze", 1, pupil=float("inf"))), "out_of_range"),
    (b"fixation", lambda: _pack(record_map("fixation", 1, v=2)), "wrong_version"),
    (b"fixation", lambda: _pack(record_map("fixation", 1, v="1")), "wrong_version"),
    (b"saccade", lambda: _pack(record_map("fixation", 1)), "unknown_kind"),
    (b"gaze", lambda: _pack(record_map("fixation", 1)), "kind_mismatch"),
    (b"fixation", lambda: b"\xc1garbage", "not_msgpack"),
    (b"fixation", lambda: _pack(record_map("fixation", 1)) + b"\x00", "not_msgpack"),  # trailing data
    (b"fixation", lambda: _pack([1, 2, 3]), "not_a_map"),
    (b"fixation", lambda: _pack({**record_map("fixation", 1), "image": "x" * (protocol.MAX_MESSAGE_BYTES + 1)}),
     "oversize"),
]


@pytest.mark.parametrize(("topic", "make_payload", "reason"), CASES)
def test_schema_errors_name_their_reason(topic, make_payload, reason):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.decode(topic, make_payload())
    assert info.value.reason == reason
    assert info.value.reason in protocol.REJECT_REASONS


def test_encode_rejects_a_bad_record_at_the_sender():
    record = protocol.GazeSample(session=SESSION, seq=1, **{**FIELDS["gaze"], "x_display_px": float("nan")})
    with pytest.raises(protocol.ProtocolError, match="x_display_px must not be NaN"):
        protocol.encode(record)


def test_control_messages_round_trip_and_are_checked():
    for topic in (protocol.TOPIC_HELLO, protocol.TOPIC_ACK, protocol.TOPIC_REPLAY):
        assert protocol.decode_control(*protocol.encode_control(topic, SESSION, 41)) == (SESSION, 41)
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.decode_control(protocol.TOPIC_ACK, _pack({"v": 1, "session": SESSION, "seq": -1}))
    assert info.value.reason == "out_of_range"
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.decode_control(b"fixation", _pack({}))
    assert info.value.reason == "unknown_kind"


def test_read_journal_stops_at_a_truncated_tail(tmp_path):
    payloads = [protocol.encode(protocol.Heartbeat(session=SESSION, seq=i, **FIELDS["heartbeat"]))[1]
                for i in (1, 2, 3)]
    path = tmp_path / "j.msgpack"
    path.write_bytes(b"".join(payloads)[:-5])
    entries = list(protocol.read_journal(path))
    assert [data["seq"] for _, data in entries] == [1, 2]
    assert entries[-1][0] == len(payloads[0]) + len(payloads[1])


def test_validation_is_fast():
    """Decode + validate of one fixation; the sender's budget is a few tens of µs per record."""
    topic, payload = protocol.encode(protocol.FixationRecord(session=SESSION, seq=1, **FIELDS["fixation"]))
    n = 5000
    start = time.perf_counter()
    for _ in range(n):
        protocol.decode(topic, payload)
    per_record_us = (time.perf_counter() - start) / n * 1e6
    print(f"decode+validate fixation: {per_record_us:.1f} µs")
    assert per_record_us < 100  # ~10 µs measured on the 2-core CI machine
