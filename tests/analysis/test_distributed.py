"""``--scheduler``: precompute and analysis on a 2-worker Dask LocalCluster equal the serial runs.

Oracles: the serial run of the same command (map stores equal to 0, every score table byte for
byte); the messages name what was wrong and what to do. One cluster serves the module; the runs
that join it by its address take the path of a remote cluster (``dask scheduler``/``dask worker``).
"""

from __future__ import annotations

import filecmp
import socket
import sys
from typing import Any

import numpy as np
import pytest
from PIL import Image

from analysis.distributed import Scheduler, open_client, parse_scheduler
from lookwhere.cli import main as cli_main

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """A client of a LocalCluster of 2 single-threaded worker processes (``--scheduler local:2``)."""
    with open_client(parse_scheduler("local:2")) as client:
        yield client


@pytest.fixture(scope="module")
def address(client) -> str:
    return client.scheduler.address


def test_scheduler_values():
    assert parse_scheduler("local") == Scheduler() and str(Scheduler()) == "local"
    assert parse_scheduler("local:3") == Scheduler(n_workers=3)
    assert parse_scheduler("tcp://10.0.0.5:8786") == Scheduler(address="tcp://10.0.0.5:8786")
    assert parse_scheduler("node7:8786").address == "node7:8786"
    for bad, message in (("local:0", "worker count N >= 1"), ("local:two", "worker count"), ("node7", "tcp://HOST")):
        with pytest.raises(ValueError, match=message):
            parse_scheduler(bad)


def test_cli_refuses_a_bad_scheduler_value(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(["precompute", "--stimuli", str(tmp_path), "--out", str(tmp_path / "s"), "--scheduler", "local:0"])
    assert "local:N needs a worker count N >= 1; got 'local:0'" in capsys.readouterr().err


def test_an_unreachable_scheduler_is_named_with_how_to_start_one():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        pytest.raises(OSError, match=rf"no Dask scheduler answers at tcp://127.0.0.1:{port} .*`dask scheduler`"),
        open_client(Scheduler(address=f"tcp://127.0.0.1:{port}"), connect_timeout_s=0.5),
    ):
        pass


def test_without_dask_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed: importing it fails
    with pytest.raises(ImportError, match=r"pip install \.\[distributed\]"), open_client(Scheduler()):
        pass


@pytest.fixture()
def stimuli(tmp_path):
    """Three random RGB images of different sizes (>= 32 px: VGG16's five poolings)."""
    folder = tmp_path / "stimuli"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for index, (height, width) in enumerate([(32, 40), (45, 35), (40, 40)]):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"im{index}.png")
    return folder


def assert_same_store(store, reference) -> None:
    """Every map of every image equal to 0, the same records and CAM regression."""
    assert store.image_ids == reference.image_ids
    assert store.metadata["images"] == reference.metadata["images"]
    for expected, got in zip(reference.cam_weights(), store.cam_weights()):
        np.testing.assert_array_equal(got, expected)
    for image_id in reference.image_ids:
        maps, expected = store.load_native(image_id), reference.load_native(image_id)
        for name in reference.map_names:
            np.testing.assert_array_equal(maps[name], expected[name], err_msg=f"{image_id} {name}")


@pytest.mark.slow
def test_precompute_on_two_workers_equals_the_serial_run_and_resumes(client, address, stimuli, tmp_path):
    """Seeded untrained VGG16 at 32 px, 2 images per batch. The command, joined to the cluster by its
    address, fits the CAM regression on features from the workers and computes the first batch
    (``--images im0,im1``); the function finishes the store on the workers. The store equals the
    serial one to 0. (The batches must match: other batch compositions change float32 maps by ~1e-6.)"""
    pytest.importorskip("torch")
    from analysis.cnn.model import load_vgg16
    from analysis.cnn.precompute import precompute_store, precompute_store_distributed
    from analysis.cnn.store import MapStore
    from stimuli.sets import StimulusSet

    options: dict[str, Any] = dict(input_size=32, batch_size=2, device="cpu", progress=False)
    serial = precompute_store(load_vgg16("untrained", seed=0), StimulusSet(stimuli), tmp_path / "serial", **options)

    words = ["precompute", "--stimuli", str(stimuli), "--out", str(tmp_path / "dask"), "--weights", "untrained"]
    words += ["--input-size", "32", "--batch-size", "2", "--device", "cpu", "--no-progress", "--scheduler", address]
    assert cli_main([*words, "--images", "im0,im1"]) == 0
    assert MapStore.open(tmp_path / "dask").image_ids == ["im0", "im1"]
    kept = tmp_path / "dask" / "maps" / "im0.npz"
    kept_bytes, kept_mtime = kept.read_bytes(), kept.stat().st_mtime_ns

    store = precompute_store_distributed(client, "untrained", StimulusSet(stimuli), tmp_path / "dask", **options)
    assert kept.read_bytes() == kept_bytes and kept.stat().st_mtime_ns == kept_mtime  # resumed, not recomputed
    assert_same_store(store, serial)
    assert store.metadata["device"]["dask_workers"] == 2 and store.is_untrained
    assert not list((tmp_path / "dask" / "maps").glob(".*"))  # no temporary files left


@pytest.mark.slow
def test_analyze_on_two_workers_equals_the_serial_run(address, osie_fixations_path, osie_stimuli, tmp_path):
    """Three OSIE images (a pool of 8 for the baselines), time course on: every table the command
    writes, and the heatmaps, equal the serial run's byte for byte."""
    stimuli = tmp_path / "stimuli"
    stimuli.mkdir()
    for path in sorted(osie_stimuli.glob("*.jpg"))[:8]:
        (stimuli / path.name).symlink_to(path)
    words = ["analyze", "--dataset", "osie", "--fixations", str(osie_fixations_path), "--stimuli", str(stimuli)]
    words += ["--images", "1001,1002,1003", "--bootstrap", "100", "--overlays", "0", "--no-mixed-model"]
    words += ["--no-progress"]
    assert cli_main([*words, "--out", str(tmp_path / "serial")]) == 0
    assert cli_main([*words, "--out", str(tmp_path / "dask"), "--scheduler", address]) == 0

    tables = sorted(path.name for path in (tmp_path / "serial").glob("*.csv"))
    assert {"scores.csv", "participant_scores.csv", "loso_scores.csv", "timecourse_scores.csv"} <= set(tables)
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "serial", tmp_path / "dask", tables, shallow=False)
    assert (mismatch, errors) == ([], [])
    with np.load(tmp_path / "serial" / "heatmaps.npz") as serial, np.load(tmp_path / "dask" / "heatmaps.npz") as dask:
        assert sorted(serial.files) == sorted(dask.files) == ["1001", "1002", "1003"]
        for image_id in serial.files:
            np.testing.assert_array_equal(dask[image_id], serial[image_id])
