"""Check a stimulus folder before an experiment: sizes, display scale and problems per image.

Any folder of images is a stimulus set (:class:`~stimuli.sets.StimulusSet`); this is what
``lookwhere stimuli check DIR`` reports about one. Two severities:

- **error** — the set cannot be run as it is: an unreadable file, two files with the same id, an image
  larger than the screen at ×1 (it would be shown shrunk, so resize it first), a folder without
  images, or, when the folder has a ``manifest.csv``, a listed image that is missing, altered or of
  another size;
- **warning** — it runs, but check it: an image that is not RGB (it is converted when shown) or an
  image the manifest does not list.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stimuli.geometry import DEFAULT_SCALE, DEFAULT_SCREEN_PX, DisplayGeometry
from stimuli.manifest import MANIFEST_NAME, read_manifest, verify_images
from stimuli.sets import IMAGE_SUFFIXES

__all__ = ["Problem", "ImageReport", "FolderReport", "check_folder"]


@dataclass(frozen=True)
class Problem:
    """One finding: ``severity`` is ``"error"`` (the set cannot be run) or ``"warning"``."""

    severity: Literal["error", "warning"]
    message: str


@dataclass(frozen=True)
class ImageReport:
    """What the check found about one image file.

    ``width_px``, ``height_px``, ``mode`` and ``geometry`` are ``None`` when the file is unreadable;
    ``geometry`` is its placement on the checked screen (:meth:`DisplayGeometry.fit`).
    """

    image_id: str
    file_name: str
    width_px: int | None
    height_px: int | None
    mode: str | None
    geometry: DisplayGeometry | None
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class FolderReport:
    """The check of one folder: a report per image file (sorted by id) and folder-level problems."""

    folder: Path
    screen_px: tuple[int, int]
    scale: float
    images: tuple[ImageReport, ...]
    problems: tuple[Problem, ...]

    def _count(self, severity: str) -> int:
        per_image = sum(problem.severity == severity for image in self.images for problem in image.problems)
        return per_image + sum(problem.severity == severity for problem in self.problems)

    @property
    def n_errors(self) -> int:
        return self._count("error")

    @property
    def n_warnings(self) -> int:
        return self._count("warning")


def check_folder(
    folder: str | os.PathLike,
    *,
    screen_px: tuple[int, int] = DEFAULT_SCREEN_PX,
    scale: float = DEFAULT_SCALE,
) -> FolderReport:
    """Check every image of a stimulus folder (module docstring lists what is checked).

    Parameters
    ----------
    folder : path
        The stimulus folder (not searched recursively; files are images by their suffix, as in
        :class:`~stimuli.sets.StimulusSet`).
    screen_px : (int, int)
        Screen ``(width, height)`` in pixels (default: the paper's 1920×1080).
    scale : float
        Requested display scale (default: the paper's 2).

    Raises
    ------
    FileNotFoundError
        When the folder does not exist.
    ValueError
        When the screen size or scale is not positive.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"stimulus folder {folder} does not exist or is not a folder")
    if min(screen_px) <= 0 or not scale > 0:
        raise ValueError(f"screen size and scale must be positive; got screen {screen_px}, scale {scale!r}")
    files = sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
    by_id: dict[str, list[Path]] = defaultdict(list)
    for path in files:
        by_id[path.stem].append(path)

    images = tuple(
        _check_image(
            path,
            duplicates=[other.name for other in by_id[path.stem] if other != path],
            screen_px=screen_px,
            scale=scale,
        )
        for path in sorted(files, key=lambda path: (path.stem, path.name))
    )
    problems = []
    if not files:
        problems.append(Problem("error", f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})"))
    if (folder / MANIFEST_NAME).is_file():
        problems += _check_manifest(folder / MANIFEST_NAME, by_id)
    return FolderReport(folder, (screen_px[0], screen_px[1]), scale, images, tuple(problems))


def _check_image(path: Path, *, duplicates: list[str], screen_px: tuple[int, int], scale: float) -> ImageReport:
    from PIL import Image, UnidentifiedImageError

    problems = []
    if duplicates:
        problems.append(Problem("error", f"id {path.stem!r} is also used by {', '.join(duplicates)}; rename one"))
    try:
        with Image.open(path) as image:
            image.load()  # decodes the whole file, so truncated images are caught too
            width, height, mode = image.width, image.height, image.mode
    except (OSError, UnidentifiedImageError) as error:
        problems.append(Problem("error", f"unreadable: {error}"))
        return ImageReport(path.stem, path.name, None, None, None, None, tuple(problems))
    if mode != "RGB":
        problems.append(Problem("warning", f"mode {mode}, not RGB (converted to RGB when shown)"))
    geometry = DisplayGeometry.fit(
        width, height, screen_width_px=screen_px[0], screen_height_px=screen_px[1], scale=scale
    )
    if width > screen_px[0] or height > screen_px[1]:
        problems.append(
            Problem(
                "error",
                f"larger than the {screen_px[0]}×{screen_px[1]} screen at ×1: it would be shown shrunk "
                f"(×{geometry.scale_x:.2f}); resize it",
            )
        )
    return ImageReport(path.stem, path.name, width, height, mode, geometry, tuple(problems))


def _check_manifest(manifest: Path, by_id: dict[str, list[Path]]) -> list[Problem]:
    try:
        entries = read_manifest(manifest)
    except ValueError as error:
        return [Problem("error", str(error))]
    listed = {entry.image_id for entry in entries}
    # A repeated id is already an error of its files; which of them the manifest means is unknowable.
    unique = [entry for entry in entries if len(by_id.get(entry.image_id, ())) <= 1]
    paths = {image_id: paths[0] for image_id, paths in by_id.items() if len(paths) == 1}
    problems = [Problem("error", f"{MANIFEST_NAME}: {problem}") for problem in verify_images(unique, paths)]
    problems += [
        Problem("warning", f"{image_id}: not listed in {MANIFEST_NAME}") for image_id in sorted(set(by_id) - listed)
    ]
    return problems
