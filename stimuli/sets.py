"""Stimulus sets: any folder of images is one.

An image's identifier is its file name without extension (``1001.jpg`` → ``"1001"``). Sizes are
read from the file headers only, so listing a 200-image set is fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["StimulusSet", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class StimulusSet:
    """A folder of stimulus images.

    Parameters
    ----------
    folder : Path
        Folder holding the images (not searched recursively).
    """

    folder: Path

    def __post_init__(self) -> None:
        folder = Path(self.folder)
        object.__setattr__(self, "folder", folder)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"stimulus folder {folder} does not exist or is not a folder; "
                "pass the folder that holds the images (e.g. --stimuli ../shared/data/osie/stimuli)"
            )

    @property
    def paths(self) -> dict[str, Path]:
        """Image id → file path, sorted by id."""
        found: dict[str, Path] = {}
        for path in sorted(self.folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                if path.stem in found:
                    raise ValueError(
                        f"two images share the id {path.stem!r} in {self.folder}: "
                        f"{found[path.stem].name} and {path.name}; rename one"
                    )
                found[path.stem] = path
        return found

    @property
    def image_ids(self) -> list[str]:
        """Sorted image identifiers."""
        return list(self.paths)

    def path(self, image_id: str) -> Path:
        """The file of one image; a clear error when the set does not hold it."""
        paths = self.paths
        if image_id not in paths:
            raise KeyError(
                f"image {image_id!r} is not in the stimulus set {self.folder} "
                f"({len(paths)} images, e.g. {', '.join(list(paths)[:3])})"
            )
        return paths[image_id]

    def size(self, image_id: str) -> tuple[int, int]:
        """``(width_px, height_px)`` of one image, read from its header."""
        from PIL import Image

        path = self.path(image_id)
        try:
            with Image.open(path) as image:
                return image.size
        except OSError as error:
            raise OSError(f"cannot read image {path}: {error}") from error

    def shape(self, image_id: str) -> tuple[int, int]:
        """``(height_px, width_px)``: the shape of the image's heatmap."""
        width, height = self.size(image_id)
        return height, width

    def load_rgb(self, image_id: str):
        """The image as a ``(H, W, 3)`` uint8 RGB array."""
        import numpy as np
        from PIL import Image

        with Image.open(self.path(image_id)) as image:
            return np.asarray(image.convert("RGB"))
