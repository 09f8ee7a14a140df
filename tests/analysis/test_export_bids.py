"""``lookwhere export bids`` on a real simulated session and on a real EyeLink EDF, checked by the
BIDS validator (``bids-validator-deno``, offline) and against oracles:

- the simulated session (``lookwhere run --tracker simulated --server`` to an absent server, so
  that its gaze is journalled): the journal's gaze records decoded with msgpack alone (the physio
  samples), ``fixations.csv`` and ``trials.jsonl`` (the fixations and the image onsets),
  ``config.json`` (the screen), the session's files byte for byte (stimuli, audio);
- the EDF (``shared/data/eyelink/eyelinkio/test_2_raw.edf``, 125 s at 1000 Hz, left eye) in a
  session folder made for it: ``eyelinkio.read_edf``, the public reader of the same EDF API, whose
  times count in seconds from the first sample.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import msgpack
import numpy as np
import pandas as pd
import pytest

from analysis.export.bids import export_bids, subject_label
from lookwhere.cli import main
from tests._virtual_mic import VirtualMic
from tests.conftest import SHARED_DATA
from tests.experiment.conftest import MIC_AMPLITUDE, MIC_RATE_HZ, run_session

VALIDATOR = Path(sys.executable).parent / "bids-validator-deno"
IMAGES = ("1001", "1002", "1003")
EDF = SHARED_DATA / "eyelink" / "eyelinkio" / "test_2_raw.edf"
BEH = "sub-{0}/beh/sub-{0}_task-naming"


def validate(dataset: Path) -> dict:
    """The validator's JSON report of ``dataset`` (every TSV row checked)."""
    assert VALIDATOR.is_file(), f"{VALIDATOR} is missing: install the test extras (pip install -e .[test])"
    done = subprocess.run(
        [str(VALIDATOR), str(dataset), "--format", "json", "--max-rows", "-1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(done.stdout)


def errors_of(report: dict) -> list[dict]:
    return [issue for issue in report["issues"]["issues"] if issue["severity"] == "error"]


def read_tsv_gz(path: Path, sidecar: Path) -> pd.DataFrame:
    """A headerless BIDS table, its columns named by the sidecar (the oracle reads it with pandas)."""
    columns = json.loads(sidecar.read_text())["Columns"]
    with gzip.open(path, "rt") as handle:
        return pd.read_csv(handle, sep="\t", header=None, names=columns, na_values="n/a", keep_default_na=False)


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory) -> Path:
    """Three real OSIE photographs (800×600), linked into a stimulus folder of their own."""
    source = SHARED_DATA / "osie" / "stimuli"
    if not source.is_dir():
        pytest.skip(f"real data folder {source} is absent")
    folder = tmp_path_factory.mktemp("stimuli")
    for image in IMAGES:
        (folder / f"{image}.jpg").symlink_to(source / f"{image}.jpg")
    return folder


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, stimuli) -> Path:
    """The sessions folder of one finished 2-trial simulated session ``P01`` with audio and a journal."""
    from experiment.xvfb import start_xvfb

    try:
        display = start_xvfb()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    root = tmp_path_factory.mktemp("simulated")
    with socket.socket() as probe:  # a loopback endpoint nobody listens on: the records stay in the journal
        probe.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    tone = MIC_AMPLITUDE * np.sin(2 * np.pi * 440 * np.arange(MIC_RATE_HZ) / MIC_RATE_HZ)
    (root / "mic").mkdir()
    try:
        with VirtualMic(root / "mic", tone, MIC_RATE_HZ) as alsa:
            result = run_session(
                {**os.environ, "DISPLAY": display.display, **alsa},
                *("--participant", "P01", "--stimuli", str(stimuli), "--tracker", "simulated"),
                *("--out", str(root / "sessions"), "--trials", "2", "--seed", "3", "--duration-ms", "600"),
                *("--auto-accept-drift-ms", "150", "--windowed", "--server", endpoint),
            )
    finally:
        display.close()
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "sessions"


@pytest.fixture(scope="module")
def simulated_bids(simulated, stimuli, tmp_path_factory) -> Path:
    """The simulated session exported with its scores (lookwhere analyze run by the export)."""
    out = tmp_path_factory.mktemp("exports") / "bids"
    assert main(["export", "bids", "--sessions", str(simulated), "--stimuli", str(stimuli), "--out", str(out)]) == 0
    return out


def test_simulated_session_is_valid_bids(simulated_bids):
    report = validate(simulated_bids)
    assert errors_of(report) == []
    assert report["summary"]["subjects"] == ["P01"] and report["summary"]["dataTypes"] == ["beh"]


def test_simulated_samples_equal_the_streamed_gaze(simulated, simulated_bids):
    beh = simulated_bids / BEH.format("P01")
    physio = read_tsv_gz(Path(f"{beh}_recording-eye1_physio.tsv.gz"), Path(f"{beh}_recording-eye1_physio.json"))
    with open(simulated / "P01" / "stream.journal", "rb") as handle:
        gaze = [record for record in msgpack.Unpacker(handle, raw=False) if record["kind"] == "gaze"]
    assert len(physio) == len(gaze) > 20
    np.testing.assert_allclose(physio["timestamp"], [g["t_tracker_ms"] / 1000 for g in gaze], atol=1e-6)
    np.testing.assert_allclose(physio["x_coordinate"], [g["x_display_px"] for g in gaze], atol=1e-4)
    np.testing.assert_allclose(physio["y_coordinate"], [g["y_display_px"] for g in gaze], atol=1e-4)
    sidecar = json.loads(Path(f"{beh}_recording-eye1_physio.json").read_text())
    assert sidecar["RecordedEye"] == "right"  # the simulated tracker validates and reports the right eye
    assert sidecar["SampleCoordinateSystem"] == "gaze-on-screen" and sidecar["PhysioType"] == "eyetrack"
    assert sidecar["AverageCalibrationError"] == 0.3  # the simulated validation (--sim-validation-deg default)


def test_simulated_fixations_and_trials_equal_the_session_records(simulated, simulated_bids):
    session = simulated / "P01"
    beh = simulated_bids / BEH.format("P01")
    trials = pd.read_json(session / "trials.jsonl", lines=True)
    fixations = pd.read_csv(session / "fixations.csv")
    events = read_tsv_gz(
        Path(f"{beh}_recording-eye1_physioevents.tsv.gz"), Path(f"{beh}_recording-eye1_physioevents.json")
    )
    found = events[events["trial_type"] == "fixation"].reset_index(drop=True)
    assert len(found) == len(fixations)
    onset_ms = fixations["trial"].map(dict(zip(trials["trial"], trials["onset_tracker_ms"]))) + fixations["start_ms"]
    np.testing.assert_allclose(found["onset"], onset_ms / 1000, atol=1e-6)
    np.testing.assert_allclose(found["duration"], fixations["duration_ms"] / 1000)
    np.testing.assert_allclose(
        found[["x_coordinate", "y_coordinate"]], fixations[["x_display_px", "y_display_px"]], atol=1e-4
    )
    assert list(events["message"].dropna()) == ["IMAGE_ONSET", "IMAGE_OFFSET"] * len(trials)
    # events.tsv: one row per trial; onsets from the first sample, which the physio sidecar starts at.
    table = pd.read_csv(f"{beh}_events.tsv", sep="\t")
    physio = read_tsv_gz(Path(f"{beh}_recording-eye1_physio.tsv.gz"), Path(f"{beh}_recording-eye1_physio.json"))
    assert list(table["image"].astype(str)) == list(trials["image"].astype(str))
    np.testing.assert_allclose(
        table["onset"], trials["onset_tracker_ms"] / 1000 - physio["timestamp"].iloc[0], atol=2e-6
    )
    np.testing.assert_allclose(table["duration"], trials["stimulus_duration_ms"] / 1000, atol=2e-6)
    assert list(table["stim_file"]) == [f"{image}.jpg" for image in trials["image"]]
    for exported, recorded in zip(table["audio_file"], trials["mic_file"]):
        assert (simulated_bids / exported).read_bytes() == (session / recorded).read_bytes()


def test_simulated_screen_and_files(simulated, simulated_bids, stimuli):
    config = json.loads((simulated / "P01" / "config.json").read_text())
    sidecar = json.loads((simulated_bids / f"{BEH.format('P01')}_events.json").read_text())
    screen = sidecar["StimulusPresentation"]
    assert screen["ScreenResolution"] == [config["screen_width_px"], config["screen_height_px"]] == [1920, 1080]
    assert screen["ScreenDistance"] == pytest.approx(config["viewing_distance_cm"] / 100)
    width_m = config["screen_width_cm"] / 100
    assert screen["ScreenSize"] == pytest.approx([width_m, width_m * 1080 / 1920])
    assert screen["ScreenOrigin"] == ["top", "left"]
    rows = (simulated / "P01" / "trials.jsonl").read_text().splitlines()
    shown = {f"{json.loads(row)['image']}.jpg" for row in rows}
    assert sorted(p.name for p in (simulated_bids / "stimuli").iterdir()) == sorted(shown)  # only those shown
    for name in shown:
        assert (simulated_bids / "stimuli" / name).read_bytes() == (stimuli / name).read_bytes()
    assert not (simulated_bids / "sourcedata" / "sub-P01" / "stream.journal").exists()
    scores = simulated_bids / "derivatives" / "lookwhere"
    assert (scores / "scores.csv").is_file() and (scores / "params.json").is_file()
    assert json.loads((scores / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    participants = pd.read_csv(simulated_bids / "participants.tsv", sep="\t").to_dict("records")
    assert participants == [
        {
            "participant_id": "sub-P01",
            "participant": "P01",
            "session_id": config["session_id"],
            "eye_source": "link",
            "trials": 2,
        }
    ]


# --- the real EDF -----------------------------------------------------------------------------------


def session_around(edf: Path, folder: Path, participant: str) -> Path:
    """A session folder ``folder`` whose one segment's file is ``edf``, with three trials at its first
    three ``TRIALID`` messages (the recordings name no images); returns the sessions folder."""
    from analysis.readers.eyelink import read_recording

    if not edf.is_file():
        pytest.skip(f"real data file {edf} is absent")
    folder.mkdir(parents=True)
    shutil.copy(edf, folder / edf.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        messages = read_recording(edf).messages
    starts = messages[messages["text"].str.startswith("TRIALID")].head(3)
    rows = [
        {"trial": int(text.split()[1]), "image": image, "segment": 0, "onset_tracker_ms": time}
        | {"stimulus_duration_ms": 2000.0, "mic_file": None}
        for time, text, image in zip(starts["time_tracker_ms"], starts["text"], IMAGES)
    ]
    (folder / "trials.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    config: dict[str, object] = {"participant": participant, "session_id": str(uuid.uuid4()), "tracker": "eyelink"}
    config |= {"screen_width_px": 1920, "screen_height_px": 1080, "screen_width_cm": 53.1, "viewing_distance_cm": 65.0}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "manifest.json").write_text(json.dumps({"segments": [{"segment": 0, "edf_name": edf.stem}]}))
    return folder.parent


@pytest.fixture(scope="module")
def edf_session(tmp_path_factory) -> Path:
    """The real EDF as session ``E_01`` (BIDS label ``E01``)."""
    return session_around(EDF, tmp_path_factory.mktemp("edf") / "sessions" / "E01", "E_01")


@pytest.fixture(scope="module")
def edf_bids(edf_session, stimuli, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "bids"
    result = export_bids(edf_session, stimuli=stimuli, out=out, scores=False)
    assert result.subjects == {"E01": edf_session / "E01"} and result.failed == {}
    return out


@pytest.fixture(scope="module")
def oracle():
    eyelinkio = pytest.importorskip("eyelinkio")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return eyelinkio.read_edf(EDF)


def test_edf_export_is_valid_bids(edf_bids):
    report = validate(edf_bids)
    assert errors_of(report) == []
    assert report["summary"]["subjects"] == ["E01"]


def test_edf_samples_equal_eyelinkio(edf_bids, oracle):
    beh = edf_bids / BEH.format("E01")
    physio = read_tsv_gz(Path(f"{beh}_recording-eye1_physio.tsv.gz"), Path(f"{beh}_recording-eye1_physio.json"))
    x, y, pupil = oracle["samples"]  # rows xpos, ypos, ps (info["sample_fields"])
    assert len(physio) == oracle["samples"].shape[1] == 124_740
    np.testing.assert_allclose(physio["timestamp"] - physio["timestamp"].iloc[0], oracle["times"], atol=1e-9)
    # eyelinkio writes NaN where the eye was lost, as the export writes n/a
    np.testing.assert_allclose(physio["x_coordinate"], x, atol=1e-4)
    np.testing.assert_allclose(physio["y_coordinate"], y, atol=1e-4)
    np.testing.assert_allclose(physio["pupil_size"], pupil, atol=1e-4)
    sidecar = json.loads(Path(f"{beh}_recording-eye1_physio.json").read_text())
    assert sidecar["SamplingFrequency"] == oracle["info"]["sfreq"] == 1000
    assert sidecar["RecordedEye"] == "left" and oracle["info"]["eye"] == "LEFT_EYE"
    assert "area" in sidecar["pupil_size"]["Description"] and oracle["info"]["ps_units"] == "PUPIL_AREA"
    assert sidecar["DeviceSerialNumber"] == oracle["info"]["serial"]


def test_edf_events_equal_eyelinkio(edf_bids, oracle):
    beh = edf_bids / BEH.format("E01")
    events = read_tsv_gz(
        Path(f"{beh}_recording-eye1_physioevents.tsv.gz"), Path(f"{beh}_recording-eye1_physioevents.json")
    )
    first_s = read_tsv_gz(Path(f"{beh}_recording-eye1_physio.tsv.gz"), Path(f"{beh}_recording-eye1_physio.json"))[
        "timestamp"
    ].iloc[0]
    discrete = oracle["discrete"]
    for kind, plural in (("fixation", "fixations"), ("saccade", "saccades"), ("blink", "blinks")):
        ours = events[events["trial_type"] == kind]
        assert len(ours) == len(discrete[plural])  # 121, 120, 19 (the data README)
        np.testing.assert_allclose(ours["onset"] - first_s, discrete[plural]["stime"], atol=1e-9)
    fixations = events[events["trial_type"] == "fixation"]
    np.testing.assert_allclose(fixations["x_coordinate"], discrete["fixations"]["axp"], atol=1e-4)
    np.testing.assert_allclose(fixations["y_coordinate"], discrete["fixations"]["ayp"], atol=1e-4)
    saccades = events[events["trial_type"] == "saccade"]
    ends = np.column_stack([discrete["saccades"][name] for name in ("sxp", "syp", "exp", "eyp")])
    np.testing.assert_allclose(
        saccades[["x_coordinate", "y_coordinate", "x_end_coordinate", "y_end_coordinate"]], ends, atol=1e-4
    )
    messages = events.dropna(subset=["message"])
    # all 48; eyelinkio keeps a message's line break, the export its first line
    assert list(messages["message"]) == [m.decode().split("\n")[0] for m in discrete["messages"]["msg"]]
    # events.tsv: the trials at their TRIALID messages, counted from the first sample (eyelinkio's time zero)
    table = pd.read_csv(f"{beh}_events.tsv", sep="\t")
    trial_ids = {m.decode().strip(): t for t, m in zip(discrete["messages"]["stime"], discrete["messages"]["msg"])}
    np.testing.assert_allclose(table["onset"], [trial_ids[f"TRIALID {n}"] for n in table["trial"]], atol=1e-6)
    assert table["audio_file"].isna().all()


def test_binocular_edf_gives_one_file_per_eye(tmp_path, stimuli):
    eyelinkio = pytest.importorskip("eyelinkio")
    # eyelinkio's wheel carries the only binocular EDF here (500 Hz)
    edf = Path(eyelinkio.__file__).parent / "tests" / "data" / "test_raw_binocular.edf"
    sessions = session_around(edf, tmp_path / "sessions" / "B01", "B01")
    export_bids(sessions, stimuli=stimuli, out=tmp_path / "bids", scores=False)
    assert errors_of(validate(tmp_path / "bids")) == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle = eyelinkio.read_edf(edf)
    fields = oracle["info"]["sample_fields"]  # xpos_left, xpos_right, ypos_left, …
    beh = tmp_path / "bids" / BEH.format("B01")
    for number, (eye, code) in enumerate((("left", 0), ("right", 1)), 1):
        prefix = f"{beh}_recording-eye{number}"
        sidecar = json.loads(Path(f"{prefix}_physio.json").read_text())
        assert sidecar["RecordedEye"] == eye and sidecar["SamplingFrequency"] == 500
        physio = read_tsv_gz(Path(f"{prefix}_physio.tsv.gz"), Path(f"{prefix}_physio.json"))
        np.testing.assert_allclose(physio["x_coordinate"], oracle["samples"][fields.index(f"xpos_{eye}")], atol=1e-4)
        events = read_tsv_gz(Path(f"{prefix}_physioevents.tsv.gz"), Path(f"{prefix}_physioevents.json"))
        fixations = oracle["discrete"]["fixations"]
        assert (events["trial_type"] == "fixation").sum() == (fixations["eye"] == code).sum()  # 480 and 377


# --- errors ---------------------------------------------------------------------------------------------


def test_out_that_is_not_a_bids_dataset_is_refused(edf_session, stimuli, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    words = ["export", "bids", "--sessions", str(edf_session), "--stimuli", str(stimuli), "--out", str(out)]
    assert main([*words, "--no-scores"]) == 2
    assert "exists and is not a BIDS dataset (no dataset_description.json); pass a new or empty folder" in (
        capsys.readouterr().err
    )
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    (out / "dataset_description.json").write_text(json.dumps({"Name": "theirs", "BIDSVersion": "1.9.0"}))
    assert main([*words, "--no-scores"]) == 2
    assert "a BIDS dataset that lookwhere export did not write; it is never replaced" in capsys.readouterr().err


def test_a_bad_session_is_named_and_the_others_exported(
    simulated, simulated_bids, edf_session, stimuli, tmp_path, capsys
):
    sessions = tmp_path / "sessions"
    shutil.copytree(simulated / "P01", sessions / "P01")
    shutil.copytree(edf_session / "E01", sessions / "E01")
    (sessions / "P02").mkdir()
    (sessions / "P02" / "trials.jsonl").write_text("")  # a session that never completed a trial, no config
    out = tmp_path / "bids"
    assert main(["export", "bids", "--sessions", str(sessions), "--stimuli", str(stimuli), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"left out: {sessions / 'P02'}: {sessions / 'P02' / 'config.json'} is missing" in err
    assert "scores not written: some sessions were left out" in err
    assert errors_of(validate(out)) == []
    assert sorted(p.name for p in out.glob("sub-*")) == ["sub-E01", "sub-P01"]
    # An earlier export is replaced whole; --scores copies an analyze output (the first export's).
    analysis = simulated_bids / "derivatives" / "lookwhere"
    again = export_bids(sessions / "P01", stimuli=stimuli, out=out, scores_from=analysis)
    assert sorted(p.name for p in out.glob("sub-*")) == ["sub-P01"]
    assert again.scores == out / "derivatives" / "lookwhere"
    assert (out / "derivatives" / "lookwhere" / "scores.csv").read_bytes() == (analysis / "scores.csv").read_bytes()


def test_subject_labels_keep_letters_and_digits():
    assert subject_label("P_07-b") == "P07b"
    with pytest.raises(ValueError, match="has no letter or digit"):
        subject_label("__")
