"""The map store: NumPy bilinear upsampling, round trip, metadata, resume, errors, no torch.

Oracles: ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` and OpenCV's
``INTER_LINEAR`` for the upsampling; the arrays written for the round trip; counted calls for the
resume.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from analysis.cnn import precompute as precompute_module
from analysis.cnn.engine import MAP_NAMES, MapParameters
from analysis.cnn.precompute import precompute_store
from analysis.cnn.store import MapStore, MapStoreWriter, resize_bilinear
from stimuli.sets import StimulusSet

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((14, 14), (600, 800)),  # Grad-CAM at 224 input → an OSIE image
        ((224, 224), (375, 500)),  # guided map → a VOC image
        ((7, 5), (7, 5)),  # identity
        ((13, 9), (20, 31)),  # non-integer factors
        ((224, 224), (100, 150)),  # downsampling (no antialiasing, as torch)
        ((1, 4), (3, 9)),  # a single row
    ],
)
def test_resize_bilinear_equals_torch(source, target):
    """Against torch in float64: torch's float32 CPU kernel itself is up to ~1e-4 off its float64
    result (and OpenCV's) on N(0, 1) data, while ours is computed in float64 and rounded once."""
    array = np.random.default_rng(0).normal(size=source).astype(np.float32)
    reference = torch.from_numpy(array.astype(np.float64))[None, None]
    expected = torch.nn.functional.interpolate(reference, size=target, mode="bilinear", align_corners=False)[
        0, 0
    ].numpy()
    result = resize_bilinear(array, target)
    assert result.dtype == np.float32 and result.shape == target
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-6)


def test_resize_bilinear_equals_opencv_inter_linear():
    cv2 = pytest.importorskip("cv2")
    array = np.random.default_rng(1).random((14, 14)).astype(np.float32)
    expected = cv2.resize(array, (800, 600), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(resize_bilinear(array, (600, 800)), expected, atol=1e-6)


def test_resize_bilinear_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(h, w\)"):
        resize_bilinear(np.zeros(5), (3, 3))
    with pytest.raises(ValueError, match="shape"):
        resize_bilinear(np.zeros((2, 2)), (0, 3))


def _metadata(**changes) -> dict:
    metadata = {
        "map_names": ["a", "b"],
        "model": {"architecture": "test"},
        "weights": {"label": "untrained", "untrained": True, "seed": 0},
        "input": {"size": [32, 32]},
        "parameters": {"gt": "mean"},
    }
    metadata.update(changes)
    return metadata


def test_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    written = {
        "x1": {"a": rng.random((4, 4)), "b": rng.random((32, 32))},
        "x2": {"a": rng.random((4, 4)), "b": rng.random((32, 32))},
    }
    writer = MapStoreWriter(tmp_path / "store", _metadata())
    for image_id, maps in written.items():
        writer.write_image(image_id, maps, record={"target_class": 7, "original_shape": [50, 60]})
    writer.write_cam_weights(np.ones((3, 2)), np.zeros(3), info={"ridge_alpha": 0.01})
    store = MapStore.open(tmp_path / "store")
    assert store.image_ids == ["x1", "x2"] and store.map_names == ("a", "b") and store.is_untrained
    assert store.metadata["images"]["x2"]["target_class"] == 7
    assert store.metadata["cam"] == {"ridge_alpha": 0.01}
    native = store.load_native("x1")
    np.testing.assert_array_equal(native["a"], written["x1"]["a"].astype(np.float32))
    loaded = store.load("x1", shape=(50, 60))
    assert all(m.shape == (50, 60) and m.dtype == np.float32 for m in loaded.values())
    np.testing.assert_array_equal(loaded["b"], resize_bilinear(native["b"], (50, 60)))
    weights, bias = store.cam_weights()
    assert weights.shape == (3, 2) and bias.shape == (3,)
    exported = store.export_npz(tmp_path / "npz")
    assert [p.name for p in exported] == ["x1.npz", "x2.npz"]
    with np.load(exported[0]) as data:
        assert sorted(data.files) == ["a", "b"]
        np.testing.assert_array_equal(data["a"], loaded["a"])
    with pytest.raises(KeyError, match="no maps for image 'x3'"):
        store.load("x3", shape=(5, 5))
    with pytest.raises(ValueError, match="exactly"):
        writer.write_image("x3", {"a": np.zeros((2, 2))}, record={})
    with pytest.raises(ValueError, match="not finite"):
        writer.write_image("x3", {"a": np.full((2, 2), np.nan), "b": np.zeros((2, 2))}, record={})


def test_store_reading_does_not_import_torch(tmp_path):
    writer = MapStoreWriter(tmp_path / "store", _metadata())
    writer.write_image("x1", {"a": np.ones((2, 2)), "b": np.ones((3, 3))}, record={})
    code = (
        "import sys; from analysis.cnn.store import MapStore; "
        f"s = MapStore.open({str(tmp_path / 'store')!r}); s.load('x1', shape=(9, 9)); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_clear_errors_on_missing_or_corrupt_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="lookwhere precompute"):
        MapStore.open(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="metadata.json is missing"):
        MapStore.open(tmp_path / "empty")
    writer = MapStoreWriter(tmp_path / "store", _metadata())
    writer.write_image("x1", {"a": np.ones((2, 2)), "b": np.ones((3, 3))}, record={})
    image_file = tmp_path / "store" / "maps" / "x1.npz"
    image_file.write_bytes(image_file.read_bytes()[:40])  # truncated
    with pytest.raises(ValueError, match=r"x1\.npz is unreadable.*Rebuild"):
        MapStore.open(tmp_path / "store")
    (tmp_path / "store" / "metadata.json").write_text("{not json")
    with pytest.raises(ValueError, match=f"map store {tmp_path / 'store'}: metadata.json is not valid JSON"):
        MapStore.open(tmp_path / "store")
    (tmp_path / "store" / "metadata.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="does not describe a lookwhere-map-store"):
        MapStore.open(tmp_path / "store")


def test_resuming_with_other_settings_is_refused(tmp_path):
    MapStoreWriter(tmp_path / "store", _metadata())
    with pytest.raises(ValueError, match="parameters.gt: stored 'mean', requested 'sum'"):
        MapStoreWriter(tmp_path / "store", _metadata(parameters={"gt": "sum"}))


@pytest.fixture()
def stimuli(tmp_path) -> StimulusSet:
    """Four random RGB images of different sizes (the smallest 32×40: VGG16 needs >= 32 px)."""
    folder = tmp_path / "stimuli"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for index, (height, width) in enumerate([(32, 40), (45, 35), (40, 40), (50, 70)]):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"im{index}.png")
    return StimulusSet(folder)


def test_precompute_builds_a_complete_store(vgg, stimuli, tmp_path):
    store = precompute_store(
        vgg,
        stimuli,
        tmp_path / "store",
        input_size=32,
        batch_size=3,
        device="cpu",
        parameters=MapParameters(gt="sum"),
        progress=False,
    )
    assert store.image_ids == ["im0", "im1", "im2", "im3"] and store.map_names == MAP_NAMES
    metadata = store.metadata
    assert store.is_untrained and metadata["weights"]["label"] == "untrained" and metadata["weights"]["seed"] == 0
    assert metadata["input"]["size"] == [32, 32] and "never cropped" in metadata["input"]["resize"]
    assert metadata["parameters"]["gt"] == "sum" and metadata["parameters"]["layer_norm"] == "minmax"
    assert metadata["model"]["block_outputs"]["relu5_3"] == "features[29]"
    assert {"torch", "torchvision", "numpy", "python"} <= set(metadata["versions"])
    assert metadata["device"]["type"] == "cpu" and "tf32_cudnn" in metadata["device"]
    assert metadata["cam"]["fitting_image_ids"] == store.image_ids and metadata["cam"]["ridge_alpha"] == 0.01
    record = metadata["images"]["im1"]
    assert record["original_shape"] == [45, 35] and record["network_shape"] == [32, 32]
    assert metadata["images"]["im0"]["original_shape"] == [32, 40]
    assert isinstance(record["target_class"], int) and 0 <= record["target_class"] < 1000
    maps = store.load("im1", shape=(45, 35))
    assert set(maps) == set(MAP_NAMES) and all(m.shape == (45, 35) for m in maps.values())
    assert store.load_native("im1")["gradcam"].shape == (2, 2)


def test_precompute_resumes_after_an_interruption(vgg, stimuli, tmp_path, monkeypatch):
    real_write = MapStoreWriter.write_image
    written: list[str] = []

    def write_then_fail(self, image_id, maps, *, record):
        if len(written) == 2:
            raise KeyboardInterrupt  # as a user pressing Ctrl-C after two images
        written.append(image_id)
        return real_write(self, image_id, maps, record=record)

    monkeypatch.setattr(MapStoreWriter, "write_image", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        precompute_store(vgg, stimuli, tmp_path / "store", input_size=32, batch_size=1, device="cpu", progress=False)
    monkeypatch.undo()
    partial = MapStore.open(tmp_path / "store")
    assert partial.image_ids == ["im0", "im1"]
    finished_file = tmp_path / "store" / "maps" / "im0.npz"
    first_bytes, first_mtime = finished_file.read_bytes(), finished_file.stat().st_mtime_ns
    cam_before = partial.cam_weights()[0]

    computed: list[int] = []
    real_compute = precompute_module.compute_maps

    def counting_compute(model, images, **options):
        computed.append(images.shape[0])
        return real_compute(model, images, **options)

    monkeypatch.setattr(precompute_module, "compute_maps", counting_compute)
    monkeypatch.setattr(precompute_module, "fit_cam_weights", lambda *a, **k: pytest.fail("CAM refitted"))
    store = precompute_store(
        vgg, stimuli, tmp_path / "store", input_size=32, batch_size=1, device="cpu", progress=False
    )
    assert sum(computed) == 2  # only im2 and im3
    assert store.image_ids == ["im0", "im1", "im2", "im3"]
    assert finished_file.read_bytes() == first_bytes and finished_file.stat().st_mtime_ns == first_mtime
    np.testing.assert_array_equal(store.cam_weights()[0], cam_before)
    assert not list((tmp_path / "store" / "maps").glob(".*"))  # no temporary files left


def test_native_input_size_batches_equal_shapes_only(vgg, stimuli, tmp_path):
    store = precompute_store(
        vgg,
        stimuli,
        tmp_path / "store",
        input_size=None,
        batch_size=4,
        device="cpu",
        image_ids=["im0", "im3"],
        progress=False,
    )
    assert store.metadata["input"]["size"] == "native"
    assert store.metadata["images"]["im3"]["network_shape"] == [50, 70]
    assert store.load_native("im3")["guided_backprop"].shape == (50, 70)
    assert store.load_native("im0")["gradcam"].shape == (2, 2)  # 32×40 pooled 4 times (floored)
    with pytest.raises(KeyError, match="not in the stimulus set"):
        precompute_store(vgg, stimuli, tmp_path / "other", image_ids=["nope"], progress=False)
    Image.new("RGB", (20, 40)).save(stimuli.folder / "tiny.png")
    with pytest.raises(ValueError, match=r"tiny.*\(40, 20\).*--input-size 224"):
        precompute_store(vgg, stimuli, tmp_path / "other", input_size=None, progress=False)
