"""SessionConfig validation, EDF segment names and the seeded trial order."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from experiment.config import EDF_NAME_PATTERN, SessionConfig, trial_order


def test_edf_name_rule_has_a_clear_message(tmp_path):
    with pytest.raises(ValidationError, match=r"1–8 characters of \[A-Za-z0-9_\].*'TOOLONGNAME'"):
        SessionConfig(participant="P07", stimuli=tmp_path, edf_name="TOOLONGNAME")
    with pytest.raises(ValidationError, match="edf_name"):
        SessionConfig(participant="P07", stimuli=tmp_path, edf_name="P-07")


def test_edf_name_derived_and_segments_stay_valid(tmp_path):
    config = SessionConfig(participant="lab-P0712345", stimuli=tmp_path)
    assert config.edf_name == "lab_P071"  # '-' is not allowed on the host: replaced, cut to 8
    names = [config.edf_segment_name(k) for k in range(12)]
    assert names[:3] == ["lab_P071", "lab_P0_1", "lab_P0_2"] and names[10] == "lab_P_10"
    assert len(set(names)) == 12 and all(EDF_NAME_PATTERN.match(n) for n in names)


def test_defaults_follow_the_paper_and_roundtrip(tmp_path):
    config = SessionConfig(participant="P07", stimuli=tmp_path, seed=4)
    assert (config.duration_ms, config.scale, config.sample_rate_hz) == (5000.0, 2.0, 250)
    assert (config.screen_width_px, config.screen_height_px) == (1920, 1080)
    config.save(tmp_path / "config.json")
    assert SessionConfig.load(tmp_path / "config.json") == config
    assert config.session_dir == config.out / "P07"


def test_seed_is_drawn_once_and_recorded(tmp_path):
    first = SessionConfig(participant="P07", stimuli=tmp_path)
    assert isinstance(first.seed, int)
    assert SessionConfig.model_validate_json(first.model_dump_json()).seed == first.seed


def test_invalid_values_name_the_field(tmp_path):
    with pytest.raises(ValidationError, match="duration_ms"):
        SessionConfig(participant="P07", stimuli=tmp_path, duration_ms=0)
    with pytest.raises(ValidationError, match="tracker"):
        SessionConfig(participant="P07", stimuli=tmp_path, tracker="tobii")
    with pytest.raises(ValidationError, match="participant"):
        SessionConfig(participant="P 07", stimuli=tmp_path)


def test_trial_order_is_the_seeded_permutation_of_the_sorted_ids():
    ids = ["c", "a", "d", "b"]
    # Oracle: numpy's permutation of the sorted ids with the same seed.
    expected = [sorted(ids)[i] for i in np.random.default_rng(9).permutation(4)]
    assert trial_order(ids, seed=9) == expected
    assert trial_order(list(reversed(ids)), seed=9) == expected
    assert trial_order(ids, seed=9, trials=2) == expected[:2]
    assert trial_order(ids, seed=10) != expected or trial_order(ids, seed=11) != expected


def test_gaze_start_settings_default_validate_and_come_from_the_cli(tmp_path):
    import argparse

    from experiment.cli import add_arguments, build_config

    config = SessionConfig(participant="P07", stimuli=tmp_path)
    assert (config.drift_start, config.gaze_hold_ms, config.gaze_radius_px) == ("key", 500.0, 60.0)
    with pytest.raises(ValidationError, match="drift_start"):
        SessionConfig(participant="P07", stimuli=tmp_path, drift_start="mouse")
    for name in ("gaze_hold_ms", "gaze_radius_px"):
        with pytest.raises(ValidationError, match=name):
            SessionConfig(participant="P07", stimuli=tmp_path, **{name: 0})
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--participant", "P07", "--stimuli", str(tmp_path), "--drift-start", "gaze"]
        + ["--gaze-hold-ms", "300", "--gaze-radius-px", "45.5"]
    )
    config = build_config(args)
    assert (config.drift_start, config.gaze_hold_ms, config.gaze_radius_px) == ("gaze", 300.0, 45.5)
