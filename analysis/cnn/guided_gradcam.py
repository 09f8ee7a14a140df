"""Guided Grad-CAM (Selvaraju et al. 2017; paper §3.1): Guided Backprop × upsampled Grad-CAM."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from analysis.cnn.guided_backprop import reduce_channels

__all__ = ["guided_grad_cam"]


def guided_grad_cam(
    guided_gradient: torch.Tensor, gradcam: torch.Tensor, *, reduction: str = "max_abs"
) -> torch.Tensor:
    """Element-wise product of Guided Backprop and Grad-CAM, then the channel reduction.

    The Grad-CAM map (eq. 4, not normalised) is upsampled to the input size with bilinear,
    ``align_corners=False`` interpolation, multiplied into every channel of the guided gradient
    (as captum's ``GuidedGradCam(..., interpolate_mode="bilinear")``), and the signed 3-channel
    product is reduced like Guided Backprop (SPEC §2).

    Parameters
    ----------
    guided_gradient : torch.Tensor, shape (B, 3, H, W)
        Guided Backprop input gradient, network-input pixels.
    gradcam : torch.Tensor, shape (B, h, w)
        Grad-CAM at the target layer.
    reduction : {"max_abs", "sum_abs"}
        See :func:`analysis.cnn.guided_backprop.reduce_channels`.

    Returns
    -------
    torch.Tensor, shape (B, H, W), >= 0.
    """
    if guided_gradient.ndim != 4 or gradcam.ndim != 3 or guided_gradient.shape[0] != gradcam.shape[0]:
        raise ValueError(
            "guided_gradient must be (B, 3, H, W) and gradcam (B, h, w) with the same B; got "
            f"{tuple(guided_gradient.shape)} and {tuple(gradcam.shape)}"
        )
    upsampled = F.interpolate(gradcam[:, None], size=guided_gradient.shape[2:], mode="bilinear", align_corners=False)
    return reduce_channels(guided_gradient * upsampled, reduction=reduction)
