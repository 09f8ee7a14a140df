"""lookwhere.protocol: every record kind round-trips; every schema error is caught with its reason.

Oracles: the hand-written valid records of ``_samples.FIELDS``, and each error case edits one of
them in one way whose expected rejection reason is written next to it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid
from typing import Any

import msgpack
import pytest

from lookwhere import protocol
from lookwhere.notes import OperatorNote
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


@pytest.mark.parametrize("kind", sorted(protocol.RECORD_TYPES))
def test_stamp_numbers_a_record_as_encode_would(kind):
    """The sender's path (a record built without session and seq, stamped) gives the frames that
    :func:`protocol.encode` gives for the numbered record (oracle)."""
    bare = protocol.RECORD_TYPES[kind](**FIELDS[kind])
    assert (bare.session, bare.seq) == ("", 0)
    stamped, frames = protocol.stamp(bare, session=SESSION, seq=7)
    assert type(stamped) is type(bare) and (stamped.session, stamped.seq) == (SESSION, 7)
    assert frames == protocol.encode(dataclasses.replace(bare, session=SESSION, seq=7))
    with pytest.raises(protocol.ProtocolError, match="session"):
        protocol.encode(bare)  # unnumbered: refused on the wire


def test_fixation_record_is_the_fixation_plus_clock_times():
    """FixationRecord is written out by hand: its fields must stay Fixation's (same names, same
    types, same order after the record's own ``session``) plus the four clock times."""
    clock = {name: "float" for name in ("start_tracker_ms", "end_tracker_ms", "start_session_ms", "end_session_ms")}
    fixation_types = {f.name: f.type for f in dataclasses.fields(Fixation)}
    wire_types = {f.name: f.type for f in dataclasses.fields(protocol.FixationRecord)}
    assert wire_types == {**fixation_types, "seq": "int", "v": "int", **clock}
    order = [name for name in wire_types if name in fixation_types]
    assert order == ["session", *(name for name in fixation_types if name != "session")]
    record = protocol.FixationRecord(session=SESSION, seq=1, **FIELDS["fixation"])
    fixation = record.to_fixation()
    assert isinstance(fixation, Fixation)
    assert fixation.session == SESSION and fixation.x_display_px == 960.5 and fixation.duration_ms == 269.0
    # and back: the wire record of a fixation, its session left to the sender
    rebuilt = protocol.FixationRecord.of(
        fixation,
        start_tracker_ms=record.start_tracker_ms,
        end_tracker_ms=record.end_tracker_ms,
        onset_session_ms=record.start_session_ms - record.start_ms,
    )
    assert (rebuilt.session, rebuilt.seq) == ("", 0)
    assert protocol.encode(dataclasses.replace(rebuilt, session=SESSION, seq=1)) == protocol.encode(record)


def test_trial_start_carries_the_display_geometry():
    record = protocol.TrialStart(session=SESSION, seq=1, **FIELDS["trial_start"])
    assert record.geometry() == GEOMETRY
    assert (GEOMETRY.display_width_px, GEOMETRY.display_height_px) == (1440, 1080)  # 800×600 at 1.8


def test_integers_are_accepted_for_float_fields():
    back = protocol.decode(b"mic_level", _pack(record_map("mic_level", 1, rms_dbfs=-30)))
    assert isinstance(back, protocol.MicLevel)
    assert back.rms_dbfs == -30.0 and type(back.rms_dbfs) is float


CASES = [
    # (topic, payload maker, expected reason)
    (
        b"fixation",
        lambda: _pack({k: v for k, v in record_map("fixation", 1).items() if k != "x_display_px"}),
        "missing_field",
    ),
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
    # the fields added after the first release are checked like any other
    (b"heartbeat", lambda: _pack(record_map("heartbeat", 1, waiting="lunch")), "out_of_range"),
    (b"heartbeat", lambda: _pack(record_map("heartbeat", 1, waiting=1)), "wrong_type"),
    (b"heartbeat", lambda: _pack(record_map("heartbeat", 1, notes=-1)), "out_of_range"),
    (b"heartbeat", lambda: _pack(record_map("heartbeat", 1, notes=2.0)), "wrong_type"),
    (b"trial_end", lambda: _pack(record_map("trial_end", 1, overrun="yes")), "wrong_type"),
    (b"trial_end", lambda: _pack(record_map("trial_end", 1, display_duration_ms=-5.0)), "out_of_range"),
    (b"trial_end", lambda: _pack(record_map("trial_end", 1, dropped_frames=-1)), "out_of_range"),
    (b"trial_end", lambda: _pack(record_map("trial_end", 1, dropped_frames=None)), "wrong_type"),  # servers sum it
    (b"trial_end", lambda: _pack(record_map("trial_end", 1, frame_timing="gsync")), "out_of_range"),
    (
        b"trial_end",
        lambda: _pack({k: v for k, v in record_map("trial_end", 1).items() if k != "dropped_frames"}),
        "missing_field",
    ),  # dropped_frames was there from the start: still required
    (b"session_end", lambda: _pack(record_map("session_end", 1, frame_timing="maybe")), "out_of_range"),
    (b"session_end", lambda: _pack(record_map("session_end", 1, overruns=None)), "wrong_type"),
    (b"mic_audio", lambda: _pack(record_map("mic_audio", 1, pcm=b"\x00\x01\x02")), "out_of_range"),  # half a sample
    (b"mic_audio", lambda: _pack(record_map("mic_audio", 1, pcm="\x00\x01")), "wrong_type"),  # text, not bin
    (b"mic_audio", lambda: _pack(record_map("mic_audio", 1, rate_hz=0)), "out_of_range"),
    (b"fixation", lambda: b"\xc1garbage", "not_msgpack"),
    (b"fixation", lambda: _pack(record_map("fixation", 1)) + b"\x00", "not_msgpack"),  # trailing data
    (b"fixation", lambda: _pack([1, 2, 3]), "not_a_map"),
    (
        b"fixation",
        lambda: _pack({**record_map("fixation", 1), "image": "x" * (protocol.MAX_MESSAGE_BYTES + 1)}),
        "oversize",
    ),
]


@pytest.mark.parametrize(("topic", "make_payload", "reason"), CASES)
def test_schema_errors_name_their_reason(topic, make_payload, reason):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.decode(topic, make_payload())
    assert info.value.reason == reason
    assert info.value.reason in protocol.REJECT_REASONS


def test_not_measurable_and_not_waiting():
    for kind in ("trial_end", "session_end"):
        back = protocol.decode(kind.encode(), _pack(record_map(kind, 1, frame_timing="no_vsync", dropped_frames=0)))
        assert isinstance(back, protocol.TrialEnd | protocol.SessionEnd)
        assert (back.frame_timing, back.dropped_frames) == ("no_vsync", 0)
    back = protocol.decode(b"heartbeat", _pack(record_map("heartbeat", 1, waiting=None)))
    assert isinstance(back, protocol.Heartbeat) and back.waiting is None


#: What a map written before the fields were added reads as (oracle: the documented defaults).
OLD_DEFAULTS: dict[str, dict[str, Any]] = {
    "trial_end": {"display_duration_ms": math.nan, "overrun": None, "frame_timing": "unknown"},
    "session_end": {"frame_timing": "unknown", "refresh_period_ms": math.nan, "dropped_frames": 0, "overruns": 0},
    "heartbeat": {"waiting": None, "notes": None},
    "trial_start": {"next_image": None},
    "session_start": {
        "first_image": None,
        "screen_width_cm": float("nan"),
        "viewing_distance_cm": float("nan"),
        "viewing_default": None,
    },
    "fixation": {"truncated": False},
}


def test_added_fields_are_exactly_the_optional_ones():
    added = {kind: set(cls.added) for kind, cls in protocol.RECORD_TYPES.items() if cls.added}
    assert added == {kind: set(fields) for kind, fields in OLD_DEFAULTS.items()}


@pytest.mark.parametrize("kind", sorted(OLD_DEFAULTS))
def test_an_older_senders_map_reads_with_the_added_fields_unknown(kind):
    old = {k: v for k, v in record_map(kind, 3).items() if k not in OLD_DEFAULTS[kind]}
    back = protocol.decode(kind.encode(), _pack(old))
    for name, default in OLD_DEFAULTS[kind].items():
        got = getattr(back, name)
        assert got == default or (math.isnan(default) and math.isnan(got)), name
    for name in old.keys() - {"kind"}:
        got = getattr(back, name)
        assert got == old[name] or (isinstance(got, float) and math.isnan(got) and math.isnan(old[name])), name


def test_an_older_journal_is_still_readable(tmp_path):
    """A journal of the first release (maps without the added fields), as a resumed sender or a
    restarted server reads it: every record validates and re-encodes with the new fields."""
    old_maps = [
        {k: v for k, v in record_map(kind, seq).items() if k not in OLD_DEFAULTS[kind]}
        for seq, kind in enumerate(("heartbeat", "trial_end", "session_end"), 1)
    ]
    path = tmp_path / "old.journal"
    path.write_bytes(b"".join(_pack(data) for data in old_maps))
    records = [protocol.validate_map(data) for _, data in protocol.read_journal(path)]
    assert [r.seq for r in records] == [1, 2, 3]
    for record in records:  # re-encoded with every field, stable from then on
        topic, payload = protocol.encode(record)
        assert set(msgpack.unpackb(payload)) == set(record_map(record.kind, 1))
        assert protocol.encode(protocol.decode(topic, payload)) == (topic, payload)
    assert isinstance(records[1], protocol.TrialEnd)
    assert records[1].dropped_frames == 0 and records[1].overrun is None


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


def test_notes_round_trip_and_are_checked():
    """``ctl.note``: the note as ``notes.jsonl`` holds it, with its place among the session's notes."""
    note = OperatorNote(session=SESSION, participant="P07", trial=2, image="1003", kind="exclude_trial",
                        text="looked away", unix_s=1_790_000_000.25)  # fmt: skip
    topic, payload = protocol.encode_note(note, 3)
    assert topic == protocol.TOPIC_NOTE and protocol.decode_note(payload) == (SESSION, 3, note)
    data = msgpack.unpackb(payload)
    assert data["note"] == json.loads(note.to_json())  # the notes.jsonl object, nothing else
    bad = [
        ({**data, "index": -1}, "out_of_range"),
        ({**data, "note": {**data["note"], "kind": "sneezed"}}, "out_of_range"),
        ({**data, "note": {**data["note"], "session": str(uuid.UUID(int=7))}}, "out_of_range"),  # another's
        ({**data, "note": "looked away"}, "wrong_type"),
        ({k: v for k, v in data.items() if k != "index"}, "missing_field"),
        ({**data, "v": 2}, "wrong_version"),
    ]
    for changed, reason in bad:
        with pytest.raises(protocol.ProtocolError) as info:
            protocol.decode_note(_pack(changed))
        assert info.value.reason == reason, changed


def test_read_journal_stops_at_a_truncated_tail(tmp_path):
    payloads = [
        protocol.encode(protocol.Heartbeat(session=SESSION, seq=i, **FIELDS["heartbeat"]))[1] for i in (1, 2, 3)
    ]
    path = tmp_path / "j.msgpack"
    path.write_bytes(b"".join(payloads)[:-5])
    entries = list(protocol.read_journal(path))
    assert [data["seq"] for _, data in entries] == [1, 2]
    assert entries[-1][0] == len(payloads[0]) + len(payloads[1])
    # read on from an offset: the offsets stay the file's
    later = list(protocol.read_journal(path, start=entries[0][0]))
    assert later == entries[1:]


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
