"""The Densely Connected Attention Model (eq. 5–14), which has no reference implementation.

Oracles: central finite differences of GT in float64 (G_n), the definition of a softmax (sums to 1),
the engine's batch against a loop over single images, the two GT regimes pinned by their
weights, and an independent straightforward re-implementation (forward hooks on torchvision's stock
VGG16, ``torch.autograd.grad`` per image, NumPy for eq. 8–14).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from analysis.cnn.dense import (
    LAYER_MAP_NAMES,
    channel_weights,
    dense_attention_maps,
    gestalt_sensitivities,
    gestalt_total,
    spatial_weights,
)
from analysis.cnn.engine import MAP_NAMES, MapParameters, compute_maps
from analysis.cnn.model import BLOCK_OUTPUTS
from analysis.cnn.store import resize_bilinear
from tests.analysis.cnn._helpers import assert_no_hooks, double_copy


def _prefixed(name: str) -> Callable[[str], str]:
    """An ``assert_close`` message naming the map."""
    return lambda message: f"{name}: {message}"


def _sensitivities(model, x, gt):
    with torch.enable_grad():
        _, blocks = model.forward_with_blocks(x.clone().requires_grad_())
        return blocks, gestalt_sensitivities(blocks, gt=gt)


@pytest.mark.parametrize("gt", ["mean", "sum"])
def test_sensitivities_match_finite_differences_float64(vgg, gt):
    # torchvision initialises conv biases to 0, so dead regions sit exactly on ReLU kinks and make
    # max-pool windows of exact zeros tie, where a central difference is not the gradient: random
    # biases put every unit off its kink.
    model = double_copy(vgg)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for layer in model.vgg.features:
            if isinstance(layer, torch.nn.Conv2d):
                assert layer.bias is not None  # VGG16's convolutions have biases
                layer.bias.copy_(0.05 * torch.randn(layer.bias.shape, generator=generator, dtype=torch.float64))
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    blocks, sensitivities = _sensitivities(model, x, gt)
    rng = np.random.default_rng(0)
    step = 1e-6
    for name, index in BLOCK_OUTPUTS.items():
        f = blocks[name].detach()
        rest = model.vgg.features[index + 1 : BLOCK_OUTPUTS["relu5_3"] + 1]  # f_n → relu5_3
        # Probe random active units and the most sensitive active ones. A unit at exactly 0 is on a
        # kink: a max-pool window of zeros ties, and autograd routes its gradient to the first one.
        flat_g = sensitivities[name].flatten()
        is_active = f.flatten() > 1e-3
        active = torch.nonzero(is_active)[:, 0].numpy()
        most_sensitive = torch.where(is_active, flat_g.abs(), 0).topk(3).indices.numpy()
        probes = [*rng.choice(active, size=3, replace=False), *most_sensitive]
        for probe in probes:
            delta = torch.zeros(f.numel(), dtype=torch.float64)
            delta[probe] = step
            delta = delta.view_as(f)
            with torch.no_grad():
                up = gestalt_total(rest(f + delta), gt=gt)
                down = gestalt_total(rest(f - delta), gt=gt)
            numeric = float((up - down) / (2 * step))
            assert numeric == pytest.approx(float(flat_g[probe]), rel=1e-6, abs=1e-12), (name, int(probe))
    # G_5 of the mean is 1 / (h·w·C) everywhere.
    if gt == "mean":
        torch.testing.assert_close(
            sensitivities["relu5_3"], torch.full_like(sensitivities["relu5_3"], 1 / blocks["relu5_3"].numel())
        )


def test_softmax_weights_sum_to_one(vgg, images):
    _, sensitivities = _sensitivities(vgg, images, "sum")
    for g in sensitivities.values():
        spatial, channel = spatial_weights(g), channel_weights(g)
        assert spatial.shape == (2, *g.shape[2:]) and channel.shape == (2, g.shape[1])
        torch.testing.assert_close(spatial.sum(dim=(1, 2)), torch.ones(2), rtol=0, atol=1e-5)
        torch.testing.assert_close(channel.sum(dim=1), torch.ones(2), rtol=0, atol=1e-5)
        assert (spatial >= 0).all() and (channel >= 0).all()


def test_gt_mean_gives_near_uniform_weights_and_sum_does_not(vgg, images):
    """Pins SPEC §2: under ``mean`` every weight is within 2 % of uniform at 64 px input (the
    deviation shrinks with input size); under ``sum`` layers 1–4 are far from uniform. Layer 5 is
    exactly uniform under both (G_5 is constant)."""
    for gt in ("mean", "sum"):
        _, sensitivities = _sensitivities(vgg, images, gt)
        for name, g in sensitivities.items():
            spatial, channel = spatial_weights(g), channel_weights(g)
            spatial_dev = float((spatial * spatial[0].numel() - 1).abs().max())
            channel_dev = float((channel * channel.shape[1] - 1).abs().max())
            if name == "relu5_3":
                assert spatial_dev < 1e-5 and channel_dev < 1e-5
            elif gt == "mean":
                assert spatial_dev < 0.02 and channel_dev < 0.02, (name, spatial_dev, channel_dev)
            else:
                assert spatial_dev > 10 and channel_dev > 10, (name, spatial_dev, channel_dev)


def test_batched_maps_equal_a_loop_over_images(vgg, cam_weights):
    x = torch.randn(3, 3, 48, 48, generator=torch.Generator().manual_seed(4))
    batched = compute_maps(vgg, x, cam_weights=cam_weights, parameters=MapParameters(gt="sum"))
    for row in range(3):
        single = compute_maps(vgg, x[row : row + 1], cam_weights=cam_weights, parameters=MapParameters(gt="sum"))
        assert int(single.targets[0]) == int(batched.targets[row])
        for name in MAP_NAMES:
            expected = single.maps[name][0]
            scale = float(expected.abs().max())
            torch.testing.assert_close(
                batched.maps[name][row], expected, rtol=1e-4, atol=1e-5 * scale, msg=_prefixed(name)
            )


def _softmax(values: np.ndarray) -> np.ndarray:
    e = np.exp(values - values.max())
    return e / e.sum()


def _minmax(m: np.ndarray) -> np.ndarray:
    return (m - m.min()) / (m.max() - m.min())


def _reference_dense_maps(stock_vgg, image: torch.Tensor, gt: str) -> dict[str, np.ndarray]:
    """Straightforward per-image dense model: hooks + autograd.grad, then NumPy loops over eq. 8–14."""
    captured: list[torch.Tensor] = []
    handles = [
        stock_vgg.features[index].register_forward_hook(lambda _m, _i, out: captured.append(out))
        for index in BLOCK_OUTPUTS.values()
    ]
    try:
        x = image[None].clone().requires_grad_()
        stock_vgg(x)
    finally:
        for handle in handles:
            handle.remove()
    last = captured[-1]
    total = last.mean() if gt == "mean" else last.sum()
    gradients = torch.autograd.grad(total, captured)
    layer_maps = []
    for feature, gradient in zip(captured, gradients):
        f, g = feature[0].detach().double().numpy(), gradient[0].double().numpy()  # (C, h, w)
        w_spatial = _softmax(g.sum(axis=0).ravel()).reshape(g.shape[1:])
        w_channel = _softmax(g.sum(axis=(1, 2)))
        f_sca = np.empty_like(f)
        for c in range(f.shape[0]):
            f_sca[c] = w_channel[c] * f[c] + w_spatial * f[c]
        layer_maps.append(f_sca.mean(axis=0))
    maps = {f"dense_conv{n + 1}": m for n, m in enumerate(layer_maps)}
    for lowest in (4, 3, 2, 1):
        shape = layer_maps[lowest - 1].shape
        name = "dense_conv" + "".join(str(n) for n in range(5, lowest - 1, -1))
        maps[name] = sum(resize_bilinear(_minmax(layer_maps[n - 1]), shape) for n in range(lowest, 6))
    return maps


@pytest.mark.parametrize("gt", ["mean", "sum"])
def test_engine_agrees_with_independent_hook_implementation(vgg, stock_vgg, images, cam_weights, gt):
    ours = compute_maps(vgg, images, cam_weights=cam_weights, parameters=MapParameters(gt=gt))
    for row in range(images.shape[0]):
        reference = _reference_dense_maps(stock_vgg, images[row], gt)
        assert set(reference) == {n for n in MAP_NAMES if n.startswith("dense_")}
        for name, expected in reference.items():
            np.testing.assert_allclose(
                ours.maps[name][row].numpy(), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max(), err_msg=name
            )
    assert_no_hooks(stock_vgg)


def test_raw_layer_norm_sums_unnormalised_maps(vgg, images):
    blocks, sensitivities = _sensitivities(vgg, images, "mean")
    features = {k: v.detach() for k, v in blocks.items()}
    raw = dense_attention_maps(features, sensitivities, layer_norm="raw")
    expected = (
        raw["dense_conv4"]
        + torch.nn.functional.interpolate(
            raw["dense_conv5"][:, None], size=raw["dense_conv4"].shape[1:], mode="bilinear", align_corners=False
        )[:, 0]
    )
    torch.testing.assert_close(raw["dense_conv54"], expected)
    assert set(raw) == set(LAYER_MAP_NAMES.values()) | {
        "dense_conv54",
        "dense_conv543",
        "dense_conv5432",
        "dense_conv54321",
    }
    with pytest.raises(ValueError, match="layer_norm"):
        dense_attention_maps(features, sensitivities, layer_norm="zscore")
