"""One valid set of fields per record kind (hand-written, realistic values), for the tests."""

from __future__ import annotations

from lookwhere import protocol
from stimuli.geometry import DisplayGeometry

GEOMETRY = DisplayGeometry.fit(800, 600)  # the paper's ×2 does not fit 1080 rows: scale 1.8

#: record kind -> the record's own fields (everything but session, seq, v)
FIELDS: dict[str, dict] = {
    "session_start": dict(
        first_image="000123",
        participant="P07",
        tracker="simulated",
        n_trials=200,
        screen_width_px=1920,
        screen_height_px=1080,
        wall_time_s=1_790_000_000.5,
        screen_width_cm=53.1,
        viewing_distance_cm=70.0,
        viewing_default=True,
    ),
    "session_end": dict(
        reason="completed",
        n_trials=200,
        t_session_ms=1_234_567.0,
        frame_timing="vsync",
        refresh_period_ms=16.668,
        dropped_frames=12,
        overruns=1,
    ),
    "trial_start": dict(
        trial=3,
        image="000123",
        next_image="000124",
        onset_tracker_ms=5_000_100.0,
        onset_session_ms=61_000.0,
        stimulus_duration_ms=5000.0,
        **GEOMETRY.to_dict(),
    ),
    "trial_end": dict(
        trial=3,
        image="000123",
        offset_tracker_ms=5_005_100.0,
        offset_session_ms=66_000.0,
        n_fixations=17,
        dropped_frames=0,
        aborted=False,
        display_duration_ms=5008.3,
        overrun=False,
        frame_timing="vsync",
    ),
    "fixation": dict(
        participant="P07",
        trial=3,
        image="000123",
        eye="R",
        start_ms=212.0,
        end_ms=480.0,
        duration_ms=269.0,
        x_display_px=960.5,
        y_display_px=540.25,
        x_image_px=400.2777,
        y_image_px=300.1388,
        stimulus_duration_ms=5000.0,
        pupil=float("nan"),
        start_tracker_ms=5_000_312.0,
        end_tracker_ms=5_000_580.0,
        start_session_ms=61_212.0,
        end_session_ms=61_480.0,
    ),
    "gaze": dict(
        trial=3,
        t_tracker_ms=5_000_316.0,
        t_session_ms=61_216.0,
        eye="R",
        x_display_px=961.0,
        y_display_px=539.0,
        pupil=1480.0,
    ),
    "mic_level": dict(trial=3, t_session_ms=61_250.0, rms_dbfs=-31.5, peak_dbfs=-12.0, xruns=0),
    "mic_audio": dict(trial=3, mic_offset_ms=0.37, first_sample=4410, rate_hz=44100, pcm=bytes(range(256)) * 4),
    "heartbeat": dict(
        t_session_ms=61_300.0, wall_time_s=1_790_000_061.3, pending=4, waiting="drift_correction", notes=2
    ),
    # the values of a real host message: "!CAL VALIDATION HV9 LR LEFT  GOOD ERROR 0.41 avg. 0.64 max
    # OFFSET 0.35 deg. 12.5,9.6 pix." (cili/bino250.asc)
    "validation": dict(
        calibration=0,
        eye="L",
        grade="GOOD",
        points=9,
        avg_error_deg=0.41,
        max_error_deg=0.64,
        offset_deg=0.35,
        offset_x_px=12.5,
        offset_y_px=9.6,
        t_session_ms=30_500.0,
    ),
    "drift_check": dict(
        trial=3,
        eye="L",
        offset_x_px=12.5,
        offset_y_px=7.9,
        offset_deg=0.38,
        outcome="accepted",
        attempts=1,
        t_session_ms=60_800.0,
    ),
    "trial_quality": dict(trial=3, samples=1250, track_loss=0.024, blinks=1, mean_pupil=905.5),
}
assert FIELDS.keys() == protocol.RECORD_TYPES.keys()

SESSION = "0b8e6a1c-2f4d-4e5a-9c3b-7d2e1f0a9b8c"


def record_map(kind: str, seq: int, session: str = SESSION, **changes) -> dict:
    """The wire map of a valid ``kind`` record, with ``changes`` applied."""
    data = {"kind": kind, "session": session, "seq": seq, "v": protocol.SCHEMA_VERSION, **FIELDS[kind]}
    data.update(changes)
    return data
