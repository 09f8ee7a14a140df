"""Class Activation Maps on stock VGG16 (Zhou et al. 2016; paper §3.1, eq. 1).

VGG16 has no GAP + linear head, so (paper §3.1, SPEC §2 "CAM on VGG16") the class weights
``w_k^c`` come from a linear regression of the class scores ``S_c`` on the global average pool
``F^k`` of relu5_3 over a fitting image set, and ``M_c(x, y) = Σ_k w_k^c f_k(x, y)``.

``F^k`` is the spatial *mean* (the paper writes a sum): the two differ by the factor ``h·w``,
which only rescales ``w``, and the mean keeps the fit valid when native-size inputs give
different ``h, w`` per image.

Regularisation: ridge least squares with an unpenalised intercept,
``min_W ||S_c - 1 b^T - F_c W^T||² + λ ||W||²`` with ``F_c``, ``S_c`` centred over the fitting set and
``λ = ridge_alpha · trace(F_cᵀ F_c) / K`` (``ridge_alpha`` times the mean eigenvalue of the
feature scatter, so ``ridge_alpha`` does not depend on the activations' scale). A fitting set with
fewer images than channels (200 < 512) makes the plain regression underdetermined; the ridge term
picks the smallest-norm weights among near-equivalent fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["CamWeights", "fit_cam_weights", "class_activation_map", "global_average_pool", "DEFAULT_RIDGE_ALPHA"]

DEFAULT_RIDGE_ALPHA = 1e-2


@dataclass(frozen=True)
class CamWeights:
    """Fitted CAM regression (eq. 1).

    Attributes
    ----------
    weights : np.ndarray, shape (C, K), float64
        ``w_k^c`` for C classes and K channels of the target layer.
    bias : np.ndarray, shape (C,), float64
        Intercept of each class (not part of the map).
    ridge_alpha : float
        Relative ridge strength used.
    ridge_lambda : float
        Absolute ridge penalty ``λ`` that resulted.
    """

    weights: np.ndarray
    bias: np.ndarray
    ridge_alpha: float
    ridge_lambda: float


def global_average_pool(activations: torch.Tensor) -> torch.Tensor:
    """``F^k``: spatial mean of each channel; ``(B, K, h, w)`` → ``(B, K)``."""
    return activations.mean(dim=(2, 3))


def fit_cam_weights(
    features: np.ndarray, scores: np.ndarray, *, ridge_alpha: float = DEFAULT_RIDGE_ALPHA
) -> CamWeights:
    """Ridge regression of class scores on GAP features (see the module docstring).

    Parameters
    ----------
    features : np.ndarray, shape (N, K)
        ``F^k`` of each fitting image (:func:`global_average_pool` of relu5_3).
    scores : np.ndarray, shape (N, C)
        Class scores (logits) of the same images.
    ridge_alpha : float
        Relative ridge strength, >= 0 (0 = ordinary least squares, needs N > K).

    Returns
    -------
    CamWeights
    """
    features = np.asarray(features, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if features.ndim != 2 or scores.ndim != 2 or features.shape[0] != scores.shape[0]:
        raise ValueError(
            f"features must be (N, K) and scores (N, C) with the same N; got {features.shape} and {scores.shape}"
        )
    if features.shape[0] < 2:
        raise ValueError(f"the CAM fit needs at least 2 fitting images; got {features.shape[0]}")
    if not (np.isfinite(ridge_alpha) and ridge_alpha >= 0):
        raise ValueError(f"ridge_alpha must be a finite number >= 0; got {ridge_alpha!r}")
    feature_mean = features.mean(axis=0)
    score_mean = scores.mean(axis=0)
    centred = features - feature_mean
    scatter = centred.T @ centred
    ridge_lambda = ridge_alpha * np.trace(scatter) / scatter.shape[0]
    # lstsq instead of solve: with ridge_alpha = 0 and collinear (e.g. dead) channels the
    # scatter is singular, and lstsq then returns the minimum-norm solution.
    weights_t = np.linalg.lstsq(
        scatter + ridge_lambda * np.eye(scatter.shape[0]), centred.T @ (scores - score_mean), rcond=None
    )[0]
    weights = weights_t.T
    bias = score_mean - weights @ feature_mean
    return CamWeights(weights=weights, bias=bias, ridge_alpha=float(ridge_alpha), ridge_lambda=float(ridge_lambda))


def class_activation_map(activations: torch.Tensor, class_weights: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """CAM of each image for its target class, eq. 1: ``M_c(x, y) = Σ_k w_k^c f_k(x, y)``.

    Parameters
    ----------
    activations : torch.Tensor, shape (B, K, h, w)
        ``f``: target-layer activations (relu5_3).
    class_weights : torch.Tensor, shape (C, K)
        ``w_k^c`` (:attr:`CamWeights.weights`, or a GAP network's linear head).
    targets : torch.Tensor, shape (B,), int64
        Target class of each image.

    Returns
    -------
    torch.Tensor, shape (B, h, w)
        Signed, un-normalised map (eq. 1 has no ReLU).
    """
    if activations.ndim != 4 or class_weights.ndim != 2 or class_weights.shape[1] != activations.shape[1]:
        raise ValueError(
            "activations must be (B, K, h, w) and class_weights (C, K) with the same K; got "
            f"{tuple(activations.shape)} and {tuple(class_weights.shape)}"
        )
    selected = class_weights.to(activations)[targets]  # (B, K)
    return torch.einsum("bk,bkhw->bhw", selected, activations)
