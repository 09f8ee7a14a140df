"""Model-map thumbnails for the dashboard, rendered once per map store and kept on disk.

A model map never changes for a given store, so its thumbnail is drawn at most once: the first
request renders it (a palette PNG, at most ``THUMBNAIL_WIDTH_PX`` wide, a few tens of kB) and
writes it atomically under ``<data_dir>/thumbnails/<store key>/``; every later request, in this
server or the next one, reads the file. The store key is a hash of the store's metadata, so a
rebuilt store (other weights, other parameters) gets new thumbnails and stale ones are never
served. File names are hashes of (image id, map name): nothing a client sends becomes a path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from server.render import map_thumbnail_png

if TYPE_CHECKING:
    from analysis.cnn.store import MapStore, RecentMaps
    from stimuli.sets import StimulusSet

__all__ = ["ThumbnailCache", "THUMBNAIL_WIDTH_PX"]

logger = logging.getLogger(__name__)

#: Width of a thumbnail; the dashboard shows them 150–250 px wide.
THUMBNAIL_WIDTH_PX = 240


def store_key(store: MapStore | RecentMaps) -> str:
    """A short hash of everything in the store's metadata (weights, parameters, images)."""
    text = json.dumps(store.metadata, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ThumbnailCache:
    """Thumbnails of one store's maps, rendered on first use and cached on disk.

    Parameters
    ----------
    folder : str or Path
        Parent folder (``<data_dir>/thumbnails``); one sub-folder per store.
    store : MapStore or RecentMaps
        The maps (a :class:`~analysis.cnn.store.RecentMaps` shares the scoring's upsampled maps).
    stimuli : StimulusSet
        Gives each image's size (maps are shown as scored: upsampled to the image).
    """

    def __init__(self, folder: str | Path, store: MapStore | RecentMaps, stimuli: StimulusSet) -> None:
        self.store = store
        self.stimuli = stimuli
        self.key = store_key(store)
        self.folder = Path(folder) / self.key
        self._lock = threading.Lock()  # one render per image at a time

    def etag(self, image_id: str, name: str) -> str:
        """The HTTP entity tag of a thumbnail (its content depends only on the store and the map)."""
        return f'"{self.key}-{self._digest(image_id, name)}"'

    def path(self, image_id: str, name: str) -> Path:
        """The thumbnail's file, rendered (with the image's other maps) when missing.

        Raises
        ------
        KeyError
            The store has no such map or image.
        """
        if name not in self.store.map_names:
            raise KeyError(f"map {name!r} is not in the store; it holds {list(self.store.map_names)}")
        self.stimuli.path(image_id)  # KeyError for an image outside the set
        target = self.folder / f"{self._digest(image_id, name)}.png"
        if not target.exists():
            with self._lock:
                if not target.exists():
                    self._render(image_id)
        return target

    def _digest(self, image_id: str, name: str) -> str:
        return hashlib.sha256(f"{image_id}\0{name}".encode()).hexdigest()[:20]

    def _render(self, image_id: str) -> None:
        """Render every map of one image (a dashboard asks for all of them at once)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        maps = self.store.load(image_id, shape=self.stimuli.shape(image_id))
        for name, values in maps.items():
            target = self.folder / f"{self._digest(image_id, name)}.png"
            descriptor, temporary = tempfile.mkstemp(dir=self.folder, suffix=".part")
            try:
                with os.fdopen(descriptor, "wb") as file:
                    file.write(map_thumbnail_png(values, width_px=THUMBNAIL_WIDTH_PX))
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        logger.debug("rendered %d thumbnails of image %s into %s", len(maps), image_id, self.folder)
