"""``lookwhere precompute`` end to end on a tiny stimulus folder (untrained weights, 32 px input)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analysis.cnn.store import MapStore
from lookwhere.cli import main

REPO = Path(__file__).resolve().parents[3]


def test_cli_module_does_not_import_torch():
    code = "import sys, analysis.cnn.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_precompute_command_builds_resumes_and_exports(tmp_path, caplog):
    folder = tmp_path / "stimuli"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, (height, width) in {"a": (40, 60), "b": (36, 36)}.items():
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"{name}.jpg")
    arguments = [
        "precompute",
        "--stimuli",
        str(folder),
        "--out",
        str(tmp_path / "store"),
        "--weights",
        "untrained",
        "--seed",
        "1",
        "--input-size",
        "32",
        "--device",
        "cpu",
        "--no-progress",
        "--images",
        "a",
    ]
    assert main(arguments) == 0
    assert MapStore.open(tmp_path / "store").image_ids == ["a"]
    # Second run over the whole set resumes: "a" is kept, "b" added, then everything exported.
    arguments = arguments[:-2] + ["--export-npz", str(tmp_path / "npz")]
    with caplog.at_level("INFO", logger="analysis.cnn.precompute"):
        assert main(arguments) == 0
    assert "1 of 2 images already in" in caplog.text
    store = MapStore.open(tmp_path / "store")
    assert store.image_ids == ["a", "b"] and store.is_untrained and store.metadata["weights"]["seed"] == 1
    with np.load(tmp_path / "npz" / "a.npz") as data:
        assert set(data.files) == set(store.map_names)
        assert all(data[name].shape == (40, 60) and data[name].dtype == np.float32 for name in data.files)


def test_precompute_command_reports_input_errors(tmp_path, capsys):
    assert (
        main(
            [
                "precompute",
                "--stimuli",
                str(tmp_path / "absent"),
                "--out",
                str(tmp_path / "s"),
                "--weights",
                "untrained",
            ]
        )
        == 2
    )
    assert "stimulus folder" in capsys.readouterr().err


@pytest.mark.slow
def test_precompute_on_real_osie_images(osie_stimuli, tmp_path):
    """Two real OSIE photographs (800×600 JPEG) at a 64 px input; the CAM fit reads all 200."""
    arguments = [
        "precompute",
        "--stimuli",
        str(osie_stimuli),
        "--out",
        str(tmp_path / "store"),
        "--weights",
        "untrained",
        "--input-size",
        "64",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--no-progress",
        "--images",
        "1001,1002",
    ]
    assert main(arguments) == 0
    store = MapStore.open(tmp_path / "store")
    assert store.image_ids == ["1001", "1002"]
    assert len(store.metadata["cam"]["fitting_image_ids"]) == 200
    assert store.metadata["images"]["1001"]["original_shape"] == [600, 800]
    maps = store.load("1001", shape=(600, 800))
    assert all(m.shape == (600, 800) and np.isfinite(m).all() for m in maps.values())
