"""``lookwhere stimuli``: prepare, check and manifest, run in-process through ``lookwhere.cli.main``.

Oracles: images made by the test with known sizes and modes, hand-computed display scales on the
paper's 1920×1080 screen, and the synthetic VOCdevkit of ``_vocdevkit``.
"""

import numpy as np
import pytest
from PIL import Image

from lookwhere.cli import main
from stimuli.manifest import read_manifest
from tests.stimuli._vocdevkit import SELECTED_3, make_vocdevkit


def _lines_about(output: str, name: str) -> str:
    return "\n".join(line for line in output.splitlines() if name in line)


@pytest.fixture
def voc_selection(tmp_path, capsys):
    """A synthetic VOCdevkit and the manifest of its first 3 images, made by ``stimuli manifest``."""
    vocdevkit = make_vocdevkit(tmp_path / "data")
    manifest = tmp_path / "selection.csv"
    assert (
        main(["stimuli", "manifest", "voc2007", "--vocdevkit", str(vocdevkit), "--out", str(manifest), "-n", "3"]) == 0
    )
    assert "(3 images)" in capsys.readouterr().out
    return vocdevkit, manifest


def test_prepare_demo_then_check_it(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["stimuli", "prepare", "demo", "--out", str(out)]) == 0
    assert f"stimuli: {out}" in capsys.readouterr().out

    assert main(["stimuli", "check", str(out)]) == 0
    report = capsys.readouterr().out
    # astronaut 512×512 at ×2 = 1024×1024 ≤ 1080 px: the full ×2.
    assert "1024×1024" in _lines_about(report, "astronaut.png") and "2.00" in _lines_about(report, "astronaut.png")
    # motorcycle 741×500 at ×2 = 1482×1000: fits.
    assert "1482×1000" in _lines_about(report, "motorcycle.png")
    assert "7 images on a 1920×1080 screen at ×2; 0 error(s), 0 warning(s)" in report

    # A 1280×720 screen: coffee 600×400 fits at min(2, 1280/600, 720/400) = 1.80 → 1080×720.
    assert main(["stimuli", "check", str(out), "--screen", "1280", "720"]) == 0
    assert "1080×720" in _lines_about(capsys.readouterr().out, "coffee.png")


def test_check_reports_every_kind_of_problem(tmp_path, capsys):
    folder = tmp_path / "lab"
    folder.mkdir()
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(folder / "ok.png")
    Image.fromarray(np.zeros((300, 400), np.uint8)).save(folder / "gray.png")  # mode L: warning
    Image.fromarray(np.zeros((100, 2000, 3), np.uint8)).save(folder / "wide.png")  # > 1920 at ×1: error
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")  # unreadable: error
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(folder / "twin.png")  # same id twice: error
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(folder / "twin.jpg")
    (folder / "notes.txt").write_text("not an image, ignored")

    assert main(["stimuli", "check", str(folder)]) == 1
    report = capsys.readouterr().out
    assert "800×600" in _lines_about(report, "ok.png") and "error" not in _lines_about(report, "ok.png")
    assert "warning: mode L, not RGB" in _lines_about(report, "gray.png")
    # 2000×100 on 1920×1080: shown at 1920/2000 = 0.96.
    assert "error: larger than the 1920×1080 screen at ×1" in _lines_about(report, "wide.png")
    assert "0.96" in _lines_about(report, "wide.png")
    assert "error: unreadable" in _lines_about(report, "broken.jpg")
    assert "id 'twin' is also used by twin.png" in _lines_about(report, "twin.jpg")
    assert "notes.txt" not in report
    assert "6 images on a 1920×1080 screen at ×2; 4 error(s), 1 warning(s)" in report


def test_check_of_an_empty_or_absent_folder(tmp_path, capsys):
    assert main(["stimuli", "check", str(tmp_path)]) == 1
    assert "error: no images in" in capsys.readouterr().out
    assert main(["stimuli", "check", str(tmp_path / "nowhere")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err


def test_voc2007_manifest_prepare_and_check(voc_selection, tmp_path, capsys):
    vocdevkit, manifest = voc_selection
    assert [e.image_id for e in read_manifest(manifest)] == SELECTED_3

    out = tmp_path / "voc"
    assert (
        main(
            [
                "stimuli",
                "prepare",
                "voc2007",
                "--vocdevkit",
                str(vocdevkit),
                "--out",
                str(out),
                "--manifest",
                str(manifest),
            ]
        )
        == 0
    )
    assert f"manifest: {out / 'manifest.csv'}" in capsys.readouterr().out

    assert main(["stimuli", "check", str(out)]) == 0
    assert "3 images on a 1920×1080 screen at ×2; 0 error(s), 0 warning(s)" in capsys.readouterr().out

    # The folder's manifest catches a later change to an image.
    with open(out / "000003.jpg", "ab") as file:
        file.write(b"\0")
    assert main(["stimuli", "check", str(out)]) == 1
    assert "error: manifest.csv: 000003: 000003.jpg was altered" in capsys.readouterr().out


def test_prepare_voc2007_failure_is_one_clear_error(voc_selection, tmp_path, capsys):
    vocdevkit, manifest = voc_selection
    (vocdevkit / "VOC2007" / "JPEGImages" / "000008.jpg").unlink()
    out = tmp_path / "voc"
    assert (
        main(
            [
                "stimuli",
                "prepare",
                "voc2007",
                "--vocdevkit",
                str(vocdevkit),
                "--out",
                str(out),
                "--manifest",
                str(manifest),
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert error.startswith("lookwhere stimuli: error: cannot prepare VOC 2007")
    assert "000008: missing" in error
    assert not out.exists()


def test_committed_manifest_needs_record_checksums(tmp_path, capsys):
    vocdevkit = make_vocdevkit(tmp_path / "data")
    assert main(["stimuli", "prepare", "voc2007", "--vocdevkit", str(vocdevkit), "--out", str(tmp_path / "voc")]) == 2
    assert "--record-checksums" in capsys.readouterr().err
    # With the flag, the synthetic devkit lacks the study's images: all 200 are reported missing.
    assert (
        main(
            [
                "stimuli",
                "prepare",
                "voc2007",
                "--vocdevkit",
                str(vocdevkit),
                "--out",
                str(tmp_path / "voc"),
                "--record-checksums",
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert "200 problem(s)" in error and "001086: missing" in error


@pytest.mark.parametrize(
    "argv",
    [
        ["stimuli", "prepare"],
        ["stimuli", "manifest", "voc2007", "--out", "x.csv"],
    ],
)
def test_incomplete_commands_are_usage_errors(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
