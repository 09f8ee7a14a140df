"""Build (or resume) the map store of a stimulus set: ``lookwhere precompute`` without the CLI.

Order of work: (1) the CAM fit — one forward pass per image of the stimulus set (the fitting set),
GAP of relu5_3 and class scores, ridge regression (:mod:`analysis.cnn.cam`) — unless the store
already holds its weights;
(2) every map of every unfinished image, batch by batch (:func:`analysis.cnn.engine.compute_maps`),
each image written atomically. An interrupted run therefore resumes where it stopped.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import torch
import torchvision
from tqdm.auto import tqdm

from analysis.cnn.cam import DEFAULT_RIDGE_ALPHA, fit_cam_weights
from analysis.cnn.engine import MAP_NAMES, MapParameters, compute_maps, fitting_features
from analysis.cnn.model import BLOCK_OUTPUTS, IMAGENET_MEAN, IMAGENET_STD, TARGET_LAYER, AttentionVGG16, preprocess
from analysis.cnn.store import MapStore, MapStoreWriter
from stimuli.sets import StimulusSet

__all__ = ["precompute_store", "resolve_device"]

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


def _store_metadata(
    model: AttentionVGG16,
    stimuli: StimulusSet,
    *,
    input_size: int | None,
    parameters: MapParameters,
    ridge_alpha: float,
    device: torch.device,
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
            "label": model.weights.label,
            "untrained": model.weights.untrained,
            "seed": model.weights.seed,
            "sha256": model.weights.sha256,
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
        # Of the run that created the store (TF32 convolutions/matmuls change maps by ~1e-3 relative).
        "device": {
            "type": device.type,
            "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        },
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


def _load_batch(
    stimuli: StimulusSet, image_ids: list[str], input_size: int | None, device: torch.device
) -> torch.Tensor:
    return torch.stack([preprocess(stimuli.load_rgb(i), input_size=input_size) for i in image_ids]).to(device)


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
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    ids, shapes = _checked_images(stimuli, image_ids, input_size)
    torch_device = resolve_device(device)
    model = model.to(torch_device)
    writer = MapStoreWriter(
        out,
        _store_metadata(
            model, stimuli, input_size=input_size, parameters=parameters, ridge_alpha=ridge_alpha, device=torch_device
        ),
    )
    network_shapes = shapes if input_size is None else {i: (input_size, input_size) for i in shapes}
    inputs = _Inputs(stimuli, shapes, network_shapes, input_size, batch_size, torch_device)
    if not writer.has_cam_weights():
        _fit_cam(model, writer, inputs, ridge_alpha=ridge_alpha, progress=progress)
    cam_weights = torch.from_numpy(MapStore.open(out).cam_weights()[0]).to(torch_device)
    finished = writer.finished_ids
    todo = [i for i in ids if i not in finished]
    if len(todo) < len(ids):
        logger.info(
            "%d of %d images already in %s; computing the other %d", len(ids) - len(todo), len(ids), out, len(todo)
        )
    _write_maps(model, writer, inputs, todo, cam_weights=cam_weights, parameters=parameters, progress=progress)
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
    network's input, the input side (None: native), the batch size and the device."""

    stimuli: StimulusSet
    shapes: dict[str, tuple[int, int]]
    network_shapes: dict[str, tuple[int, int]]
    input_size: int | None
    batch_size: int
    device: torch.device

    def batches(self, image_ids: list[str]) -> list[list[str]]:
        return list(_batches(image_ids, self.network_shapes, self.batch_size))

    def load(self, batch: list[str]) -> torch.Tensor:
        return _load_batch(self.stimuli, batch, self.input_size, self.device)


def _fit_cam(
    model: AttentionVGG16, writer: MapStoreWriter, inputs: _Inputs, *, ridge_alpha: float, progress: bool
) -> None:
    """Fit the CAM regression on every image of the set (SPEC §2) and store its weights."""
    all_ids = list(inputs.shapes)
    features, scores = [], []
    for batch in tqdm(inputs.batches(all_ids), desc="CAM fit (forward)", unit="batch", disable=not progress):
        gap, batch_scores = fitting_features(model, inputs.load(batch))
        features.append(gap.numpy())
        scores.append(batch_scores.numpy())
    fit = fit_cam_weights(np.concatenate(features), np.concatenate(scores), ridge_alpha=ridge_alpha)
    info = {"fitting_image_ids": all_ids, "ridge_alpha": fit.ridge_alpha, "ridge_lambda": fit.ridge_lambda}
    writer.write_cam_weights(fit.weights, fit.bias, info=info)
    logger.info("CAM regression fitted on %d images (ridge lambda %.3g)", len(all_ids), fit.ridge_lambda)


def _write_maps(
    model: AttentionVGG16,
    writer: MapStoreWriter,
    inputs: _Inputs,
    todo: list[str],
    *,
    cam_weights: torch.Tensor,
    parameters: MapParameters,
    progress: bool,
) -> None:
    """Compute and store the maps of the images ``todo``, batch by batch."""
    with tqdm(total=len(todo), desc="attention maps", unit="image", disable=not progress) as bar:
        for batch in inputs.batches(todo):
            result = compute_maps(model, inputs.load(batch), cam_weights=cam_weights, parameters=parameters)
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
                bar.update(1)
