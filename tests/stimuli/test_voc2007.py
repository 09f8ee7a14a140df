"""VOC 2007: annotation parsing, the selection rule, the manifest, and ``prepare`` with its failures.

Oracles: the annotation of VOC 2007 image 000001 as published in the devkit, and a synthetic
VOCdevkit (``_vocdevkit``) whose qualifying images are known by construction; checksums are compared
with ``hashlib`` over the source files.
"""

import hashlib
import shutil

import pytest

from stimuli.manifest import read_manifest, write_manifest
from stimuli.sets import StimulusSet
from stimuli.voc2007 import (
    COMMITTED_MANIFEST,
    VOC_CLASSES,
    build_manifest,
    prepare_voc2007,
    read_voc_annotation,
    select_voc2007,
)
from tests.stimuli._vocdevkit import IMAGES, QUALIFYING, SELECTED_3, make_vocdevkit

# VOCdevkit/VOC2007/Annotations/000001.xml
VOC_000001 = """<annotation>
\t<folder>VOC2007</folder>
\t<filename>000001.jpg</filename>
\t<source>
\t\t<database>The VOC2007 Database</database>
\t\t<annotation>PASCAL VOC2007</annotation>
\t\t<image>flickr</image>
\t\t<flickrid>341012865</flickrid>
\t</source>
\t<owner>
\t\t<flickrid>Fried Camels</flickrid>
\t\t<name>Jinky the Fruit Bat</name>
\t</owner>
\t<size>
\t\t<width>353</width>
\t\t<height>500</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>dog</name>
\t\t<pose>Left</pose>
\t\t<truncated>1</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>48</xmin>
\t\t\t<ymin>240</ymin>
\t\t\t<xmax>195</xmax>
\t\t\t<ymax>371</ymax>
\t\t</bndbox>
\t</object>
\t<object>
\t\t<name>person</name>
\t\t<pose>Left</pose>
\t\t<truncated>1</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>8</xmin>
\t\t\t<ymin>12</ymin>
\t\t\t<xmax>352</xmax>
\t\t\t<ymax>498</ymax>
\t\t</bndbox>
\t</object>
</annotation>
"""


@pytest.fixture
def vocdevkit(tmp_path):
    return make_vocdevkit(tmp_path / "data")


def _jpeg(vocdevkit, image_id):
    return vocdevkit / "VOC2007" / "JPEGImages" / f"{image_id}.jpg"


def _selection(vocdevkit, path, *, n=3, checksums=True):
    """The rule's first ``n`` images of the synthetic devkit, as a manifest file at ``path``."""
    jpeg_folder = vocdevkit / "VOC2007" / "JPEGImages" if checksums else None
    return write_manifest(build_manifest(select_voc2007(vocdevkit, n=n), jpeg_folder=jpeg_folder), path)


def test_reads_a_real_voc_annotation(tmp_path):
    path = tmp_path / "000001.xml"
    path.write_text(VOC_000001)
    annotation = read_voc_annotation(path)
    assert (annotation.image_id, annotation.filename) == ("000001", "000001.jpg")
    assert (annotation.width_px, annotation.height_px, annotation.depth) == (353, 500, 3)
    assert [(obj.name, obj.difficult, obj.truncated) for obj in annotation.objects] == [
        ("dog", False, True),
        ("person", False, True),
    ]
    assert annotation.classes == ("dog", "person")


def test_difficult_objects_do_not_count(vocdevkit):
    annotation = read_voc_annotation(vocdevkit / "VOC2007" / "Annotations" / "000009.xml")
    assert len(annotation.objects) == 3
    assert [obj.name for obj in annotation.named_objects] == ["horse", "person"]
    assert annotation.classes == ("horse", "person")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda xml: xml.replace("<width>353</width>", ""), r"000001.xml: <size><width> is missing"),
        (
            lambda xml: xml.replace("<height>500</height>", "<height>tall</height>"),
            r"<height> must be an integer; got 'tall'",
        ),
        (
            lambda xml: xml.replace("<difficult>0</difficult>", "<difficult>yes</difficult>", 1),
            r"<difficult> must be 0 or 1",
        ),
        (lambda xml: xml.replace("</annotation>\n", ""), r"000001.xml is not a VOC annotation"),
    ],
)
def test_malformed_annotations_name_the_file_and_element(tmp_path, edit, message):
    path = tmp_path / "000001.xml"
    path.write_text(edit(VOC_000001))
    with pytest.raises(ValueError, match=message):
        read_voc_annotation(path)


def test_selection_rule_on_the_synthetic_devkit(vocdevkit):
    # Excluded by construction: 000002 (one class), 000004 (one class, three objects), 000005
    # (trainval), 000006 (second class difficult), 000007 (970 px > 960 px).
    assert [a.image_id for a in select_voc2007(vocdevkit, n=3)] == SELECTED_3
    assert [a.image_id for a in select_voc2007(vocdevkit / "VOC2007", n=4)] == QUALIFYING
    # A smaller screen drops 000001 (50 px high: ×2 = 100 px > 90 px).
    assert "000001" not in [a.image_id for a in select_voc2007(vocdevkit, n=2, screen_px=(1920, 90))]


def test_too_few_qualifying_images_is_an_error(vocdevkit):
    with pytest.raises(ValueError, match=r"only 4 of 8 images .* asked for 10"):
        select_voc2007(vocdevkit, n=10)


def test_not_a_devkit_says_what_it_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="Annotations/ and JPEGImages/"):
        select_voc2007(tmp_path)


def test_build_manifest_records_sizes_classes_and_checksums(vocdevkit):
    selected = select_voc2007(vocdevkit, n=3)
    entries = build_manifest(selected, jpeg_folder=vocdevkit / "VOC2007" / "JPEGImages")
    assert [e.image_id for e in entries] == SELECTED_3
    assert [(e.width_px, e.height_px) for e in entries] == [IMAGES[i][1:3] for i in SELECTED_3]
    assert [e.extra["classes"] for e in entries] == ["dog;person", "chair;sofa", "bird;cat;dog"]
    assert [e.extra["n_objects"] for e in entries] == ["2", "2", "3"]
    for entry in entries:
        assert entry.sha256 == hashlib.sha256(_jpeg(vocdevkit, entry.image_id).read_bytes()).hexdigest()
    # Without the JPEGs the checksums stay empty.
    assert {e.sha256 for e in build_manifest(selected)} == {""}


def test_prepare_copies_and_verifies(vocdevkit, tmp_path):
    manifest = _selection(vocdevkit, tmp_path / "selection.csv")
    out = prepare_voc2007(vocdevkit, tmp_path / "stimuli", manifest=manifest)
    assert StimulusSet(out).image_ids == SELECTED_3
    for image_id in SELECTED_3:
        assert (out / f"{image_id}.jpg").read_bytes() == _jpeg(vocdevkit, image_id).read_bytes()
    assert read_manifest(out / "manifest.csv") == read_manifest(manifest)


def test_prepare_lists_every_problem_and_leaves_nothing_behind(vocdevkit, tmp_path):
    manifest = _selection(vocdevkit, tmp_path / "selection.csv", n=4)
    _jpeg(vocdevkit, "000001").unlink()  # missing
    with open(_jpeg(vocdevkit, "000003"), "ab") as file:  # altered (same size)
        file.write(b"\0")
    shutil.copyfile(_jpeg(vocdevkit, "000002"), _jpeg(vocdevkit, "000008"))  # another image: wrong size
    with pytest.raises(ValueError) as error:
        prepare_voc2007(vocdevkit, tmp_path / "out" / "stimuli", manifest=manifest)
    message = str(error.value)
    assert "4 problem(s)" in message  # 000008 is both of the wrong size and altered
    assert "000001: missing" in message and "000001.jpg" in message
    assert "000003: 000003.jpg was altered" in message
    assert "000008: 000008.jpg is 33×50 px, the manifest says 40×30 px" in message
    assert "000009" not in message
    assert list((tmp_path / "out").iterdir()) == []  # no output folder, no staging folder


def test_prepare_needs_checksums_or_records_them(vocdevkit, tmp_path):
    manifest = _selection(vocdevkit, tmp_path / "no_sums.csv", checksums=False)
    with pytest.raises(ValueError, match=r"no SHA-256 for 3 of its 3 images .* --record-checksums"):
        prepare_voc2007(vocdevkit, tmp_path / "stimuli", manifest=manifest)
    assert not (tmp_path / "stimuli").exists()

    out = prepare_voc2007(vocdevkit, tmp_path / "stimuli", manifest=manifest, record_checksums=True)
    recorded = read_manifest(out / "manifest.csv")
    assert [e.sha256 for e in recorded] == [
        hashlib.sha256(_jpeg(vocdevkit, image_id).read_bytes()).hexdigest() for image_id in SELECTED_3
    ]
    # The completed manifest now pins the copy: a second preparation verifies against it.
    assert prepare_voc2007(vocdevkit, tmp_path / "again", manifest=out / "manifest.csv") == tmp_path / "again"


def test_recording_checksums_still_checks_sizes(vocdevkit, tmp_path):
    manifest = _selection(vocdevkit, tmp_path / "no_sums.csv", checksums=False)
    shutil.copyfile(_jpeg(vocdevkit, "000002"), _jpeg(vocdevkit, "000003"))
    with pytest.raises(ValueError, match=r"000003: 000003.jpg is 33×50 px, the manifest says 50×37 px"):
        prepare_voc2007(vocdevkit, tmp_path / "stimuli", manifest=manifest, record_checksums=True)


def test_prepare_refuses_an_occupied_output_folder(vocdevkit, tmp_path):
    manifest = _selection(vocdevkit, tmp_path / "selection.csv")
    (tmp_path / "stimuli").mkdir()
    (tmp_path / "stimuli" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        prepare_voc2007(vocdevkit, tmp_path / "stimuli", manifest=manifest)
    assert [p.name for p in (tmp_path / "stimuli").iterdir()] == ["notes.txt"]


def test_committed_manifest_follows_the_rule():
    entries = read_manifest(COMMITTED_MANIFEST)
    ids = [e.image_id for e in entries]
    assert len(entries) == 200 and ids == sorted(ids)
    assert ids[:4] == ["000001", "000003", "000006", "000010"]
    for entry in entries:
        classes = entry.extra["classes"].split(";")
        assert len(classes) >= 2 and set(classes) <= set(VOC_CLASSES) and classes == sorted(set(classes))
        assert int(entry.extra["n_objects"]) >= len(classes)
        assert entry.width_px * 2 <= 1920 and entry.height_px * 2 <= 1080
        assert max(entry.width_px, entry.height_px) <= 500  # every VOC 2007 image
    # Checksums need the JPEGs, which were not available (stimuli/data/README.md).
    assert {e.sha256 for e in entries} == {""}
