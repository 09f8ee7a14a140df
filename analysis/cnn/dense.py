"""The Densely Connected Attention Model (paper §3.2, eq. 5–14), read next to the paper.

Notation: ``f_n`` is the output of conv block n (post-ReLU: relu1_2 … relu5_3, SPEC §2), tensors
``(B, C, h, w)`` (torch layout: channels before space; the paper writes ``W × H × C``).

- Gestalt Total, eq. 6: ``GT = mean(f_5)`` (``gt="mean"``, the equation as printed) or ``sum(f_5)``
  (``gt="sum"``, the authors' earlier poster). Softmax is not scale-invariant: under ``mean`` the
  sensitivities are divided by ``h·w·C`` and every softmax below is almost exactly uniform, so the
  model reduces to channel-mean activations; under ``sum`` the weights of layers 1–4 are not uniform.
  (For layer 5 itself ``G_5`` is constant under both, so its weights are exactly uniform.)
- Sensitivity, eq. 7: ``G_n = ∂GT/∂f_n`` (computed by the caller with autograd).
- Spatial weights, eq. 8–9: ``W_n^s = softmax_{x,y}(Σ_c G_n)``.
- Channel weights, eq. 11: ``W_n^c = softmax_c(Σ_{x,y} G_n)``.
- SCA features, eq. 10 + 12. Eq. 12 literally reads ``f^SCA = A^c·f + A^s⊙f`` with
  ``A^c = W^c·f`` (eq. 10) and ``A^s = W^s⊙f`` (eq. 5), which would square the features. We follow
  the default interpretation of SPEC §2: ``f^SCA = W^c·f + W^s⊙f``, i.e.
  ``f^SCA(c, x, y) = (W^c(c) + W^s(x, y)) · f(c, x, y)``.
- Per-layer map: the channel average of ``f_n^SCA`` (``dense_conv<n>``).
- Dense combinations, eq. 13–14: ``A_i = Σ_{n=i..5} UP_i(map_n)``, each per-layer map upsampled
  directly to layer i's resolution (bilinear, ``align_corners=False``) and, by default, min-max
  normalised to [0, 1] per image before the sum (``layer_norm="minmax"``; ``"raw"`` sums them as
  they are). Names ``dense_conv54``, ``dense_conv543``, ``dense_conv5432``, ``dense_conv54321``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.nn import functional as F

from analysis._checks import check_choice

__all__ = [
    "GT_REDUCTIONS",
    "LAYER_NORMS",
    "LAYER_MAP_NAMES",
    "COMBINATION_NAMES",
    "gestalt_total",
    "gestalt_sensitivities",
    "spatial_weights",
    "channel_weights",
    "sca_features",
    "dense_attention_maps",
    "minmax_per_image",
]

GT_REDUCTIONS = ("mean", "sum")
LAYER_NORMS = ("minmax", "raw")
#: Block output (first to last) → name of its per-layer map.
LAYER_MAP_NAMES: dict[str, str] = {
    "relu1_2": "dense_conv1",
    "relu2_2": "dense_conv2",
    "relu3_3": "dense_conv3",
    "relu4_3": "dense_conv4",
    "relu5_3": "dense_conv5",
}
COMBINATION_NAMES = ("dense_conv54", "dense_conv543", "dense_conv5432", "dense_conv54321")


def gestalt_total(last_features: torch.Tensor, *, gt: str = "mean") -> torch.Tensor:
    """Gestalt Total of each image, eq. 6.

    Parameters
    ----------
    last_features : torch.Tensor, shape (B, C, h, w)
        ``A_last``: the last block output (relu5_3).
    gt : {"mean", "sum"}
        ``mean`` divides the sum by ``h·w·C`` as eq. 6 prints; ``sum`` is the poster's version.

    Returns
    -------
    torch.Tensor, shape (B,)
    """
    check_choice("gt", gt, GT_REDUCTIONS)
    reduce = torch.mean if gt == "mean" else torch.sum
    return reduce(last_features, dim=(1, 2, 3))


def gestalt_sensitivities(features: dict[str, torch.Tensor], *, gt: str = "mean") -> dict[str, torch.Tensor]:
    """``G_n = ∂GT/∂f_n`` for every block output at once, eq. 7 (one backward pass).

    Parameters
    ----------
    features : dict[str, torch.Tensor]
        ``relu1_2`` … ``relu5_3`` → ``f_n``, shape ``(B, C_n, h_n, w_n)``, attached to the autograd
        graph of one forward pass (the last entry is ``A_last``). The graph is retained.
    gt : {"mean", "sum"}
        See :func:`gestalt_total`.

    Returns
    -------
    dict[str, torch.Tensor]
        Same keys and shapes. Images are independent, so the gradient of the batch sum of GT gives
        each image its own ``G_n``.
    """
    names = list(features)
    total = gestalt_total(features[names[-1]], gt=gt).sum()
    gradients = torch.autograd.grad(total, [features[name] for name in names], retain_graph=True)
    return dict(zip(names, gradients))


def spatial_weights(sensitivity: torch.Tensor) -> torch.Tensor:
    """``W_n^s``, eq. 8–9: softmax over all positions of the channel-summed sensitivity.

    Parameters
    ----------
    sensitivity : torch.Tensor, shape (B, C, h, w)
        ``G_n``.

    Returns
    -------
    torch.Tensor, shape (B, h, w); each image's weights sum to 1.
    """
    unnormalised = sensitivity.sum(dim=1)  # eq. 8
    batch, height, width = unnormalised.shape
    return torch.softmax(unnormalised.reshape(batch, -1), dim=1).reshape(batch, height, width)  # eq. 9


def channel_weights(sensitivity: torch.Tensor) -> torch.Tensor:
    """``W_n^c``, eq. 11: softmax over channels of the spatially summed sensitivity.

    Parameters
    ----------
    sensitivity : torch.Tensor, shape (B, C, h, w)
        ``G_n``.

    Returns
    -------
    torch.Tensor, shape (B, C); each image's weights sum to 1.
    """
    return torch.softmax(sensitivity.sum(dim=(2, 3)), dim=1)


def sca_features(features: torch.Tensor, spatial: torch.Tensor, channel: torch.Tensor) -> torch.Tensor:
    """``f_n^SCA = W_n^c·f_n + W_n^s⊙f_n`` (eq. 10 + 12 as interpreted in the module docstring).

    Parameters
    ----------
    features : torch.Tensor, shape (B, C, h, w)
    spatial : torch.Tensor, shape (B, h, w)
    channel : torch.Tensor, shape (B, C)

    Returns
    -------
    torch.Tensor, shape (B, C, h, w)
    """
    return (channel[:, :, None, None] + spatial[:, None, :, :]) * features


def minmax_per_image(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each ``(h, w)`` map of a ``(B, h, w)`` batch to [0, 1] (constant → 0)."""
    flat = maps.reshape(maps.shape[0], -1)
    low = flat.amin(dim=1, keepdim=True)
    span = flat.amax(dim=1, keepdim=True) - low
    # A constant map carries no spatial information: map it to 0 rather than divide by 0.
    scaled = torch.where(span > 0, (flat - low) / torch.where(span > 0, span, 1), 0)
    return scaled.reshape(maps.shape)


def _sum(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """``sum(tensors)`` in the same order, typed: the first tensor plus the others, left to right."""
    total: torch.Tensor | None = None
    for tensor in tensors:
        total = tensor if total is None else total + tensor
    if total is None:
        raise ValueError("nothing to sum")
    return total


def dense_attention_maps(
    features: dict[str, torch.Tensor], sensitivities: dict[str, torch.Tensor], *, layer_norm: str = "minmax"
) -> dict[str, torch.Tensor]:
    """Per-layer maps and dense combinations (eq. 5–14) from block outputs and their sensitivities.

    Parameters
    ----------
    features : dict[str, torch.Tensor]
        ``relu1_2`` … ``relu5_3`` → ``f_n``, shape ``(B, C_n, h_n, w_n)``.
    sensitivities : dict[str, torch.Tensor]
        Same keys → ``G_n = ∂GT/∂f_n``, same shapes.
    layer_norm : {"minmax", "raw"}
        Min-max normalise each per-layer map per image before summing (default) or not.

    Returns
    -------
    dict[str, torch.Tensor]
        ``dense_conv1`` … ``dense_conv5``: ``(B, h_n, w_n)`` channel-averaged SCA features (not
        normalised); ``dense_conv54`` … ``dense_conv54321``: ``(B, h_i, w_i)`` at the resolution
        of their lowest layer i.
    """
    check_choice("layer_norm", layer_norm, LAYER_NORMS)
    missing = set(LAYER_MAP_NAMES) - set(features) | set(LAYER_MAP_NAMES) - set(sensitivities)
    if missing:
        raise ValueError(f"features and sensitivities need the block outputs {sorted(missing)}")
    maps: dict[str, torch.Tensor] = {}
    for block, name in LAYER_MAP_NAMES.items():
        f, g = features[block], sensitivities[block]
        maps[name] = sca_features(f, spatial_weights(g), channel_weights(g)).mean(dim=1)
    prepared = {name: minmax_per_image(m) if layer_norm == "minmax" else m for name, m in maps.items()}
    layer_names = list(LAYER_MAP_NAMES.values())  # conv1 … conv5
    for combination in COMBINATION_NAMES:
        lowest = int(combination[-1]) - 1  # "dense_conv543" sums layers 5..3 at layer 3's size
        size = prepared[layer_names[lowest]].shape[1:]
        maps[combination] = _sum(
            F.interpolate(prepared[name][:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
            for name in layer_names[lowest:]
        )
    return maps
