"""CAM (eq. 1) and its ridge regression.

Oracles: (1) the known identity on a network with a GAP + linear head: the Grad-CAM weights are
the head weights divided by h·w, so Grad-CAM = ReLU(CAM) / (h·w) and the normalised maps agree;
(2) synthetic scores generated from known weights, which the regression must recover.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from analysis.cnn.cam import class_activation_map, fit_cam_weights, global_average_pool
from analysis.cnn.dense import minmax_per_image
from analysis.cnn.gradcam import grad_cam


class GapNet(nn.Module):
    """conv → ReLU → conv → ReLU → GAP → linear: the architecture CAM was defined for."""

    def __init__(self, channels: int = 6, classes: int = 5) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, channels, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Linear(channels, classes)

    def forward(self, x):
        features = self.body(x)
        return self.head(global_average_pool(features)), features


@pytest.fixture()
def gap_net() -> GapNet:
    torch.manual_seed(3)
    return GapNet().eval()


def test_cam_equals_normalised_gradcam_on_a_gap_network(gap_net):
    x = torch.randn(4, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1, 4, 2])
    scores, features = gap_net(x)
    selected = scores.gather(1, targets[:, None]).sum()
    (gradients,) = torch.autograd.grad(selected, features)
    gradcam = grad_cam(features, gradients)
    cam = class_activation_map(features.detach(), gap_net.head.weight.detach(), targets)
    # Exact identity before normalisation: ∂y_c/∂f_k(x, y) = w_k^c / (h·w).
    torch.testing.assert_close(gradcam, torch.relu(cam) / (9 * 11), rtol=1e-5, atol=1e-8)
    assert (cam < 0).any(), "the identity should be tested where the ReLU matters"
    torch.testing.assert_close(minmax_per_image(gradcam), minmax_per_image(torch.relu(cam)), rtol=1e-5, atol=1e-6)


def test_fitted_cam_on_a_gap_network_recovers_the_head_and_equals_gradcam(gap_net):
    """Scores of a GAP network are exactly linear in F^k: ordinary least squares recovers the head."""
    x = torch.randn(40, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        scores, features = gap_net(x)
    fit = fit_cam_weights(global_average_pool(features).numpy(), scores.numpy(), ridge_alpha=0.0)
    np.testing.assert_allclose(fit.weights, gap_net.head.weight.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fit.bias, gap_net.head.bias.detach().numpy(), rtol=1e-4, atol=1e-5)
    targets = torch.tensor([2] * 40)
    cam = class_activation_map(features, torch.from_numpy(fit.weights).float(), targets)
    reference = class_activation_map(features, gap_net.head.weight.detach(), targets)
    torch.testing.assert_close(cam, reference, rtol=1e-4, atol=1e-5)


def test_ridge_recovers_known_weights_at_vgg16_size():
    """K = 512 relu5_3 channels, C = 1000 classes, N = 1500 images, scores = F Wᵀ + b exactly."""
    rng = np.random.default_rng(0)
    features = np.abs(rng.normal(size=(1500, 512)))  # GAP of post-ReLU maps is >= 0
    weights = rng.normal(size=(1000, 512))
    bias = rng.normal(size=1000)
    scores = features @ weights.T + bias
    fit = fit_cam_weights(features, scores, ridge_alpha=1e-9)
    np.testing.assert_allclose(fit.weights, weights, atol=1e-5)
    np.testing.assert_allclose(fit.bias, bias, atol=1e-4)
    # The strength is relative to the feature scatter: rescaling the features rescales the
    # weights exactly and leaves the fitted scores unchanged.
    shrunk = fit_cam_weights(features, scores, ridge_alpha=0.5)
    rescaled = fit_cam_weights(features * 10, scores, ridge_alpha=0.5)
    np.testing.assert_allclose(rescaled.weights * 10, shrunk.weights, rtol=1e-8)
    assert rescaled.ridge_lambda == pytest.approx(100 * shrunk.ridge_lambda)
    # Ridge shrinks: a strong penalty gives smaller weights than the exact fit.
    assert np.linalg.norm(shrunk.weights) < 0.9 * np.linalg.norm(weights)


def test_ridge_matches_closed_form_when_underdetermined():
    """N = 200 < K = 512 (the paper's set): the ridge solution (FcᵀFc + λI)⁻¹Fcᵀ Sc by hand."""
    rng = np.random.default_rng(1)
    features, scores = rng.random((200, 512)), rng.normal(size=(200, 7))
    fit = fit_cam_weights(features, scores, ridge_alpha=1e-2)
    centred = features - features.mean(0)
    lam = 1e-2 * np.trace(centred.T @ centred) / 512
    expected = np.linalg.solve(centred.T @ centred + lam * np.eye(512), centred.T @ (scores - scores.mean(0))).T
    np.testing.assert_allclose(fit.weights, expected, rtol=1e-6, atol=1e-10)
    assert fit.ridge_lambda == pytest.approx(lam)


@pytest.mark.parametrize(
    ("features", "scores", "alpha", "message"),
    [
        (np.ones((3, 4)), np.ones((2, 5)), 0.1, "same N"),
        (np.ones((1, 4)), np.ones((1, 5)), 0.1, "at least 2"),
        (np.ones((3, 4)), np.ones((3, 5)), -1.0, "ridge_alpha"),
    ],
)
def test_fit_rejects_bad_input(features, scores, alpha, message):
    with pytest.raises(ValueError, match=message):
        fit_cam_weights(features, scores, ridge_alpha=alpha)
