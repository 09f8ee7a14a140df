"""Grad-CAM, Guided Backprop and Guided Grad-CAM from the shared passes against reference libraries.

Oracles: captum's ``LayerGradCam(relu_attributions=True)``, ``GuidedBackprop`` and ``GuidedGradCam``
and pytorch-grad-cam's ``GradCAM`` on torchvision's stock VGG16 with the same weights, the same
input and different targets inside the batch.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from analysis.cnn.engine import compute_maps
from analysis.cnn.guided_backprop import reduce_channels
from analysis.cnn.store import resize_bilinear
from tests.analysis.cnn._helpers import TARGETS, assert_no_hooks

captum_attr = pytest.importorskip("captum.attr")


@pytest.fixture(scope="module")
def ours(vgg, images, cam_weights):
    return compute_maps(vgg, images, cam_weights=cam_weights, targets=torch.tensor(TARGETS))


def _captum(method, images, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum warns that it sets (and removes) ReLU hooks
        return method.attribute(images.clone().requires_grad_(), target=list(TARGETS), **options).detach()


def test_gradcam_equals_captum_layer_gradcam(ours, stock_vgg, images):
    reference = _captum(captum_attr.LayerGradCam(stock_vgg, stock_vgg.features[29]), images, relu_attributions=True)
    assert reference.shape == (2, 1, 4, 4)
    torch.testing.assert_close(ours.maps["gradcam"], reference[:, 0], rtol=1e-5, atol=1e-9)
    # The two images really have different targets, and the targets matter.
    assert not torch.allclose(ours.maps["gradcam"][0], ours.maps["gradcam"][1])
    assert_no_hooks(stock_vgg)


def test_guided_backprop_equals_captum(ours, stock_vgg, images):
    reference = _captum(captum_attr.GuidedBackprop(stock_vgg), images)
    torch.testing.assert_close(ours.maps["guided_backprop"], reduce_channels(reference), rtol=1e-5, atol=1e-9)
    assert_no_hooks(stock_vgg)


def test_guided_gradcam_equals_captum(ours, stock_vgg, images):
    reference = _captum(
        captum_attr.GuidedGradCam(stock_vgg, stock_vgg.features[29]), images, interpolate_mode="bilinear"
    )
    torch.testing.assert_close(ours.maps["guided_gradcam"], reduce_channels(reference), rtol=1e-5, atol=1e-12)


def test_gradcam_pipeline_equals_pytorch_grad_cam(ours, stock_vgg, images):
    """Grad-CAM → ReLU → bilinear upsampling to the input → min-max, as pytorch-grad-cam does.

    pytorch-grad-cam min-max normalises with ``x / (1e-7 + max)`` twice (before and after its
    cv2 INTER_LINEAR resize); we normalise once, exactly, after the store's numpy upsampling.
    Both are affine rescalings of the same upsampled map, so they agree to ~1e-7 relative.
    """
    pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with pytorch_grad_cam.GradCAM(model=stock_vgg, target_layers=[stock_vgg.features[29]]) as method:
        reference = method(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in TARGETS])
    assert reference.shape == (2, 64, 64)
    for row in range(2):
        upsampled = resize_bilinear(ours.maps["gradcam"][row].numpy(), (64, 64))
        assert upsampled.max() > upsampled.min() + 1e-4  # a non-trivial map
        normalised = (upsampled - upsampled.min()) / (upsampled.max() - upsampled.min())
        np.testing.assert_allclose(normalised, reference[row], atol=2e-6)


def test_top1_target_is_the_default(vgg, images, cam_weights):
    """Without explicit targets, each image's target is the argmax of its scores (eq. 2)."""
    result = compute_maps(vgg, images, cam_weights=cam_weights)
    with torch.no_grad():
        expected = vgg(images).argmax(dim=1)
    torch.testing.assert_close(result.targets, expected)
    torch.testing.assert_close(result.target_scores, vgg(images).detach().amax(dim=1))
