"""The demo stimulus set: real photographs that scikit-image ships inside its wheel.

``lookwhere demo`` must run on a fresh machine without network, so its stimuli come from
scikit-image's bundled sample images (no download: these files are in the installed package). They
are written once, at first use, as RGB PNG files with stable ids, plus a ``manifest.csv`` (source,
size, SHA-256); later calls verify the folder and reuse it.

The two grayscale photographs (cameraman, coins) are stored as RGB with three equal channels, so
every demo image has the same mode as the VOC 2007 set. Each image's credit and licence are in the
docstring of its ``skimage.data`` function (all are public domain or CC0, except the motorcycle,
from the Middlebury 2014 stereo benchmark).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from stimuli.manifest import (
    MANIFEST_NAME,
    ManifestEntry,
    publish_folder,
    read_manifest,
    sha256_of,
    verify_images,
    write_manifest,
)

__all__ = ["DemoImage", "DEMO_IMAGES", "default_demo_folder", "prepare_demo_set"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoImage:
    """One demo photograph: its stable id and the ``skimage.data`` function that loads it."""

    image_id: str
    loader: str
    description: str


DEMO_IMAGES = (
    DemoImage("astronaut", "astronaut", "astronaut Eileen Collins (NASA)"),
    DemoImage("cat", "chelsea", "Chelsea the cat"),
    DemoImage("coffee", "coffee", "a cup of coffee on a saucer"),
    DemoImage("rocket", "rocket", "a Falcon 9 rocket on its launch pad (SpaceX)"),
    DemoImage("motorcycle", "stereo_motorcycle", "a motorcycle in a garage (left view of a stereo pair)"),
    DemoImage("cameraman", "camera", "a man with a camera on a tripod (grayscale)"),
    DemoImage("coins", "coins", "Greek coins from Pompeii (grayscale)"),
)


def default_demo_folder() -> Path:
    """Where the demo set is cached: ``$LOOKWHERE_CACHE_DIR/demo-stimuli`` when that variable is set,
    otherwise ``$XDG_CACHE_HOME/lookwhere/demo-stimuli`` (``~/.cache/lookwhere/demo-stimuli``)."""
    if os.environ.get("LOOKWHERE_CACHE_DIR"):
        return Path(os.environ["LOOKWHERE_CACHE_DIR"]) / "demo-stimuli"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "lookwhere" / "demo-stimuli"


def prepare_demo_set(out_dir: str | os.PathLike | None = None) -> Path:
    """Write the demo set at first use; afterwards verify it and reuse it.

    Parameters
    ----------
    out_dir : path, optional
        The folder (default: :func:`default_demo_folder`).

    Returns
    -------
    Path
        The folder, holding ``<id>.png`` for each of :data:`DEMO_IMAGES` and ``manifest.csv``.

    Raises
    ------
    FileExistsError
        When ``out_dir`` exists, is not empty and is not a demo set (it is left untouched).

    Notes
    -----
    A demo folder whose files no longer match its manifest is rebuilt. The folder is published
    atomically, so concurrent first uses are safe: whichever finishes second finds the set complete.
    """
    folder = Path(out_dir) if out_dir is not None else default_demo_folder()
    if _is_complete(folder):
        logger.info("demo set %s is complete; reusing it", folder)
        return folder
    occupied = folder.exists() and (not folder.is_dir() or any(folder.iterdir()))
    if occupied and not _is_demo_folder(folder):
        raise FileExistsError(f"{folder} exists and is not a demo stimulus set; choose another folder or remove it")
    if occupied:
        logger.warning("demo set %s is incomplete or altered; rebuilding it", folder)
    try:
        publish_folder(folder, _write_demo_images, replace=True)
    except OSError:
        if _is_complete(folder):  # another process published it first
            return folder
        raise
    return folder


def _write_demo_images(folder: Path) -> None:
    import numpy as np
    import skimage.data
    from PIL import Image

    entries = []
    for demo in DEMO_IMAGES:
        pixels = getattr(skimage.data, demo.loader)()
        if isinstance(pixels, tuple):  # stereo_motorcycle: (left, right, disparity)
            pixels = pixels[0]
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[:, :, None], 3, axis=2)
        path = folder / f"{demo.image_id}.png"
        # Fixed PNG settings and no metadata: the same pixels always give the same bytes.
        Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(path, format="PNG", compress_level=6)
        entries.append(
            ManifestEntry(
                image_id=demo.image_id,
                width_px=pixels.shape[1],
                height_px=pixels.shape[0],
                sha256=sha256_of(path),
                extra={"source": f"skimage.data.{demo.loader}", "description": demo.description},
            )
        )
    write_manifest(entries, folder / MANIFEST_NAME)


def _read_entries(folder: Path) -> list[ManifestEntry] | None:
    try:
        return read_manifest(folder / MANIFEST_NAME)
    except (OSError, ValueError):
        return None


def _is_demo_folder(folder: Path) -> bool:
    """Whether the folder was written by :func:`prepare_demo_set` (its manifest names skimage sources)."""
    entries = _read_entries(folder)
    if not entries:
        return False
    return all(entry.extra.get("source", "").startswith("skimage.data.") for entry in entries)


def _is_complete(folder: Path) -> bool:
    entries = _read_entries(folder)
    if entries is None or [entry.image_id for entry in entries] != [demo.image_id for demo in DEMO_IMAGES]:
        return False
    if not all(entry.sha256 for entry in entries):
        return False
    problems = verify_images(entries, {entry.image_id: folder / f"{entry.image_id}.png" for entry in entries})
    return not problems
