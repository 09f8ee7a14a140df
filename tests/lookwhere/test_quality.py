"""Data-quality helpers: the EyeLink host's messages (real ones, from the ASC corpus), track loss,
drift alarms, and the viewing geometry's pixels → degrees."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from lookwhere.quality import (
    QualityThresholds,
    drift_alarms,
    eyelink_grade,
    parse_drift_check,
    parse_validation,
    trial_quality,
)
from stimuli.viewing import ViewingGeometry


def _messages(eyelink_dir, word: str) -> list[str]:
    lines = []
    for path in sorted(eyelink_dir.rglob("*.asc")):
        lines += [line for line in path.read_text(errors="replace").splitlines() if word in line]
    return lines


def test_every_real_validation_message_parses(eyelink_dir):
    lines = _messages(eyelink_dir, "!CAL VALIDATION")
    assert len(lines) == 22  # the corpus's count (grep -c): 16 files, binocular ones hold two
    parsed = [parse_validation(line) for line in lines]
    assert all(len(result) == 1 for result in parsed)
    for line, (validation,) in zip(lines, parsed):
        # Oracle: the numbers as written in the line, in order (an independent split).
        numbers = [float(v) for v in re.findall(r"-?\d+\.\d+", line.split("ERROR", 1)[1])]
        assert numbers == [
            validation.avg_error_deg,
            validation.max_error_deg,
            validation.offset_deg,
            validation.offset_x_px,
            validation.offset_y_px,
        ]
        assert validation.eye == ("L" if " LEFT " in line else "R")
        assert validation.grade == "GOOD" and validation.points in (5, 9, 13)
        assert validation.avg_error_deg <= validation.max_error_deg


def test_a_binocular_message_block_gives_both_eyes():
    text = (
        "MSG\t7421182 !CAL VALIDATION HV13 LR LEFT  GOOD ERROR 0.35 avg. 0.48 max  OFFSET 0.18 deg. -6.4,-0.9 pix.\n"
        "MSG\t7421182 !CAL VALIDATION HV13 LR RIGHT GOOD ERROR 0.30 avg. 0.91 max  OFFSET 0.17 deg. 0.1,6.2 pix.\n"
    )
    left, right = parse_validation(text)
    assert (left.eye, left.points, left.avg_error_deg, left.offset_x_px) == ("L", 13, 0.35, -6.4)
    assert (right.eye, right.max_error_deg, right.offset_y_px) == ("R", 0.91, 6.2)
    assert parse_validation("!CAL VALIDATION HV9 R RIGHT ABORTED") == []


def test_every_real_drift_check_parses(eyelink_dir):
    lines = _messages(eyelink_dir, "DRIFTCORRECT")
    assert lines
    for line in lines:
        (offset,) = parse_drift_check(line)
        x, y = (float(v) for v in line.split("deg.")[1].split("pix")[0].split(","))
        assert (offset.offset_x_px, offset.offset_y_px) == (x, y)
        assert offset.offset_deg == float(line.split("OFFSET")[1].split()[0])


def test_grades_follow_the_hosts_limits():
    assert eyelink_grade(0.49, 0.99) == "GOOD"
    assert eyelink_grade(0.5, 0.9) == "FAIR" and eyelink_grade(0.4, 1.2) == "FAIR"
    assert eyelink_grade(1.0, 1.2) == "POOR" and eyelink_grade(0.6, 1.5) == "POOR"
    thresholds = QualityThresholds()
    assert [thresholds.validation_level(v) for v in (0.5, 0.51, 1.0, 1.01)] == ["good", "fair", "fair", "poor"]
    with pytest.raises(ValueError, match="validation_good_deg"):
        QualityThresholds(validation_good_deg=1.2, validation_poor_deg=1.0)


def test_track_loss_by_hand():
    # 10 samples at 4 ms from t=100; display [104, 140): samples 104..136 (9 of them).
    t = 100.0 + 4.0 * np.arange(10)
    pupil = np.full(10, 900.0)
    pupil[3] = np.nan  # t=112: lost
    pupil[4] = 0.0  # t=116: EyeLink's missing pupil
    pupil[8] = 1000.0  # t=132: valid
    blinks = np.array([[124.0, 128.0], [90.0, 99.0]])  # t=124, 128 inside the first; the second before
    quality = trial_quality(t, pupil, blinks, onset_tracker_ms=104.0, offset_tracker_ms=140.0)
    assert quality.samples == 9
    assert quality.track_loss == pytest.approx(4 / 9)  # 112, 116, 124, 128
    assert quality.blinks == 1
    assert quality.mean_pupil == pytest.approx((900.0 * 4 + 1000.0) / 5)  # 104, 108, 120, 132, 136
    empty = trial_quality(t, pupil, blinks, onset_tracker_ms=0.0, offset_tracker_ms=50.0)
    assert empty.samples == 0 and math.isnan(empty.track_loss) and math.isnan(empty.mean_pupil)


def test_drift_alarm_needs_two_in_a_row():
    offsets = [0.4, 1.2, 0.8, 1.1, 1.3, float("nan"), 1.5, 1.6, 1.7]
    assert drift_alarms(offsets, threshold_deg=1.0).tolist() == [
        False, False, False, False, True, False, False, True, True,
    ]  # fmt: skip


def test_pixels_to_degrees_by_hand():
    viewing = ViewingGeometry(screen_width_px=1920, screen_width_cm=53.1, viewing_distance_cm=70.0)
    # Oracle: 1° centred on the line of sight spans 2·70·tan(0.5°) = 1.22177 cm = 44.18 px.
    assert viewing.px_per_deg == pytest.approx(2 * 70 * math.tan(math.radians(0.5)) / (53.1 / 1920))
    assert viewing.px_to_deg(viewing.px_per_deg) == pytest.approx(1.0)
    np.testing.assert_allclose(viewing.px_to_deg(viewing.deg_to_px(np.array([0.5, 1.0, 5.0]))), [0.5, 1.0, 5.0])
    with pytest.raises(ValueError, match="viewing_distance_cm=0"):
        ViewingGeometry(screen_width_px=1920, screen_width_cm=53.1, viewing_distance_cm=0)
