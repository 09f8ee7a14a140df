"""Build (or resume) the map store of a stimulus set: ``lookwhere precompute`` without the CLI.

Order of work: (1) the CAM fit — one forward pass per image of the stimulus set (the fitting set),
GAP of relu5_3 and class scores, ridge regression (:mod:`analysis.cnn.cam`) — unless the store
already holds its weights;
(2) every map of every unfinished image, batch by batch (:func:`analysis.cnn.engine.compute_maps`),
each image written atomically. An interrupted run therefore resumes where it stopped.

:func:`precompute_store_distributed` does the same work on Dask workers (``lookwhere precompute
--scheduler``): the batches of both steps become tasks; each worker loads the model once, computes
its batches exactly as the serial run does (the same per-batch functions), and writes its images
into the store itself; the client fits the CAM regression on the gathered features.
"""

from __future__ import annotations

import functools
import logging
import platform
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import torch
import torchvision
from tqdm.auto import tqdm

from analysis.cnn.cam import DEFAULT_RIDGE_ALPHA, fit_cam_weights
from analysis.cnn.engine import MAP_NAMES, MapParameters, compute_maps, fitting_features
from analysis.cnn.model import (
    BLOCK_OUTPUTS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    TARGET_LAYER,
    AttentionVGG16,
    WeightsInfo,
    load_vgg16,
    preprocess,
)
from analysis.cnn.store import MapStore, MapStoreWriter
from analysis.distributed import broadcast, run_batches
from stimuli.sets import StimulusSet

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["describe_device", "precompute_store", "precompute_store_distributed", "resolve_device"]

logger = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cpu"``/``"cuda"`` as given (checked)."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda'; got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch sees no CUDA device; use --device cpu or auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def describe_device(device: torch.device) -> dict:
    """What the store records of the device that computed it (TF32 convolutions/matmuls change maps
    by ~1e-3 relative)."""
    return {
        "type": device.type,
        "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }


def _store_metadata(
    weights: WeightsInfo,
    stimuli: StimulusSet,
    *,
    input_size: int | None,
    parameters: MapParameters,
    ridge_alpha: float,
    device: dict,
) -> dict:
    return {
        "map_names": list(MAP_NAMES),
        "model": {
            "architecture": "torchvision.models.vgg16",
            "relus": "out-of-place; guided rule only in the Guided Backprop pass",
            "block_outputs": {name: f"features[{index}]" for name, index in BLOCK_OUTPUTS.items()},
            "cam_family_layer": f"{TARGET_LAYER} (features[{BLOCK_OUTPUTS[TARGET_LAYER]}])",
        },
        "weights": {
            "label": weights.label,
            "untrained": weights.untrained,
            "seed": weights.seed,
            "sha256": weights.sha256,
        },
        "input": {
            "size": "native" if input_size is None else [input_size, input_size],
            "resize": "whole image, bilinear with antialias, aspect ratio not kept, never cropped",
            "channels": "RGB",
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
        },
        "parameters": {
            **parameters.as_dict(),
            "target": "top-1 class",
            "cam_features": "spatial mean of relu5_3 (GAP)",
            "cam_ridge_alpha": ridge_alpha,
            "cam_fitting_set": "every image of the stimulus set",
            "upsampling": "bilinear, align_corners=False, on load",
        },
        "stimuli": str(stimuli.folder),
        "device": device,  # of the run that created the store
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": np.__version__,
        },
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _batches(image_ids: list[str], shapes: dict[str, tuple[int, int]], batch_size: int):
    """Consecutive runs of at most ``batch_size`` ids whose network input has the same shape."""
    batch: list[str] = []
    for image_id in image_ids:
        if batch and (len(batch) == batch_size or shapes[image_id] != shapes[batch[0]]):
            yield batch
            batch = []
        batch.append(image_id)
    if batch:
        yield batch


def precompute_store(
    model: AttentionVGG16,
    stimuli: StimulusSet,
    out,
    *,
    input_size: int | None = 224,
    batch_size: int = 8,
    device: str = "auto",
    parameters: MapParameters = MapParameters(),
    image_ids: list[str] | None = None,
    ridge_alpha: float = DEFAULT_RIDGE_ALPHA,
    progress: bool = True,
) -> MapStore:
    """Compute every map of every image of ``stimuli`` into the store at ``out``; resumable.

    Parameters
    ----------
    model : AttentionVGG16
        From :func:`analysis.cnn.model.load_vgg16`; moved to ``device``.
    stimuli : StimulusSet
    out : path
        Store folder. If it holds a store built with the same model, weights, input geometry and
        parameters, finished images are skipped; with other settings a ValueError is raised.
    input_size : int or None
        Square network input side (default 224); None: native image size.
    batch_size : int
        Images per forward pass (native size: consecutive images of equal size only).
    device : {"auto", "cpu", "cuda"}
    parameters : MapParameters
    image_ids : list of str, optional
        Subset of the stimulus set to compute (default: all). The CAM fitting set is always the
        whole stimulus set (SPEC §2), so a subset gets the same CAM weights as a full run.
    ridge_alpha : float
        CAM ridge strength (:func:`analysis.cnn.cam.fit_cam_weights`).
    progress : bool
        Show tqdm progress bars.

    Returns
    -------
    MapStore
        The store, reopened.
    """
    return _precompute(
        _InProcess(model, device),
        stimuli,
        out,
        input_size=input_size,
        batch_size=batch_size,
        parameters=parameters,
        image_ids=image_ids,
        ridge_alpha=ridge_alpha,
        progress=progress,
    )


def precompute_store_distributed(
    client: Client,
    weights: str,
    stimuli: StimulusSet,
    out,
    *,
    seed: int = 0,
    input_size: int | None = 224,
    batch_size: int = 8,
    device: str = "auto",
    parameters: MapParameters = MapParameters(),
    image_ids: list[str] | None = None,
    ridge_alpha: float = DEFAULT_RIDGE_ALPHA,
    progress: bool = True,
) -> MapStore:
    """:func:`precompute_store` on the workers of a Dask ``client``, batch by batch; the same store.

    Each batch of :func:`precompute_store` is one task. A worker loads the model once
    (``load_vgg16(weights, seed=seed)``, kept for the worker's later tasks), resolves ``device`` on
    its own machine and writes its images into the store atomically, so an interrupted run resumes
    as a serial one does. Workers read ``stimuli`` and write ``out`` by path: on a cluster both must
    lie on storage every worker mounts at the same path (and a weights file too).

    Parameters
    ----------
    client : distributed.Client
        From :func:`analysis.distributed.open_client`.
    weights : {"imagenet", "untrained"} or path
        As :func:`analysis.cnn.model.load_vgg16`.
    seed : int
        Seed of ``weights="untrained"``.
    stimuli, out, input_size, batch_size, device, parameters, image_ids, ridge_alpha, progress
        As :func:`precompute_store`; ``device`` is resolved on each worker.

    Returns
    -------
    MapStore
        The store, reopened. Its metadata's ``device`` is the first worker's, with ``dask_workers``.
    """
    return _precompute(
        _OnWorkers(client, _ModelSpec(str(weights), seed, device)),
        stimuli,
        out,
        input_size=input_size,
        batch_size=batch_size,
        parameters=parameters,
        image_ids=image_ids,
        ridge_alpha=ridge_alpha,
        progress=progress,
    )


def _precompute(
    runner: _InProcess | _OnWorkers,
    stimuli: StimulusSet,
    out,
    *,
    input_size: int | None,
    batch_size: int,
    parameters: MapParameters,
    image_ids: list[str] | None,
    ridge_alpha: float,
    progress: bool,
) -> MapStore:
    """The steps of the module docstring; ``runner`` computes the batches (here or on workers)."""
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    ids, shapes = _checked_images(stimuli, image_ids, input_size)
    weights, device = runner.describe()
    metadata = _store_metadata(
        weights, stimuli, input_size=input_size, parameters=parameters, ridge_alpha=ridge_alpha, device=device
    )
    writer = MapStoreWriter(out, metadata)
    network_shapes = shapes if input_size is None else {i: (input_size, input_size) for i in shapes}
    inputs = _Inputs(stimuli, shapes, network_shapes, input_size, batch_size)
    if not writer.has_cam_weights():
        _fit_cam(runner, writer, inputs, ridge_alpha=ridge_alpha, progress=progress)
    cam_weights = MapStore.open(out).cam_weights()[0]
    finished = writer.finished_ids
    todo = [i for i in ids if i not in finished]
    if len(todo) < len(ids):
        logger.info(
            "%d of %d images already in %s; computing the other %d", len(ids) - len(todo), len(ids), out, len(todo)
        )
    with tqdm(total=len(todo), desc="attention maps", unit="image", disable=not progress) as bar:
        runner.write_maps(writer, inputs, inputs.batches(todo), cam_weights=cam_weights, parameters=parameters, bar=bar)
    return MapStore.open(out)


def _checked_images(
    stimuli: StimulusSet, image_ids: list[str] | None, input_size: int | None
) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """The images to compute (checked) and the shape ``(H, W)`` of every image of the set."""
    all_ids = stimuli.image_ids
    ids = all_ids if image_ids is None else list(image_ids)
    unknown = sorted(set(ids) - set(all_ids))
    if unknown:
        raise KeyError(
            f"images {unknown} are not in the stimulus set {stimuli.folder} "
            f"(ids are file names without extension, e.g. {all_ids[:3]})"
        )
    if not ids:
        raise ValueError(f"no images to compute: the stimulus set {stimuli.folder} is empty or --images is empty")
    shapes = {i: stimuli.shape(i) for i in all_ids}
    if input_size is None:
        # Five 2×2 poolings need >= 32 px per side, else pool5 fails deep inside torch.
        too_small = {i: shape for i, shape in shapes.items() if min(shape) < 32}
        if too_small:
            raise ValueError(
                f"images {too_small} ((H, W) in px) are smaller than 32 px, too small for VGG16 "
                "at native size; use --input-size 224"
            )
    return ids, shapes


@dataclass(frozen=True)
class _Inputs:
    """How the stimuli become network input batches: every image's ``(H, W)``, its size at the
    network's input, the input side (None: native) and the batch size."""

    stimuli: StimulusSet
    shapes: dict[str, tuple[int, int]]
    network_shapes: dict[str, tuple[int, int]]
    input_size: int | None
    batch_size: int

    def batches(self, image_ids: list[str]) -> list[list[str]]:
        return list(_batches(image_ids, self.network_shapes, self.batch_size))

    def load(self, batch: list[str], device: torch.device) -> torch.Tensor:
        """The batch's network input, ``(B, 3, h, w)`` float32 on ``device``."""
        images = [preprocess(self.stimuli.load_rgb(i), input_size=self.input_size) for i in batch]
        return torch.stack(images).to(device)


def _fit_cam(runner, writer: MapStoreWriter, inputs: _Inputs, *, ridge_alpha: float, progress: bool) -> None:
    """Fit the CAM regression on every image of the set (SPEC §2) and store its weights."""
    all_ids = list(inputs.shapes)
    with tqdm(total=len(all_ids), desc="CAM fit (forward)", unit="image", disable=not progress) as bar:
        features, scores = zip(*runner.features(inputs, inputs.batches(all_ids), bar=bar))
    fit = fit_cam_weights(np.concatenate(features), np.concatenate(scores), ridge_alpha=ridge_alpha)
    info = {"fitting_image_ids": all_ids, "ridge_alpha": fit.ridge_alpha, "ridge_lambda": fit.ridge_lambda}
    writer.write_cam_weights(fit.weights, fit.bias, info=info)
    logger.info("CAM regression fitted on %d images (ridge lambda %.3g)", len(all_ids), fit.ridge_lambda)


# The work of one batch, the same here and on a worker (hence the same results).


def _batch_features(
    model: AttentionVGG16, inputs: _Inputs, batch: list[str], device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """GAP of relu5_3 ``(B, 512)`` and class scores ``(B, 1000)`` of one batch, float32."""
    gap, scores = fitting_features(model, inputs.load(batch, device))
    return gap.numpy(), scores.numpy()


def _write_batch(
    model: AttentionVGG16,
    writer: MapStoreWriter,
    inputs: _Inputs,
    batch: list[str],
    *,
    device: torch.device,
    cam_weights: torch.Tensor,
    parameters: MapParameters,
) -> None:
    """Compute the maps of one batch and write each image into the store."""
    result = compute_maps(model, inputs.load(batch, device), cam_weights=cam_weights, parameters=parameters)
    for row, image_id in enumerate(batch):
        writer.write_image(
            image_id,
            {name: m[row].numpy() for name, m in result.maps.items()},
            record={
                "target_class": int(result.targets[row]),
                "target_score": float(result.target_scores[row]),
                "original_shape": list(inputs.shapes[image_id]),
                "network_shape": list(inputs.network_shapes[image_id]),
            },
        )


class _InProcess:
    """Computes the batches in this process, one after the other."""

    def __init__(self, model: AttentionVGG16, device: str) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device)

    def describe(self) -> tuple[WeightsInfo, dict]:
        return self.model.weights, describe_device(self.device)

    def features(self, inputs: _Inputs, batches: list[list[str]], *, bar) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for batch in batches:
            yield _batch_features(self.model, inputs, batch, self.device)
            bar.update(len(batch))

    def write_maps(self, writer, inputs, batches, *, cam_weights: np.ndarray, parameters, bar) -> None:
        weights = torch.from_numpy(cam_weights).to(self.device)
        for batch in batches:
            _write_batch(
                self.model, writer, inputs, batch, device=self.device, cam_weights=weights, parameters=parameters
            )
            bar.update(len(batch))


@dataclass(frozen=True)
class _ModelSpec:
    """What a worker needs to load the model itself (the model is not sent: 528 MB)."""

    weights: str
    seed: int
    device: str


class _OnWorkers:
    """Computes the batches as tasks on the workers of a Dask client."""

    def __init__(self, client: Client, spec: _ModelSpec) -> None:
        self.client = client
        self.spec = spec

    def describe(self) -> tuple[WeightsInfo, dict]:
        weights, device = self.client.submit(_worker_description, self.spec, pure=False).result()
        return weights, {**device, "dask_workers": len(self.client.scheduler_info()["workers"])}

    def features(self, inputs: _Inputs, batches: list[list[str]], *, bar) -> list[tuple[np.ndarray, np.ndarray]]:
        shared = broadcast(self.client, inputs)
        return run_batches(self.client, _worker_features, batches, bar=bar, spec=self.spec, inputs=shared)

    def write_maps(self, writer, inputs, batches, *, cam_weights: np.ndarray, parameters, bar) -> None:
        run_batches(
            self.client,
            _worker_maps,
            batches,
            bar=bar,
            spec=self.spec,
            inputs=broadcast(self.client, inputs),
            cam_weights=broadcast(self.client, cam_weights),
            store=writer.path,
            parameters=parameters,
        )


# Tasks run by the workers. One model per worker process, used by one task at a time: the guided pass
# switches the model's ReLUs, so two threads of a worker must not share it.
_WORKER_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _worker_model(spec: _ModelSpec) -> tuple[AttentionVGG16, torch.device]:
    device = resolve_device(spec.device)
    return load_vgg16(spec.weights, seed=spec.seed).to(device), device


def _worker_description(spec: _ModelSpec) -> tuple[WeightsInfo, dict]:
    with _WORKER_LOCK:
        model, device = _worker_model(spec)
        return model.weights, describe_device(device)


def _worker_features(batch: list[str], *, spec: _ModelSpec, inputs: _Inputs) -> tuple[np.ndarray, np.ndarray]:
    with _WORKER_LOCK:
        model, device = _worker_model(spec)
        return _batch_features(model, inputs, batch, device)


def _worker_maps(
    batch: list[str],
    *,
    spec: _ModelSpec,
    inputs: _Inputs,
    cam_weights: np.ndarray,
    store,
    parameters: MapParameters,
) -> None:
    with _WORKER_LOCK:
        model, device = _worker_model(spec)
        weights = torch.from_numpy(cam_weights).to(device)
        writer = MapStoreWriter.attach(store)
        _write_batch(model, writer, inputs, batch, device=device, cam_weights=weights, parameters=parameters)
