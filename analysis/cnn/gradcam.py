"""Grad-CAM (Selvaraju et al. 2017; paper §3.1, eq. 2–4)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["grad_cam"]


def grad_cam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM map from a layer's activations and the gradient of the target score.

    ``A = ∂y_c/∂f`` (eq. 2), ``a_k^c = mean_{x,y} A_k(x, y)`` (eq. 3),
    ``L = ReLU(Σ_k a_k^c f_k)`` (eq. 4). Equals captum's
    ``LayerGradCam(...).attribute(..., relu_attributions=True)`` without its channel axis.

    Parameters
    ----------
    activations : torch.Tensor, shape (B, K, h, w)
        ``f``: the target layer's activations (relu5_3 by default, 14×14 at 224 input).
    gradients : torch.Tensor, shape (B, K, h, w)
        ``A``: gradient of each image's target class score with respect to ``activations``.

    Returns
    -------
    torch.Tensor, shape (B, h, w)
        Un-normalised map at the layer's resolution, >= 0.
    """
    if activations.shape != gradients.shape or activations.ndim != 4:
        raise ValueError(
            "activations and gradients must both have shape (B, K, h, w); got "
            f"{tuple(activations.shape)} and {tuple(gradients.shape)}"
        )
    channel_weights = gradients.mean(dim=(2, 3), keepdim=True)  # eq. 3
    return F.relu((channel_weights * activations).sum(dim=1))  # eq. 4
