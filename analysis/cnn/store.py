"""The map store: every attention map of a stimulus set, written once, read by analysis and server.

Layout of a store folder::

    metadata.json        model, weights, input geometry, parameters, CAM fit, versions (JSON)
    cam_weights.npz      CAM regression weights (C, K) and intercept (C,), float32
    maps/<image id>.npz  one compressed file per finished image: each map at network resolution
                         (float32) plus ``__record__`` (JSON: target class, original shape, ...)

Maps are stored at the resolution the network produced them (14×14 for Grad-CAM at 224 input,
224×224 for Guided Backprop) and upsampled on :meth:`MapStore.load` to the requested image size
with bilinear, ``align_corners=False`` interpolation (SPEC §2), which keeps a 200-image store at
224 input near 100 MB.

Each image file is written to a temporary name and renamed, so a file under ``maps/`` is always
complete: an interrupted ``lookwhere precompute`` resumes by skipping the images that have one.

This module must not import torch: the offline analysis reads stores without it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

__all__ = [
    "MapStore",
    "RecentMaps",
    "MapStoreWriter",
    "resize_bilinear",
    "STORE_FORMAT",
    "STORE_FORMAT_VERSION",
    "RESUME_KEYS",
]

logger = logging.getLogger(__name__)

STORE_FORMAT = "lookwhere-map-store"
STORE_FORMAT_VERSION = 1
#: Metadata sections that must match for a run to resume (add to) an existing store.
RESUME_KEYS = ("map_names", "model", "weights", "input", "parameters")
_RECORD_KEY = "__record__"
_METADATA_FILE = "metadata.json"
_CAM_FILE = "cam_weights.npz"
_MAPS_DIR = "maps"


def _interpolation_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D linear interpolation with ``align_corners=False``: ``(low, high, weight_high)``, each ``(size_out,)``.

    Output pixel ``j`` samples the input at ``(j + 0.5) · size_in / size_out - 0.5`` (pixel centres
    aligned), clamped at 0 below and to the last pixel above, as ``torch.nn.functional.interpolate(
    mode="bilinear", align_corners=False)`` without antialiasing and OpenCV's ``INTER_LINEAR``.
    """
    source = np.maximum((np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, source - low


def resize_bilinear(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize with ``align_corners=False`` (SPEC §2 "Network maps at image size").

    Parameters
    ----------
    array : np.ndarray, shape (h, w)
        Map on a grid of pixels covering the whole image (network resolution).
    shape : (H, W)
        Output size in image pixels.

    Returns
    -------
    np.ndarray, shape (H, W), float32
        Equals ``torch.nn.functional.interpolate(..., mode="bilinear", align_corners=False)``
        and OpenCV's ``INTER_LINEAR``, computed in float64 and rounded once.
    """
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"array must be a non-empty (h, w) map; got shape {array.shape}")
    height, width = (int(s) for s in shape)
    if height < 1 or width < 1:
        raise ValueError(f"shape must be (H, W) with H, W >= 1; got {shape!r}")
    if array.shape == (height, width):  # the interpolation's weights are all 0: the map itself
        return array.astype(np.float32)
    # Separable: interpolate along rows, then along columns (two taps each).
    low, high, weight = _interpolation_taps(array.shape[0], height)
    rows = array[low] * (1.0 - weight)[:, None] + array[high] * weight[:, None]
    low, high, weight = _interpolation_taps(array.shape[1], width)
    return (rows[:, low] * (1.0 - weight) + rows[:, high] * weight).astype(np.float32)


def _atomic_write_json(path: Path, content: dict) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(content, indent=2, sort_keys=True))
    os.replace(temporary, path)


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a compressed npz under a temporary name (not ``*.npz``), then rename it into place.

    The temporary name is the writing process's own (host and process id), so that two processes
    that write the same image (a Dask task run again after its worker was lost) never mix bytes.
    """
    temporary = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:  # a file object stops numpy from appending ".npz"
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    os.replace(temporary, path)


def _store_error(path: Path, problem: str) -> ValueError:
    return ValueError(
        f"map store {path}: {problem}. Rebuild it with `lookwhere precompute --stimuli DIR --out {path}` "
        "(delete or move the folder first if it is damaged)"
    )


class MapStore:
    """Read-only view of a map store (see the module docstring for the layout).

    Use :meth:`open`. Attributes: ``path``, ``map_names`` (tuple of str), ``image_ids`` (sorted ids
    of the images whose maps are finished), ``metadata`` (dict: the contents of metadata.json plus
    ``images``: image id → record with ``target_class``, ``target_score``, ``original_shape``
    ``[H, W]`` and ``network_shape`` ``[h, w]``), ``is_untrained``.
    """

    def __init__(self, path: Path, metadata: dict, image_ids: list[str]) -> None:
        self.path = path
        self.metadata = metadata
        self.map_names: tuple[str, ...] = tuple(metadata["map_names"])
        self.image_ids = image_ids
        self.is_untrained = bool(metadata["weights"]["untrained"])

    @classmethod
    def open(cls, path) -> MapStore:
        """Open the store at ``path``.

        Raises
        ------
        FileNotFoundError
            No store at ``path``.
        ValueError
            ``metadata.json`` or an image file is unreadable or not a lookwhere map store.
        """
        path = Path(path)
        metadata = _read_metadata(path)
        image_ids = sorted(p.stem for p in (path / _MAPS_DIR).glob("*.npz"))
        metadata["images"] = {image_id: _read_record(path, image_id) for image_id in image_ids}
        return cls(path, metadata, image_ids)

    def _file(self, image_id: str) -> Path:
        if image_id not in self.metadata["images"]:
            raise KeyError(
                f"map store {self.path} has no maps for image {image_id!r} "
                f"({len(self.image_ids)} finished images); run `lookwhere precompute` for it"
            )
        return self.path / _MAPS_DIR / f"{image_id}.npz"

    def load_native(self, image_id: str) -> dict[str, np.ndarray]:
        """Every map of one image at network resolution: name → ``(h, w)`` float32."""
        file = self._file(image_id)
        try:
            with np.load(file, allow_pickle=False) as data:
                maps = {name: data[name].astype(np.float32) for name in self.map_names}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as error:
            raise _store_error(self.path, f"image file {file} is unreadable ({error})") from error
        return maps

    def load(self, image_id: str, *, shape: tuple[int, int]) -> dict[str, np.ndarray]:
        """Every map of one image at the original image size.

        Parameters
        ----------
        image_id : str
        shape : (H, W)
            Original image size in pixels (the heatmap's shape).

        Returns
        -------
        dict[str, np.ndarray]
            :attr:`map_names` → ``(H, W)`` float32, bilinearly upsampled with
            ``align_corners=False`` (:func:`resize_bilinear`); values as computed (not normalised).
        """
        return {name: resize_bilinear(m, shape) for name, m in self.load_native(image_id).items()}

    def cam_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """CAM regression ``(weights (C, K), bias (C,))``, float32."""
        file = self.path / _CAM_FILE
        try:
            with np.load(file, allow_pickle=False) as data:
                return data["weights"], data["bias"]
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as error:
            raise _store_error(self.path, f"CAM weights {file} are missing or unreadable ({error})") from error

    def export_npz(self, folder, *, image_ids: list[str] | None = None) -> list[Path]:
        """Write ``folder/<image id>.npz`` with every map at the original size (float32).

        Returns the written paths.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for image_id in self.image_ids if image_ids is None else image_ids:
            self._file(image_id)  # a clear KeyError for an image without maps
            height, width = self.metadata["images"][image_id]["original_shape"]
            shape = (int(height), int(width))
            target = folder / f"{image_id}.npz"
            np.savez_compressed(target, **self.load(image_id, shape=shape))  # type: ignore[arg-type]  # numpy's stub
            written.append(target)
        return written


class RecentMaps:
    """A :class:`MapStore` that keeps the upsampled maps of the last few images in memory.

    For the live server, which scores the same image again at every fixation: loading and
    upsampling 20 maps costs more than scoring them. Arrays are returned read-only, since every
    caller shares them. Thread-safe; every other attribute is the store's.

    Parameters
    ----------
    store : MapStore
    max_images : int
        Images kept (each ``len(map_names) × H × W × 4`` bytes).
    """

    def __init__(self, store: MapStore, *, max_images: int = 4) -> None:
        if max_images < 1:
            raise ValueError(f"max_images must be >= 1; got {max_images!r}")
        self.store = store
        self.max_images = max_images
        self._recent: OrderedDict[tuple[str, tuple[int, int]], dict[str, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def load(self, image_id: str, *, shape: tuple[int, int]) -> dict[str, np.ndarray]:
        """As :meth:`MapStore.load`; the arrays are read-only."""
        key = (image_id, (int(shape[0]), int(shape[1])))
        with self._lock:
            if key in self._recent:
                self._recent.move_to_end(key)
                return dict(self._recent[key])
        maps = self.store.load(image_id, shape=shape)
        for array in maps.values():
            array.setflags(write=False)
        with self._lock:
            self._recent[key] = maps
            while len(self._recent) > self.max_images:
                self._recent.popitem(last=False)
        return dict(maps)


def _read_metadata(path: Path) -> dict:
    if not path.is_dir():
        raise FileNotFoundError(
            f"map store {path} does not exist; build it with `lookwhere precompute --stimuli DIR --out {path}`"
        )
    file = path / _METADATA_FILE
    try:
        metadata = json.loads(file.read_text())
    except FileNotFoundError:
        raise _store_error(path, f"{file.name} is missing, so this is not a (finished) map store") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _store_error(path, f"{file.name} is not valid JSON ({error})") from error
    if not isinstance(metadata, dict) or metadata.get("format") != STORE_FORMAT:
        raise _store_error(path, f"{file.name} does not describe a {STORE_FORMAT}")
    if metadata.get("format_version") != STORE_FORMAT_VERSION:
        raise _store_error(
            path, f"format version {metadata.get('format_version')!r} is not the supported {STORE_FORMAT_VERSION}"
        )
    missing = [key for key in RESUME_KEYS if key not in metadata]
    if missing:
        raise _store_error(path, f"{file.name} lacks the sections {missing}")
    return metadata


def _read_record(path: Path, image_id: str) -> dict:
    file = path / _MAPS_DIR / f"{image_id}.npz"
    try:
        with np.load(file, allow_pickle=False) as data:
            return json.loads(str(data[_RECORD_KEY]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise _store_error(path, f"image file {file} is unreadable ({error})") from error


def _differences(stored: dict, requested: dict, keys) -> list[tuple[str, object, object]]:
    """``(dotted key, stored, requested)`` for each differing entry, one level into dict sections."""
    found = []
    for key in keys:
        old, new = stored.get(key), requested.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            found += [
                (f"{key}.{sub}", old.get(sub), new.get(sub))
                for sub in sorted(set(old) | set(new))
                if old.get(sub) != new.get(sub)
            ]
        elif old != new:
            found.append((key, old, new))
    return found


class MapStoreWriter:
    """Creates a store or resumes one; writes image files atomically.

    Parameters
    ----------
    path : path
        Store folder; created if absent.
    metadata : dict
        Must hold ``map_names`` and the sections of :data:`RESUME_KEYS`; when the store exists these
        must equal the stored ones (same model, weights, geometry, parameters), else ValueError.
    """

    def __init__(self, path, metadata: dict) -> None:
        self.path = Path(path)
        missing = [key for key in RESUME_KEYS if key not in metadata]
        if missing:
            raise ValueError(f"store metadata lacks the sections {missing}")
        metadata = {"format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION, **metadata}
        if (self.path / _METADATA_FILE).exists():
            existing = _read_metadata(self.path)
            # Compare through JSON so tuples and lists (and int keys) compare as stored.
            new = json.loads(json.dumps(metadata))
            differing = _differences(existing, new, RESUME_KEYS)
            if differing:
                details = "; ".join(f"{key}: stored {old!r}, requested {value!r}" for key, old, value in differing)
                raise ValueError(
                    f"map store {self.path} was built with other settings ({details}); "
                    "use the same settings to resume it, or another --out for a new store"
                )
            self.metadata = existing
            logger.info("resuming map store %s", self.path)
        else:
            (self.path / _MAPS_DIR).mkdir(parents=True, exist_ok=True)
            self.metadata = metadata
            _atomic_write_json(self.path / _METADATA_FILE, self.metadata)
        (self.path / _MAPS_DIR).mkdir(exist_ok=True)
        for leftover in (self.path / _MAPS_DIR).glob(".*.tmp"):
            leftover.unlink()  # a write interrupted before its rename

    @classmethod
    def attach(cls, path) -> MapStoreWriter:
        """A writer of the existing store at ``path``, for one of several processes that write its
        images at once (the workers of ``lookwhere precompute --scheduler``).

        Unlike the constructor it creates, checks and removes nothing (a temporary file may be
        another worker's write in progress): the process that made the writer with the run's
        metadata has done that. Each image has its own temporary name, so writers of different
        images never meet.
        """
        writer = cls.__new__(cls)
        writer.path = Path(path)
        writer.metadata = _read_metadata(writer.path)
        return writer

    @property
    def finished_ids(self) -> set[str]:
        """Ids of the images whose maps are written."""
        return {p.stem for p in (self.path / _MAPS_DIR).glob("*.npz")}

    def has_cam_weights(self) -> bool:
        return (self.path / _CAM_FILE).exists()

    def write_cam_weights(self, weights: np.ndarray, bias: np.ndarray, *, info: dict) -> None:
        """Store the CAM regression (``weights (C, K)``, ``bias (C,)``) and ``info`` in metadata ``cam``."""
        _atomic_savez(
            self.path / _CAM_FILE, {"weights": np.asarray(weights, np.float32), "bias": np.asarray(bias, np.float32)}
        )
        self.metadata["cam"] = info
        _atomic_write_json(self.path / _METADATA_FILE, self.metadata)

    def write_image(self, image_id: str, maps: dict[str, np.ndarray], *, record: dict) -> Path:
        """Write one image's maps (name → ``(h, w)``) and record atomically; returns the file."""
        names = tuple(self.metadata["map_names"])
        if set(maps) != set(names):
            raise ValueError(f"maps of {image_id!r} must be exactly {names}; got {sorted(maps)}")
        arrays = {name: np.asarray(maps[name], dtype=np.float32) for name in names}
        bad = [name for name, m in arrays.items() if m.ndim != 2 or not np.isfinite(m).all()]
        if bad:
            raise ValueError(f"maps {bad} of image {image_id!r} are not finite (h, w) arrays")
        arrays[_RECORD_KEY] = np.array(json.dumps({"image_id": image_id, **record}))
        target = self.path / _MAPS_DIR / f"{image_id}.npz"
        _atomic_savez(target, arrays)
        return target
