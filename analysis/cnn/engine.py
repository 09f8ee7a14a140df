"""Every attention map of a batch from shared passes.

Per batch: **one forward pass** (keeping the block outputs) and three backward passes through the
same graph, each only as deep as it must go:

1. ordinary backward of each image's top-1 score to relu5_3 (classifier only) → Grad-CAM;
2. ordinary backward of the Gestalt Total to the five block outputs (features only) → dense model;
3. guided backward of the top-1 score to the input (whole network, ReLUs switched to the guided rule
   with :func:`~analysis.cnn.guided_backprop.guided_relu_backward`) → Guided Backprop and, with
   the Grad-CAM of pass 1, Guided Grad-CAM.

CAM needs no backward: it is a weighted sum of the relu5_3 activations of the forward pass. The
weights are fitted beforehand (:func:`fitting_features` + :func:`analysis.cnn.cam.fit_cam_weights`).

Images are independent in VGG16 (no batch statistics in eval mode), so the gradient of the batch
sum of per-image scores gives each image the gradient of its own score: per-image targets inside
a batch cost nothing extra.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from analysis._checks import check_choice
from analysis.cnn.cam import class_activation_map, global_average_pool
from analysis.cnn.dense import (
    COMBINATION_NAMES,
    GT_REDUCTIONS,
    LAYER_MAP_NAMES,
    LAYER_NORMS,
    dense_attention_maps,
    gestalt_sensitivities,
)
from analysis.cnn.gradcam import grad_cam
from analysis.cnn.guided_backprop import REDUCTIONS, guided_relu_backward, reduce_channels
from analysis.cnn.guided_gradcam import guided_grad_cam
from analysis.cnn.model import TARGET_LAYER, AttentionVGG16

__all__ = ["MAP_NAMES", "MapParameters", "BatchMaps", "compute_maps", "fitting_features"]

#: Names of the stored maps, in a fixed order (used by the store, the analysis and the dashboard).
MAP_NAMES: tuple[str, ...] = (
    "cam",
    "gradcam",
    "guided_backprop",
    "guided_gradcam",
    *LAYER_MAP_NAMES.values(),
    *COMBINATION_NAMES,
)


@dataclass(frozen=True)
class MapParameters:
    """Options of the attention methods (defaults = SPEC §2).

    Attributes
    ----------
    gt : {"mean", "sum"}
        Gestalt Total of the dense model (eq. 6).
    layer_norm : {"minmax", "raw"}
        Per-layer dense maps normalised before they are summed, or not.
    guided_reduction : {"max_abs", "sum_abs"}
        Channel reduction of Guided Backprop and Guided Grad-CAM.
    """

    gt: str = "mean"
    layer_norm: str = "minmax"
    guided_reduction: str = "max_abs"

    def __post_init__(self) -> None:
        check_choice("gt", self.gt, GT_REDUCTIONS)
        check_choice("layer_norm", self.layer_norm, LAYER_NORMS)
        check_choice("guided_reduction", self.guided_reduction, REDUCTIONS)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BatchMaps:
    """Maps of one batch at network resolution, detached, on the CPU, float32.

    Attributes
    ----------
    maps : dict[str, torch.Tensor]
        :data:`MAP_NAMES` → ``(B, h, w)``: 14×14 for ``cam``/``gradcam``/``dense_conv5`` at 224
        input, the input size for ``guided_*``/``dense_conv1``/``dense_conv54321``.
    targets : torch.Tensor, shape (B,), int64
        Target class of each image (top-1 unless given).
    target_scores : torch.Tensor, shape (B,)
        Its logit.
    """

    maps: dict[str, torch.Tensor]
    targets: torch.Tensor
    target_scores: torch.Tensor


def compute_maps(
    model: AttentionVGG16,
    images: torch.Tensor,
    *,
    cam_weights: torch.Tensor,
    parameters: MapParameters = MapParameters(),
    targets: torch.Tensor | None = None,
) -> BatchMaps:
    """Compute every map of :data:`MAP_NAMES` for a batch, from one forward pass.

    Parameters
    ----------
    model : AttentionVGG16
        From :func:`analysis.cnn.model.load_vgg16`, on the device of ``images``.
    images : torch.Tensor, shape (B, 3, H, W)
        Preprocessed input (:func:`analysis.cnn.model.preprocess`), all the same size.
    cam_weights : torch.Tensor, shape (1000, 512)
        CAM regression weights ``w_k^c`` (:attr:`analysis.cnn.cam.CamWeights.weights`).
    parameters : MapParameters
        Method options.
    targets : torch.Tensor, shape (B,), int64, optional
        Target class of each image for CAM, Grad-CAM and the guided maps; default: each image's
        top-1 class (eq. 2, "the winning class"). The dense model has no target (it uses GT).

    Returns
    -------
    BatchMaps
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W); got {tuple(images.shape)}")
    with torch.enable_grad():
        x = images.detach().requires_grad_(True)
        scores, blocks = model.forward_with_blocks(x)
        if targets is None:
            targets = scores.detach().argmax(dim=1)
        elif targets.shape != (images.shape[0],):
            raise ValueError(f"targets must have shape ({images.shape[0]},); got {tuple(targets.shape)}")
        targets = targets.to(scores.device)
        target_score_sum = scores.gather(1, targets[:, None]).sum()
        last = blocks[TARGET_LAYER]

        # Pass 1: ordinary gradient of the target scores at relu5_3 (eq. 2).
        (target_gradient,) = torch.autograd.grad(target_score_sum, last, retain_graph=True)
        # Pass 2: G_n = ∂GT/∂f_n for all five block outputs at once (eq. 7).
        sensitivities = gestalt_sensitivities(blocks, gt=parameters.gt)
        # Pass 3: guided gradient of the target scores at the input; frees the graph.
        with guided_relu_backward(model):
            (guided_gradient,) = torch.autograd.grad(target_score_sum, x)

    with torch.no_grad():
        activations = last.detach()
        gradcam = grad_cam(activations, target_gradient)
        maps = {
            "cam": class_activation_map(activations, cam_weights, targets),
            "gradcam": gradcam,
            "guided_backprop": reduce_channels(guided_gradient, reduction=parameters.guided_reduction),
            "guided_gradcam": guided_grad_cam(guided_gradient, gradcam, reduction=parameters.guided_reduction),
        }
        maps.update(
            dense_attention_maps(
                {name: f.detach() for name, f in blocks.items()},
                sensitivities,
                layer_norm=parameters.layer_norm,
            )
        )
        target_scores = scores.detach().gather(1, targets[:, None])[:, 0]
    return BatchMaps(
        maps={name: maps[name].float().cpu() for name in MAP_NAMES},
        targets=targets.cpu(),
        target_scores=target_scores.float().cpu(),
    )


def fitting_features(model: AttentionVGG16, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GAP of relu5_3 and class scores of a batch, for the CAM fit (forward only).

    Parameters
    ----------
    model : AttentionVGG16
    images : torch.Tensor, shape (B, 3, H, W)

    Returns
    -------
    gap : torch.Tensor, shape (B, 512), float32, CPU
        ``F^k`` (:func:`analysis.cnn.cam.global_average_pool`).
    scores : torch.Tensor, shape (B, 1000), float32, CPU
    """
    with torch.no_grad():
        scores, blocks = model.forward_with_blocks(images)
        return global_average_pool(blocks[TARGET_LAYER]).float().cpu(), scores.float().cpu()
