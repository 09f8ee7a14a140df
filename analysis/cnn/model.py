"""VGG16 prepared for attention maps: weights, out-of-place switchable ReLUs, named block outputs,
and the input geometry of SPEC §2 ("CNN input").

Weights (SPEC §7):

- ``"imagenet"``: torchvision's ``VGG16_Weights.IMAGENET1K_V1``, from torchvision's cache
  (``$TORCH_HOME/hub/checkpoints``), downloaded there on first use;
- a path to a local state dict of torchvision's ``vgg16``;
- ``"untrained"``: exactly ``torch.manual_seed(seed); torchvision.models.vgg16(weights=None)``,
  always labelled untrained — such maps are not the paper's.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from analysis.cnn.guided_backprop import SwitchableReLU

__all__ = [
    "AttentionVGG16",
    "BLOCK_OUTPUTS",
    "TARGET_LAYER",
    "WeightsInfo",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "load_vgg16",
    "preprocess",
]

logger = logging.getLogger(__name__)

#: Dense-model "layer n" = output of conv block n, post-ReLU (SPEC §2), name → index in ``features``.
BLOCK_OUTPUTS: dict[str, int] = {
    "relu1_2": 3,
    "relu2_2": 8,
    "relu3_3": 15,
    "relu4_3": 22,
    "relu5_3": 29,
}
#: Layer of the CAM family (CAM, Grad-CAM, Guided Grad-CAM): relu5_3, not pool5 (SPEC §2).
TARGET_LAYER = "relu5_3"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class WeightsInfo:
    """Where the weights came from: ``label`` goes into every store and figure."""

    label: str
    untrained: bool
    seed: int | None
    sha256: str | None = None


class AttentionVGG16(nn.Module):
    """torchvision VGG16 in eval mode with :class:`SwitchableReLU` everywhere and frozen weights.

    Parameters
    ----------
    vgg : torchvision.models.VGG
        A VGG16 (``features`` with 31 layers); its ReLUs are replaced in place of the module tree.
    weights : WeightsInfo
        Provenance of the weights.

    Notes
    -----
    Parameters get ``requires_grad=False``: every attention map needs gradients with respect to
    activations or the input only, and skipping the weight gradients (≈138 M values) is what makes
    the backward passes affordable on a CPU.
    """

    def __init__(self, vgg: torchvision.models.VGG, *, weights: WeightsInfo) -> None:
        super().__init__()
        _replace_relus(vgg)
        self.vgg = vgg
        self.weights = weights
        for name, index in BLOCK_OUTPUTS.items():
            layer = vgg.features[index]
            if not isinstance(layer, SwitchableReLU):
                raise ValueError(f"features[{index}] should be {name} (a ReLU); found {layer!r}")
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), shape ``(B, 1000)``."""
        return self.vgg(x)

    def forward_with_blocks(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One forward pass returning the class scores and the block outputs.

        Parameters
        ----------
        x : torch.Tensor, shape (B, 3, H, W)
            ImageNet-normalised input (see :func:`preprocess`).

        Returns
        -------
        scores : torch.Tensor, shape (B, 1000)
            Logits.
        blocks : dict[str, torch.Tensor]
            ``relu1_2`` … ``relu5_3`` → activations ``(B, C_n, H / 2**(n-1), W / 2**(n-1))``
            (floored), still attached to the autograd graph.
        """
        blocks: dict[str, torch.Tensor] = {}
        index_to_name = {index: name for name, index in BLOCK_OUTPUTS.items()}
        h = x
        for index, layer in enumerate(self.vgg.features):
            h = layer(h)
            if index in index_to_name:
                blocks[index_to_name[index]] = h
        h = torch.flatten(self.vgg.avgpool(h), 1)
        return self.vgg.classifier(h), blocks


def _replace_relus(module: nn.Module) -> None:
    """Swap every ``nn.ReLU`` below ``module`` for an out-of-place :class:`SwitchableReLU`."""
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU) and not isinstance(child, SwitchableReLU):
            setattr(module, name, SwitchableReLU())
        else:
            _replace_relus(child)


def load_vgg16(weights: str | Path = "imagenet", *, seed: int = 0) -> AttentionVGG16:
    """Build the VGG16 used for every attention map.

    Parameters
    ----------
    weights : {"imagenet", "untrained"} or path
        ``"imagenet"``: ``VGG16_Weights.IMAGENET1K_V1`` via torchvision's cache (downloaded on
        first use); a path: a local state dict of torchvision's ``vgg16`` (``torch.save``
        of ``model.state_dict()``); ``"untrained"``: ``torch.manual_seed(seed)`` then
        ``torchvision.models.vgg16(weights=None)``.
    seed : int
        Seed of the untrained initialisation; ignored otherwise.

    Returns
    -------
    AttentionVGG16
        On the CPU, eval mode, float32, frozen weights.

    Raises
    ------
    FileNotFoundError
        ImageNet weights neither cached nor downloadable, or the path does not exist; the message
        says how to provide weights.
    ValueError
        The file is not a VGG16 state dict.
    """
    if str(weights) == "untrained":
        torch.manual_seed(seed)
        vgg = torchvision.models.vgg16(weights=None)
        logger.warning("VGG16 with UNTRAINED weights (seed %d): its maps are not the paper's", seed)
        return AttentionVGG16(vgg, weights=WeightsInfo(label="untrained", untrained=True, seed=seed))
    if str(weights) == "imagenet":
        return AttentionVGG16(
            _imagenet_vgg16(),
            weights=WeightsInfo(label="imagenet:VGG16_Weights.IMAGENET1K_V1", untrained=False, seed=None),
        )
    return _vgg16_from_file(Path(weights))


def _imagenet_vgg16() -> torchvision.models.VGG:
    weights = torchvision.models.VGG16_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return torchvision.models.vgg16(weights=weights)
    except Exception as error:  # urllib/HTTP/SSL errors differ by platform; all mean "no weights"
        raise FileNotFoundError(
            f"ImageNet VGG16 weights are not in torchvision's cache ({cached}) and could not be "
            f"downloaded from {weights.url} ({type(error).__name__}: {error}). Either copy that file "
            f"to {cached} (or set TORCH_HOME), pass a local state dict with --weights PATH, or run "
            "with --weights untrained for a run whose maps are labelled untrained"
        ) from error


def _vgg16_from_file(path: Path) -> AttentionVGG16:
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file {path} does not exist; pass --weights imagenet, --weights untrained, "
            "or the path of a torchvision vgg16 state dict"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle/zip errors: the file is not a torch checkpoint
        raise ValueError(f"weights file {path} is not a torch state dict: {error}") from error
    vgg = torchvision.models.vgg16(weights=None)
    try:
        vgg.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise ValueError(
            f"weights file {path} is not a state dict of torchvision's vgg16 "
            f"(save one with torch.save(model.state_dict(), path)): {error}"
        ) from error
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    label = f"file:{path.resolve()}"
    return AttentionVGG16(vgg, weights=WeightsInfo(label=label, untrained=False, seed=None, sha256=sha256))


def preprocess(image: np.ndarray, *, input_size: int | None = 224) -> torch.Tensor:
    """Turn an RGB image into VGG16 input (SPEC §2 "CNN input"): whole image, never cropped.

    Parameters
    ----------
    image : np.ndarray, shape (H, W, 3), uint8
        RGB image in original image pixels.
    input_size : int or None
        Side of the square network input: the whole image is resized (bilinear, antialiased) to
        ``input_size × input_size``, changing its aspect ratio; ``None`` feeds the native size.

    Returns
    -------
    torch.Tensor, shape (3, S, S) or (3, H, W), float32
        Normalised with the ImageNet mean and std (RGB).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array; got {image.shape} {image.dtype}")
    if input_size is not None and (int(input_size) != input_size or input_size < 32):
        raise ValueError(f"input_size must be an integer >= 32 (VGG16 pools 5 times) or None; got {input_size!r}")
    x = torch.tensor(image).permute(2, 0, 1).float().div_(255.0)
    if input_size is not None:
        x = F.interpolate(x[None], size=(input_size, input_size), mode="bilinear", align_corners=False, antialias=True)[
            0
        ]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std
