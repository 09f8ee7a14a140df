"""Stimulus manifests: which images a prepared folder holds, their sizes and SHA-256 checksums.

A manifest is a CSV file with one row per image and at least the columns ``image_id``,
``width_px``, ``height_px`` and ``sha256`` (64 lowercase hex digits, or empty when not recorded
yet). A set adds its own columns after these (VOC 2007: ``classes``, ``n_objects``; the demo set:
``source``, ``description``). A prepared stimulus folder keeps its manifest beside the images as
``manifest.csv``; :class:`~stimuli.sets.StimulusSet` ignores it, ``lookwhere stimuli check`` verifies
the images against it.

Folders are published atomically (:func:`publish_folder`): they are written to a hidden staging
folder beside the target and renamed into place only when complete, so an interrupted or failed
preparation never leaves a half-written stimulus folder.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "MANIFEST_NAME",
    "REQUIRED_COLUMNS",
    "ManifestEntry",
    "sha256_of",
    "image_size",
    "read_manifest",
    "write_manifest",
    "verify_images",
    "publish_folder",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
REQUIRED_COLUMNS = ("image_id", "width_px", "height_px", "sha256")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ManifestEntry:
    """One image of a manifest.

    Parameters
    ----------
    image_id : str
        The image's identifier: its file name without extension.
    width_px, height_px : int
        Size of the original image.
    sha256 : str
        SHA-256 of the image file (64 lowercase hex digits), or ``""`` when not recorded yet.
    extra : mapping of str to str
        The set's own columns, e.g. ``{"classes": "dog;person"}``.
    """

    image_id: str
    width_px: int
    height_px: int
    sha256: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.image_id, str) or not self.image_id.strip() or "/" in self.image_id:
            problems.append(f"image_id must be a non-empty file stem; got {self.image_id!r}")
        for name in ("width_px", "height_px"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                problems.append(f"{name} must be a positive integer; got {value!r}")
        if self.sha256 and not _SHA256.fullmatch(self.sha256):
            problems.append(f"sha256 must be 64 lowercase hex digits or empty; got {self.sha256!r}")
        if problems:
            raise ValueError("; ".join(problems))


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width_px, height_px)`` of an image file, read from its header.

    Raises
    ------
    OSError
        When the file is not an image Pillow can read; the message names the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError) as error:
        raise OSError(f"cannot read image {path}: {error}") from error


def read_manifest(path: str | os.PathLike) -> list[ManifestEntry]:
    """Read a manifest CSV file.

    Every row problem (a bad size, a malformed checksum, a repeated id) is reported together, each
    with its line number.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        When a required column is missing or any row is invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        columns = reader.fieldnames or []
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise ValueError(
                f"manifest {path} lacks the column(s) {', '.join(missing)}; "
                f"a manifest needs {', '.join(REQUIRED_COLUMNS)} (found: {', '.join(columns) or 'none'})"
            )
        extra_columns = [name for name in columns if name not in REQUIRED_COLUMNS]
        entries: list[ManifestEntry] = []
        first_line: dict[str, int] = {}
        problems: list[str] = []
        for row in reader:
            line = reader.line_num
            try:
                entry = ManifestEntry(
                    image_id=row["image_id"] or "",
                    width_px=_positive_int(row["width_px"], "width_px"),
                    height_px=_positive_int(row["height_px"], "height_px"),
                    sha256=(row["sha256"] or "").strip(),
                    extra={name: row[name] or "" for name in extra_columns},
                )
            except ValueError as error:
                problems.append(f"line {line}: {error}")
                continue
            if entry.image_id in first_line:
                problems.append(f"line {line}: image_id {entry.image_id!r} repeats line {first_line[entry.image_id]}")
                continue
            first_line[entry.image_id] = line
            entries.append(entry)
    if problems:
        raise ValueError(f"manifest {path} has {len(problems)} invalid row(s):\n  " + "\n  ".join(problems))
    return entries


def _positive_int(text: str | None, name: str) -> int:
    try:
        return int(text or "")
    except ValueError:
        raise ValueError(f"{name} must be a positive integer; got {text!r}") from None


def write_manifest(entries: Iterable[ManifestEntry], path: str | os.PathLike) -> Path:
    """Write a manifest CSV file: the required columns, then each entry's extra columns in order
    of first appearance. Returns the path."""
    entries = list(entries)
    columns = list(REQUIRED_COLUMNS)
    for entry in entries:
        columns += [name for name in entry.extra if name not in columns]
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for entry in entries:
            writer.writerow(
                {
                    "image_id": entry.image_id,
                    "width_px": entry.width_px,
                    "height_px": entry.height_px,
                    "sha256": entry.sha256,
                    **entry.extra,
                }
            )
    return path


def verify_images(entries: Iterable[ManifestEntry], paths: Mapping[str, Path]) -> list[str]:
    """Check image files against their manifest entries.

    Parameters
    ----------
    entries : iterable of ManifestEntry
        What the files should be. An entry without a checksum is checked for its size only.
    paths : mapping of str to Path
        Image id → the file to check; an id absent from the mapping counts as a missing file.

    Returns
    -------
    list of str
        One line per problem (missing file, unreadable image, wrong size, altered checksum), each
        starting with the image id; empty when every file matches.
    """
    problems = []
    for entry in entries:
        path = paths.get(entry.image_id)
        if path is None or not Path(path).is_file():
            problems.append(f"{entry.image_id}: missing ({path or 'no file with this id'})")
            continue
        try:
            width, height = image_size(path)
        except OSError as error:
            problems.append(f"{entry.image_id}: unreadable ({error})")
            continue
        if (width, height) != (entry.width_px, entry.height_px):
            problems.append(
                f"{entry.image_id}: {path.name} is {width}×{height} px, "
                f"the manifest says {entry.width_px}×{entry.height_px} px"
            )
        if entry.sha256:
            actual = sha256_of(path)
            if actual != entry.sha256:
                problems.append(
                    f"{entry.image_id}: {path.name} was altered: SHA-256 {actual}, the manifest says {entry.sha256}"
                )
    return problems


def publish_folder(out_dir: str | os.PathLike, fill: Callable[[Path], None], *, replace: bool = False) -> Path:
    """Create a folder atomically: ``fill`` writes into a staging folder, which is then renamed.

    Parameters
    ----------
    out_dir : path
        The folder to create. It may exist only when empty, unless ``replace``.
    fill : callable
        Called with the staging folder (beside ``out_dir``, on the same file system); whatever it
        raises aborts the publication and removes the staging folder.
    replace : bool
        Replace an existing ``out_dir`` (the old folder is removed only after the new one is in place).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    FileExistsError
        When ``out_dir`` exists, is not an empty folder, and ``replace`` is false.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not replace and not (out_dir.is_dir() and not any(out_dir.iterdir())):
        raise FileExistsError(
            f"{out_dir} already exists and is not an empty folder; choose another output folder or remove it"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        fill(staging)
        if out_dir.exists():
            # Renaming onto a non-empty folder fails, so the old one steps aside first.
            retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            os.replace(out_dir, retired)
            os.replace(staging, out_dir)
            shutil.rmtree(retired)
        else:
            os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("published %s", out_dir)
    return out_dir
