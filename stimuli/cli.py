"""``lookwhere stimuli``: prepare and check stimulus sets.

``prepare voc2007`` builds the study's set from a local VOCdevkit (:mod:`stimuli.voc2007`),
``prepare demo`` the bundled demo set (:mod:`stimuli.demo_set`), ``check`` reports on any folder
(:mod:`stimuli.check`) and ``manifest voc2007`` applies the selection rule to a local devkit.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _command(subparsers, name: str, help_text: str, details: str = "") -> argparse.ArgumentParser:
    return subparsers.add_parser(name, help=help_text, description=help_text + details)


def _add_vocdevkit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vocdevkit", type=Path, required=True, help="the VOCdevkit folder (or its VOC2007 folder)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    prepare = _command(actions, "prepare", "build a stimulus folder (VOC 2007 or the demo set)")
    sets = prepare.add_subparsers(dest="set_name", metavar="SET", required=True)
    voc = _command(sets, "voc2007", "copy the study's VOC 2007 images from a local VOCdevkit, verifying each")
    _add_vocdevkit(voc)
    voc.add_argument("--out", type=Path, required=True, help="stimulus folder to create (must not exist)")
    voc.add_argument("--manifest", type=Path, help="selection manifest (default: the committed study manifest)")
    voc.add_argument(
        "--record-checksums",
        action="store_true",
        help="the manifest lacks SHA-256s: record them from this copy into OUT/manifest.csv",
    )
    demo = _command(
        sets,
        "demo",
        "real photographs from scikit-image's bundled samples (no network)",
        "; written once, then verified and reused",
    )
    demo.add_argument("--out", type=Path, help="folder (default: ~/.cache/lookwhere/demo-stimuli)")

    check = _command(
        actions,
        "check",
        "report sizes, display scale and problems of a stimulus folder",
        "; exit status 1 when there are errors",
    )
    check.add_argument("folder", type=Path, help="the stimulus folder")
    check.add_argument(
        "--screen",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        default=[1920, 1080],
        help="screen size in pixels (default: 1920 1080)",
    )
    check.add_argument("--scale", type=float, default=2.0, help="requested display scale (default: 2)")

    manifest = _command(actions, "manifest", "apply a set's selection rule to a local copy and write its manifest")
    manifest_sets = manifest.add_subparsers(dest="set_name", metavar="SET", required=True)
    voc_manifest = _command(
        manifest_sets,
        "voc2007",
        "select VOC 2007 images by the study's rule, with checksums",
        " (the rule: stimuli/voc2007.py)",
    )
    _add_vocdevkit(voc_manifest)
    voc_manifest.add_argument("--out", type=Path, required=True, help="manifest CSV file to write")
    voc_manifest.add_argument("-n", "--count", type=int, default=200, help="how many images (default: 200)")


def main(args: argparse.Namespace) -> int:
    if args.action == "check":
        return _check(args)
    if args.action == "manifest":
        from stimuli.manifest import write_manifest
        from stimuli.voc2007 import build_manifest, select_voc2007, voc2007_root

        selected = select_voc2007(args.vocdevkit, n=args.count)
        entries = build_manifest(selected, jpeg_folder=voc2007_root(args.vocdevkit) / "JPEGImages")
        print(f"manifest: {write_manifest(entries, args.out)} ({len(entries)} images)")
        return 0
    if args.set_name == "voc2007":
        from stimuli.voc2007 import COMMITTED_MANIFEST, prepare_voc2007

        out = prepare_voc2007(
            args.vocdevkit,
            args.out,
            manifest=args.manifest or COMMITTED_MANIFEST,
            record_checksums=args.record_checksums,
        )
    else:
        from stimuli.demo_set import prepare_demo_set

        out = prepare_demo_set(args.out)
    from stimuli.manifest import MANIFEST_NAME

    print(f"stimuli: {out}")
    print(f"manifest: {out / MANIFEST_NAME}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from stimuli.check import check_folder

    report = check_folder(args.folder, screen_px=tuple(args.screen), scale=args.scale)
    rows = [("image_id", "file", "size_px", "mode", "display_px", "scale", "problems")]
    for image in report.images:
        geometry = image.geometry
        rows.append(
            (
                image.image_id,
                image.file_name,
                f"{image.width_px}×{image.height_px}" if image.width_px else "-",
                image.mode or "-",
                f"{geometry.display_width_px}×{geometry.display_height_px}" if geometry else "-",
                f"{geometry.scale_x:.2f}" if geometry else "-",
                "; ".join(f"{problem.severity}: {problem.message}" for problem in image.problems),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print(("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]).rstrip())
    for problem in report.problems:
        print(f"{problem.severity}: {problem.message}")
    screen_w, screen_h = report.screen_px
    print(
        f"{report.folder}: {len(report.images)} images on a {screen_w}×{screen_h} screen at ×{report.scale:g}; "
        f"{report.n_errors} error(s), {report.n_warnings} warning(s)"
    )
    return 1 if report.n_errors else 0
