"""The demo set: scikit-image's bundled photographs, written once and reused.

Oracle: the pixels returned by ``skimage.data`` (the reference the files are made from) and
``hashlib`` over the written files.
"""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from stimuli.demo_set import DEMO_IMAGES, default_demo_folder, prepare_demo_set
from stimuli.manifest import read_manifest
from stimuli.sets import StimulusSet

IDS = ["astronaut", "cat", "coffee", "rocket", "motorcycle", "cameraman", "coins"]


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    return prepare_demo_set(tmp_path_factory.mktemp("demo") / "stimuli")


def test_demo_set_holds_the_bundled_photographs(demo_folder):
    stimuli = StimulusSet(demo_folder)
    assert sorted(stimuli.image_ids) == sorted(IDS) == sorted(d.image_id for d in DEMO_IMAGES)
    np.testing.assert_array_equal(stimuli.load_rgb("cat"), skimage.data.chelsea())
    np.testing.assert_array_equal(stimuli.load_rgb("motorcycle"), skimage.data.stereo_motorcycle()[0])
    # Grayscale photographs are stored as RGB with three equal channels.
    np.testing.assert_array_equal(stimuli.load_rgb("cameraman"), np.dstack([skimage.data.camera()] * 3))
    assert stimuli.size("coffee") == (600, 400)


def test_manifest_lists_source_size_and_checksum(demo_folder):
    entries = read_manifest(demo_folder / "manifest.csv")
    assert [e.image_id for e in entries] == IDS
    for entry in entries:
        path = demo_folder / f"{entry.image_id}.png"
        assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert StimulusSet(demo_folder).size(entry.image_id) == (entry.width_px, entry.height_px)
        assert entry.width_px <= 1920 and entry.height_px <= 1080
    assert entries[1].extra["source"] == "skimage.data.chelsea"


def test_second_call_reuses_the_files(demo_folder):
    before = {p.name: p.stat().st_mtime_ns for p in demo_folder.iterdir()}
    assert prepare_demo_set(demo_folder) == demo_folder
    assert {p.name: p.stat().st_mtime_ns for p in demo_folder.iterdir()} == before


def test_bytes_are_deterministic(demo_folder, tmp_path):
    again = prepare_demo_set(tmp_path / "again")
    assert (again / "manifest.csv").read_bytes() == (demo_folder / "manifest.csv").read_bytes()


def test_an_altered_demo_folder_is_rebuilt(demo_folder, tmp_path):
    folder = Path(shutil.copytree(demo_folder, tmp_path / "copy"))
    expected = (folder / "cat.png").read_bytes()
    (folder / "cat.png").write_bytes(b"not a png")
    (folder / "rocket.png").unlink()
    prepare_demo_set(folder)
    assert (folder / "cat.png").read_bytes() == expected
    assert (folder / "rocket.png").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["copy"]  # no staging or retired folders left


def test_a_foreign_folder_is_left_alone(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="is not a demo stimulus set"):
        prepare_demo_set(tmp_path / "photos")
    assert (tmp_path / "photos" / "holiday.jpg").read_bytes() == b"mine"


def test_default_folder_follows_the_cache_variables(monkeypatch, tmp_path):
    monkeypatch.delenv("LOOKWHERE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_demo_folder() == tmp_path / "xdg" / "lookwhere" / "demo-stimuli"
    monkeypatch.setenv("LOOKWHERE_CACHE_DIR", str(tmp_path / "own"))
    assert default_demo_folder() == tmp_path / "own" / "demo-stimuli"
    monkeypatch.delenv("LOOKWHERE_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_demo_folder() == tmp_path / "home" / ".cache" / "lookwhere" / "demo-stimuli"
