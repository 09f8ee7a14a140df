"""The project's own sessions read from their tracker file (``--dataset session --source edf``).

No EDF with the task's messages exists here, so the session's tracker file is the ``edf2asc`` form
(read the same way, :mod:`analysis.readers.session_edf`), made from a real recording edited to carry
the task's messages, with one aborted and repeated trial. The link record (``fixations.csv``) is
built from the same file by plain string handling, the way the task streams the tracker's events:
the oracle the EDF must agree with. One link fixation is dropped, as a lossy link would.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from analysis.fixations import fixation_table
from analysis.readers.mapping import MappingOptions
from analysis.readers.session_edf import read_session_fixations, session_edfs
from lookwhere.cli import main as cli_main
from stimuli.geometry import DisplayGeometry
from tests.analysis._asc_edits import variant

SIZES = {image: (800, 600) for image in ("1001", "1002", "1003")}
IMAGES = {"0": "1001", "1": "1002", "2": "1003"}
# The four recorded blocks are trials 0, 1 (aborted), 1 again, 2.
TRIAL_IDS = ["0", "1", "1", "2"]


def task_messages(lines):
    """An edit writing the task's messages into cili/mono500.asc (1024×768, 4 blocks)."""
    out, block = [], -1
    for line in lines:
        fields = line.split()
        if line.startswith("MSG") and " TRIALID " in line:
            block += 1
            trial = TRIAL_IDS[block]
            out += [f"MSG\t{fields[1]} TRIALID {trial}\n", f"MSG\t{fields[1]} !V TRIAL_VAR image {IMAGES[trial]}\n"]
            continue
        if line.startswith("MSG") and line.rstrip().endswith("Target_display"):
            time = int(fields[1]) - int(fields[2])  # "MSG 7197300 -14 Target_display" → 7197314
            image = IMAGES[TRIAL_IDS[block]]
            out += [f"MSG\t{time} IMAGE_ONSET\n", f"MSG\t{time} !V IMGLOAD CENTER {image}.jpg 512 384 1024 768\n"]
            continue
        if line.startswith("MSG") and line.rstrip().endswith("End_trial_display"):
            out.append(f"MSG\t{int(fields[1]) - int(fields[2])} IMAGE_OFFSET\n")
            if block == 1:
                out.append(f"MSG\t{fields[1]} !V TRIAL_VAR aborted 1\n")
            continue
        out.append(line)
    return out


def link_record(asc_path) -> pd.DataFrame:
    """What the link streamed: each counted run's EFIX lines, times from IMAGE_ONSET, plain parsing;
    ``truncated`` for the fixation the recording stop cut (no saccade or blink after it)."""
    runs: list[dict] = []
    for line in asc_path.read_text().splitlines():
        fields = line.split()
        if line.startswith("MSG") and fields[2] == "TRIALID":
            runs.append({"events": [], "onset": np.nan, "offset": np.nan})
        elif line.startswith("MSG") and fields[2:] in (["IMAGE_ONSET"], ["IMAGE_OFFSET"]):
            runs[-1]["onset" if fields[2] == "IMAGE_ONSET" else "offset"] = float(fields[1])
        elif line.startswith("EFIX") and runs:
            runs[-1]["events"].append([float(fields[i]) for i in (2, 4, 5, 6, 7)] + [True])
        elif line.startswith(("SSACC", "SBLINK")) and runs and runs[-1]["events"]:
            runs[-1]["events"][-1][-1] = False  # the last fixation so far ended before the stop
    geometry = DisplayGeometry.fit(800, 600, screen_width_px=1024, screen_height_px=768)
    rows = []
    for block, run in enumerate(runs):
        if block == 1:  # the aborted run: the task drops its fixations
            continue
        trial, onset = TRIAL_IDS[block], run["onset"]
        for start, duration, x, y, pupil, truncated in run["events"]:
            x_image, y_image = geometry.display_to_image(x, y)
            rows.append(
                {
                    "participant": "P01",
                    "session": "uuid-1",
                    "trial": int(trial),
                    "image": IMAGES[trial],
                    "eye": "L",
                    "start_ms": start - onset,
                    "end_ms": start - onset + duration,
                    "duration_ms": duration,
                    "x_display_px": x,
                    "y_display_px": y,
                    "x_image_px": float(x_image),
                    "y_image_px": float(y_image),
                    "stimulus_duration_ms": run["offset"] - onset,
                    "pupil": pupil,
                    "truncated": truncated,
                }
            )
    return fixation_table(pd.DataFrame(rows))


@pytest.fixture
def sessions(eyelink_dir, tmp_path):
    folder = tmp_path / "sessions" / "P01"
    folder.mkdir(parents=True)
    asc = variant(eyelink_dir / "cili/mono500.asc", folder / "P01.asc", task_messages)
    (folder / "config.json").write_text(json.dumps({"participant": "P01", "session_id": "uuid-1"}))
    (folder / "manifest.json").write_text(json.dumps({"segments": [{"segment": 0, "edf_name": "P01"}]}))
    link = link_record(asc)
    link.drop(index=3).to_csv(folder / "fixations.csv", index=False, na_rep="nan")  # one event lost on the link
    return folder.parent, link


def test_the_tracker_file_equals_the_link_record(sessions):
    folder, link = sessions
    assert [p.name for p in session_edfs(folder / "P01")] == ["P01.asc"]
    study = read_session_fixations(folder, SIZES, options=MappingOptions())
    edf = study.table
    assert study.recordings[0]["source"] == "edf"
    # The aborted run's 4 fixations are dropped; the EDF still has the one the link lost.
    assert study.counts["dropped"]["aborted, skipped or repeated run"] == 4
    pd.testing.assert_frame_equal(
        edf.drop(columns=["x_image_px", "y_image_px"]), link.drop(columns=["x_image_px", "y_image_px"])
    )
    np.testing.assert_allclose(edf[["x_image_px", "y_image_px"]], link[["x_image_px", "y_image_px"]], atol=1e-9)
    agreement = study.agreement.set_index("trial")
    assert agreement[["n_link", "n_edf", "n_matched"]].to_dict("index") == {
        0: {"n_link": 3, "n_edf": 4, "n_matched": 3},
        1: {"n_link": 2, "n_edf": 2, "n_matched": 2},
        2: {"n_link": 2, "n_edf": 2, "n_matched": 2},
    }
    assert (agreement[["max_start_diff_ms", "max_position_diff_px"]] == 0).all().all()
    linked = read_session_fixations(folder, SIZES, source="link")
    assert len(linked.table) == len(link) - 1 and linked.agreement is None


def test_edf_source_without_a_tracker_file_names_the_option(sessions):
    folder, _ = sessions
    (folder / "P01" / "P01.asc").unlink()
    with pytest.raises(ValueError, match=r"session .*P01 has no transferred EDF .*--source link"):
        read_session_fixations(folder, SIZES, source="edf")
    assert read_session_fixations(folder, SIZES).recordings[0]["format"] == "link"


def test_a_session_edf_is_found_through_the_manifest(eyelink_dir, tmp_path):
    folder = tmp_path / "P02"
    folder.mkdir()
    shutil.copy(eyelink_dir / "eyelinkio/test_2_raw.edf", folder / "P02_1.EDF")
    (folder / "manifest.json").write_text(json.dumps({"segments": [{"edf_name": "P02_1"}]}))
    assert [p.name for p in session_edfs(folder)] == ["P02_1.EDF"]
    (folder / "manifest.json").write_text(json.dumps({"segments": [{"edf_name": "P02_1"}, {"edf_name": "P02_2"}]}))
    assert session_edfs(folder) == []  # a missing segment: not the whole session


def test_analyze_a_session_from_its_edf(sessions, osie_stimuli, tmp_path):
    folder, _ = sessions
    out = tmp_path / "out"
    assert (
        cli_main(
            [
                "analyze",
                "--dataset",
                "session",
                "--fixations",
                str(folder),
                "--stimuli",
                str(osie_stimuli),
                "--out",
                str(out),
                "--bootstrap",
                "200",
                "--no-progress",
            ]
        )
        == 0
    )
    agreement = pd.read_csv(out / "source_agreement.csv")
    assert agreement["n_matched"].tolist() == [3, 2, 2]
    params = json.loads((out / "params.json").read_text())
    assert params["source_agreement"] == {"n_link": 7, "n_edf": 8, "n_matched": 7}
    assert params["n_images"] == 3 and params["fixations"]["read"] == 12
