"""The study's PASCAL VOC 2007 stimulus set: the selection rule, its manifest, and ``prepare``.

VOC 2007 cannot be bundled, so the repository commits a manifest of the selection
(``stimuli/data/voc2007_manifest.csv``) and :func:`prepare_voc2007` builds the stimulus folder from a
local copy of ``VOCdevkit/VOC2007``, verifying every file against the manifest.

Selection rule
--------------
The participants name the objects in each image, so the rule keeps images that show several kinds of
nameable objects and that the screen shows at the paper's scale:

1. the images of the VOC 2007 **test** split (``ImageSets/Main/test.txt``), in ascending id order;
2. keep an image when its non-difficult objects (``<difficult>0</difficult>``; VOC marks as difficult
   the objects its annotators found hard to recognise) belong to **at least two distinct classes**;
3. keep it only when it **fits the 1920×1080 screen at ×2** (width ≤ 960 px and height ≤ 540 px);
   every VOC 2007 image does, being at most 500 px on a side;
4. take the **first 200** images that remain.

VOC's ids carry no content order, so the first 200 qualifying ids are a reproducible sample of the
test split's multi-class images; anyone with the devkit regenerates the same list with
``lookwhere stimuli manifest voc2007``.

Manifest columns: ``image_id``, ``width_px``, ``height_px``, ``sha256`` (of the JPEG),
``classes`` (the distinct classes of the non-difficult objects, sorted, ``;``-separated) and
``n_objects`` (how many non-difficult objects).
"""

from __future__ import annotations

import logging
import os
import shutil
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from stimuli.geometry import DEFAULT_SCALE, DEFAULT_SCREEN_PX
from stimuli.manifest import (
    MANIFEST_NAME,
    ManifestEntry,
    image_size,
    publish_folder,
    read_manifest,
    sha256_of,
    verify_images,
    write_manifest,
)

__all__ = [
    "VOC_CLASSES",
    "STUDY_IMAGE_COUNT",
    "COMMITTED_MANIFEST",
    "VocObject",
    "VocAnnotation",
    "voc2007_root",
    "read_voc_annotation",
    "read_image_set",
    "apply_selection_rule",
    "select_voc2007",
    "build_manifest",
    "prepare_voc2007",
]

logger = logging.getLogger(__name__)

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
STUDY_IMAGE_COUNT = 200
COMMITTED_MANIFEST = Path(__file__).resolve().parent / "data" / "voc2007_manifest.csv"


@dataclass(frozen=True)
class VocObject:
    """One ``<object>`` of a VOC annotation (class name and flags; boxes are not needed here)."""

    name: str
    difficult: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class VocAnnotation:
    """One VOC annotation file.

    Parameters
    ----------
    image_id : str
        The file stem, e.g. ``"000001"``.
    filename : str
        The JPEG's file name in ``JPEGImages/``, from ``<filename>``.
    width_px, height_px, depth : int
        From ``<size>``.
    objects : tuple of VocObject
        Every ``<object>``, difficult ones included.
    """

    image_id: str
    filename: str
    width_px: int
    height_px: int
    depth: int
    objects: tuple[VocObject, ...]

    @property
    def named_objects(self) -> tuple[VocObject, ...]:
        """The objects not marked difficult: those a participant can be expected to name."""
        return tuple(obj for obj in self.objects if not obj.difficult)

    @property
    def classes(self) -> tuple[str, ...]:
        """Sorted distinct classes of the non-difficult objects."""
        return tuple(sorted({obj.name for obj in self.named_objects}))


def voc2007_root(vocdevkit: str | os.PathLike) -> Path:
    """The ``VOC2007`` folder of a devkit; accepts ``VOCdevkit`` or ``VOCdevkit/VOC2007`` itself."""
    path = Path(vocdevkit)
    for candidate in (path / "VOC2007", path):
        if (candidate / "Annotations").is_dir() and (candidate / "JPEGImages").is_dir():
            return candidate
    raise FileNotFoundError(
        f"{path} is not a VOC 2007 devkit: neither it nor {path / 'VOC2007'} holds Annotations/ and "
        "JPEGImages/; pass the VOCdevkit folder from VOCtest_06-Nov-2007.tar (--vocdevkit PATH/VOCdevkit)"
    )


def read_voc_annotation(path: str | os.PathLike) -> VocAnnotation:
    """Parse one VOC annotation XML file (``Annotations/<id>.xml``).

    Reads ``<filename>``, ``<size>`` (``<width>``, ``<height>``, ``<depth>``) and each ``<object>``'s
    ``<name>``, ``<difficult>`` and ``<truncated>`` (both default to 0 when absent).

    Raises
    ------
    ValueError
        When the file is not well-formed XML or lacks a required element; the message names the file
        and the element.
    """
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"{path} is not a VOC annotation: {error}") from None
    if root.tag != "annotation":
        raise ValueError(f"{path} is not a VOC annotation: the root element is <{root.tag}>, not <annotation>")

    def text(element: ElementTree.Element, tag: str, where: str) -> str:
        found = element.findtext(tag)
        if found is None or not found.strip():
            raise ValueError(f"{path}: {where}<{tag}> is missing or empty")
        return found.strip()

    def integer(element: ElementTree.Element, tag: str, where: str) -> int:
        value = text(element, tag, where)
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{path}: {where}<{tag}> must be an integer; got {value!r}") from None

    def flag(element: ElementTree.Element, tag: str) -> bool:
        value = (element.findtext(tag) or "0").strip()
        if value not in ("0", "1"):
            raise ValueError(f"{path}: <object><{tag}> must be 0 or 1; got {value!r}")
        return value == "1"

    size = root.find("size")
    if size is None:
        raise ValueError(f"{path}: <size> is missing")
    objects = tuple(
        VocObject(
            name=text(obj, "name", "<object>"),
            difficult=flag(obj, "difficult"),
            truncated=flag(obj, "truncated"),
        )
        for obj in root.iter("object")
    )
    return VocAnnotation(
        image_id=path.stem,
        filename=text(root, "filename", ""),
        width_px=integer(size, "width", "<size>"),
        height_px=integer(size, "height", "<size>"),
        depth=integer(size, "depth", "<size>"),
        objects=objects,
    )


def read_image_set(vocdevkit: str | os.PathLike, split: str = "test") -> list[str]:
    """The image ids of a split (``ImageSets/Main/<split>.txt``), in file order."""
    path = voc2007_root(vocdevkit) / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"the {split} split list {path} does not exist; is this the full VOC 2007 devkit?")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def apply_selection_rule(
    annotations: Iterable[VocAnnotation],
    *,
    n: int = STUDY_IMAGE_COUNT,
    min_classes: int = 2,
    screen_px: tuple[int, int] = DEFAULT_SCREEN_PX,
    scale: float = DEFAULT_SCALE,
) -> list[VocAnnotation]:
    """The study's rule (module docstring) applied to the annotations of one split.

    Parameters
    ----------
    annotations : iterable of VocAnnotation
        The split's annotations; they are ordered by id here.
    n : int
        How many images to take (the study: 200).
    min_classes : int
        Least number of distinct classes among the non-difficult objects (the study: 2).
    screen_px : (int, int)
        Screen ``(width, height)`` in pixels (the study: 1920×1080).
    scale : float
        Display scale the image must fit at (the study: 2).

    Returns
    -------
    list of VocAnnotation
        The first ``n`` qualifying images in ascending id order.

    Raises
    ------
    ValueError
        When fewer than ``n`` images qualify.
    """
    if n <= 0:
        raise ValueError(f"n must be a positive number of images; got {n!r}")
    screen_w, screen_h = screen_px
    ordered = sorted(annotations, key=lambda annotation: annotation.image_id)
    qualifying = [
        annotation
        for annotation in ordered
        if len(annotation.classes) >= min_classes
        and annotation.width_px * scale <= screen_w
        and annotation.height_px * scale <= screen_h
    ]
    if len(qualifying) < n:
        raise ValueError(
            f"only {len(qualifying)} of {len(ordered)} images have ≥{min_classes} classes of non-difficult "
            f"objects and fit {screen_w}×{screen_h} px at ×{scale:g}; asked for {n}"
        )
    return qualifying[:n]


def select_voc2007(
    vocdevkit: str | os.PathLike,
    *,
    n: int = STUDY_IMAGE_COUNT,
    split: str = "test",
    min_classes: int = 2,
    screen_px: tuple[int, int] = DEFAULT_SCREEN_PX,
    scale: float = DEFAULT_SCALE,
) -> list[VocAnnotation]:
    """Select the study's images from a local ``VOCdevkit`` by :func:`apply_selection_rule`.

    Reads the split's id list and every listed annotation; a listed id without its annotation file
    is an error (the devkit is incomplete).
    """
    root = voc2007_root(vocdevkit)
    ids = read_image_set(root, split)
    missing = [image_id for image_id in ids if not (root / "Annotations" / f"{image_id}.xml").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) of the {split} split have no annotation in {root / 'Annotations'} "
            f"(e.g. {', '.join(missing[:5])}); the devkit is incomplete"
        )
    annotations = [read_voc_annotation(root / "Annotations" / f"{image_id}.xml") for image_id in ids]
    selected = apply_selection_rule(annotations, n=n, min_classes=min_classes, screen_px=screen_px, scale=scale)
    logger.info("selected %d of %d %s images", len(selected), len(ids), split)
    return selected


def build_manifest(
    annotations: Sequence[VocAnnotation], *, jpeg_folder: str | os.PathLike | None = None
) -> list[ManifestEntry]:
    """Manifest entries of selected images.

    Parameters
    ----------
    annotations : sequence of VocAnnotation
        The selection, in manifest order.
    jpeg_folder : path, optional
        ``VOC2007/JPEGImages``. When given, each JPEG's SHA-256 is recorded and its header size must
        equal the annotation's; without it ``sha256`` stays empty.

    Raises
    ------
    ValueError
        When JPEGs are missing or their sizes differ from the annotations (all listed together).
    """
    checksums: dict[str, str] = {}
    if jpeg_folder is not None:
        problems = []
        for annotation in annotations:
            path = Path(jpeg_folder) / annotation.filename
            if not path.is_file():
                problems.append(f"{annotation.image_id}: missing ({path})")
                continue
            size = image_size(path)
            if size != (annotation.width_px, annotation.height_px):
                problems.append(
                    f"{annotation.image_id}: {path.name} is {size[0]}×{size[1]} px, its annotation says "
                    f"{annotation.width_px}×{annotation.height_px} px"
                )
            checksums[annotation.image_id] = sha256_of(path)
        if problems:
            raise ValueError(f"{len(problems)} JPEG problem(s) in {jpeg_folder}:\n  " + "\n  ".join(problems))
    return [
        ManifestEntry(
            image_id=annotation.image_id,
            width_px=annotation.width_px,
            height_px=annotation.height_px,
            sha256=checksums.get(annotation.image_id, ""),
            extra={"classes": ";".join(annotation.classes), "n_objects": str(len(annotation.named_objects))},
        )
        for annotation in annotations
    ]


def _unpinned(entries: list[ManifestEntry], manifest: Path, *, record_checksums: bool) -> list[str]:
    """The images the manifest has no SHA-256 for; an error unless they are to be recorded."""
    unpinned = [entry.image_id for entry in entries if not entry.sha256]
    if unpinned and not record_checksums:
        raise ValueError(
            f"the manifest {manifest} has no SHA-256 for {len(unpinned)} of its {len(entries)} images "
            f"(e.g. {', '.join(unpinned[:3])}), so those files cannot be verified. Pass --record-checksums "
            "to record them from this copy (sizes are still checked) in the manifest.csv written with the "
            "folder, or --manifest with a manifest that has them"
        )
    return unpinned


def prepare_voc2007(
    vocdevkit: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    manifest: str | os.PathLike = COMMITTED_MANIFEST,
    record_checksums: bool = False,
) -> Path:
    """Build the VOC 2007 stimulus folder from a local devkit, verifying every file.

    The manifest's JPEGs are copied from ``VOC2007/JPEGImages`` into a staging folder and the
    copies checked: each must exist, have the manifest's size and its SHA-256. Any problem aborts
    with one error that lists them all, and nothing is left at ``out_dir``. On success the folder
    holds the JPEGs and ``manifest.csv``.

    Parameters
    ----------
    vocdevkit : path
        ``VOCdevkit`` (or its ``VOC2007`` folder).
    out_dir : path
        The stimulus folder to create; it must not exist (or be empty).
    manifest : path
        The selection (default: the committed study manifest).
    record_checksums : bool
        Needed when the manifest lacks checksums: record them from this copy (sizes are still
        checked) into the ``manifest.csv`` written to ``out_dir``, so the copy can be pinned by
        committing that file. Entries that have a checksum are verified either way.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ValueError
        When the manifest lacks checksums and ``record_checksums`` is false, or when any file is
        missing, altered or of the wrong size.
    FileExistsError
        When ``out_dir`` exists and is not empty.
    """
    manifest = Path(manifest)
    entries = read_manifest(manifest)
    if not entries:
        raise ValueError(f"the manifest {manifest} lists no images")
    unpinned = _unpinned(entries, manifest, record_checksums=record_checksums)
    jpeg_folder = voc2007_root(vocdevkit) / "JPEGImages"

    def fill(staging: Path) -> None:
        # A missing source stays in `files` under its source path, so it is reported with it.
        files = {}
        for entry in entries:
            source = jpeg_folder / f"{entry.image_id}.jpg"
            files[entry.image_id] = source
            if source.is_file():
                files[entry.image_id] = Path(shutil.copyfile(source, staging / source.name))
        problems = verify_images(entries, files)
        if problems:
            raise ValueError(
                f"cannot prepare VOC 2007 from {jpeg_folder}: {len(problems)} problem(s) with the "
                f"{len(entries)} images of {manifest.name}:\n  " + "\n  ".join(problems)
            )
        completed = [
            entry if entry.sha256 else replace(entry, sha256=sha256_of(files[entry.image_id])) for entry in entries
        ]
        write_manifest(completed, staging / MANIFEST_NAME)

    publish_folder(out_dir, fill)
    if unpinned:
        logger.warning(
            "recorded the SHA-256 of %d image(s) from this copy in %s; commit it as the manifest to pin them",
            len(unpinned),
            Path(out_dir) / MANIFEST_NAME,
        )
    return Path(out_dir)
