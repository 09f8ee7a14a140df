"""The prepared VGG16, its input geometry, and the engine's temporary model changes.

Oracles: torchvision's own VGG16 (same weights) for the forward pass; torch's ReLU backward and
captum's guided rule ``relu(grad * (x > 0))`` for the switchable ReLU; hand-built images for
the geometry; captum's test_hook_removal check for the state left behind after an error.
"""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torchvision

from analysis.cnn import engine as engine_module
from analysis.cnn.engine import MAP_NAMES, MapParameters, compute_maps
from analysis.cnn.guided_backprop import SwitchableReLU, guided_relu_backward, reduce_channels
from analysis.cnn.model import BLOCK_OUTPUTS, load_vgg16, preprocess
from tests.analysis.cnn._helpers import assert_no_hooks


def test_every_relu_is_switchable_and_out_of_place(vgg):
    relus = [m for m in vgg.modules() if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 15  # 13 in features, 2 in the classifier
    assert all(isinstance(m, SwitchableReLU) and not m.inplace and not m.guided for m in relus)
    assert not any(p.requires_grad for p in vgg.parameters())
    assert not vgg.training


def test_forward_equals_stock_vgg_and_blocks_have_the_documented_shapes(vgg, stock_vgg, images):
    scores, blocks = vgg.forward_with_blocks(images)
    torch.testing.assert_close(scores, stock_vgg(images), rtol=1e-5, atol=1e-6)
    expected = {
        "relu1_2": (64, 64),
        "relu2_2": (128, 32),
        "relu3_3": (256, 16),
        "relu4_3": (512, 8),
        "relu5_3": (512, 4),
    }
    for name, (channels, side) in expected.items():
        assert blocks[name].shape == (2, channels, side, side)
    # The indices name the same tensors in the stock model.
    h = images
    for index, layer in enumerate(stock_vgg.features[:30]):
        h = layer(h)
        if index in BLOCK_OUTPUTS.values():
            name = next(n for n, i in BLOCK_OUTPUTS.items() if i == index)
            torch.testing.assert_close(blocks[name], h, rtol=1e-5, atol=1e-6)


def test_untrained_weights_are_exactly_torchvisions_seeded_init(vgg):
    torch.manual_seed(0)
    reference = torchvision.models.vgg16(weights=None)
    for name, value in reference.state_dict().items():
        assert torch.equal(vgg.vgg.state_dict()[name], value), name
    assert vgg.weights.untrained and vgg.weights.label == "untrained" and vgg.weights.seed == 0


def test_switchable_relu_backward_ordinary_and_guided():
    x = torch.tensor([-1.0, 0.0, 2.0, 3.0], requires_grad=True)
    relu = SwitchableReLU()
    grad_out = torch.tensor([5.0, 5.0, -7.0, 4.0])
    (ordinary,) = torch.autograd.grad(relu(x), x, grad_out)
    (reference,) = torch.autograd.grad(torch.relu(x), x, grad_out)
    torch.testing.assert_close(ordinary, reference)  # [0, 0, -7, 4]
    wrapper = torch.nn.Sequential(relu)
    with guided_relu_backward(wrapper):
        (guided,) = torch.autograd.grad(relu(x), x, grad_out)
    torch.testing.assert_close(guided, torch.tensor([0.0, 0.0, 0.0, 4.0]))
    assert not relu.guided
    with (
        pytest.raises(ValueError, match="no SwitchableReLU"),
        guided_relu_backward(torch.nn.Sequential(torch.nn.ReLU())),
    ):
        pass


def test_flags_and_hooks_are_restored_when_a_pass_fails(vgg, images, cam_weights, monkeypatch):
    """The guided pass raises: no ReLU stays guided and no hook stays registered."""
    real_grad = torch.autograd.grad
    calls = []

    def failing_grad(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the guided pass
            assert all(m.guided for m in vgg.modules() if isinstance(m, SwitchableReLU))
            raise RuntimeError("injected failure in the guided backward pass")
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", failing_grad)
    with pytest.raises(RuntimeError, match="injected"):
        compute_maps(vgg, images, cam_weights=cam_weights)
    monkeypatch.undo()
    assert len(calls) == 3
    assert not any(m.guided for m in vgg.modules() if isinstance(m, SwitchableReLU))
    assert_no_hooks(vgg)
    result = compute_maps(vgg, images[:1], cam_weights=cam_weights)  # still usable
    assert set(result.maps) == set(MAP_NAMES)


def test_engine_uses_one_forward_and_three_backward_passes(vgg, images, cam_weights, monkeypatch):
    forwards, grads = [], []
    real_forward = type(vgg).forward_with_blocks
    real_grad = torch.autograd.grad

    def counted_forward(self, x):
        forwards.append(1)
        return real_forward(self, x)

    def counted_grad(*args, **kwargs):
        grads.append(1)
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(type(vgg), "forward_with_blocks", counted_forward)
    monkeypatch.setattr(torch.autograd, "grad", counted_grad)
    result = compute_maps(vgg, images, cam_weights=cam_weights)
    assert (len(forwards), len(grads)) == (1, 3)
    shapes = {name: tuple(m.shape) for name, m in result.maps.items()}
    assert shapes["gradcam"] == shapes["cam"] == shapes["dense_conv5"] == (2, 4, 4)
    assert shapes["guided_backprop"] == shapes["dense_conv54321"] == (2, 64, 64)
    assert shapes["dense_conv54"] == (2, 8, 8)
    assert all(m.dtype == torch.float32 and torch.isfinite(m).all() for m in result.maps.values())
    assert tuple(result.maps) == engine_module.MAP_NAMES


def test_sum_abs_reduction():
    gradient = torch.tensor([[[[1.0]], [[-3.0]], [[2.0]]]])
    assert float(reduce_channels(gradient)) == 3.0
    assert float(reduce_channels(gradient, reduction="sum_abs")) == 6.0
    with pytest.raises(ValueError, match="reduction"):
        MapParameters(guided_reduction="l2")


def test_preprocess_resizes_the_whole_image_without_cropping():
    """A 40×100 image whose left half is black and right half white: after resizing to 32×32 the
    left half of the input is black, the right half white (a centre crop would lose the edges)."""
    image = np.zeros((40, 100, 3), np.uint8)
    image[:, 50:] = 255
    x = preprocess(image, input_size=32)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    mean = torch.tensor([0.485, 0.456, 0.406])
    std = torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(x[:, :, 0], ((0 - mean) / std)[:, None].expand(3, 32))
    torch.testing.assert_close(x[:, :, -1], ((1 - mean) / std)[:, None].expand(3, 32))
    assert preprocess(image, input_size=None).shape == (3, 40, 100)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(image.astype(np.float32))


def test_imagenet_weights_without_cache_or_network_fail_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(FileNotFoundError) as error:
        load_vgg16("imagenet")
    message = str(error.value)
    assert str(tmp_path) in message and "--weights untrained" in message and "--weights PATH" in message


def test_weights_from_a_local_state_dict(vgg, tmp_path):
    path = tmp_path / "vgg16.pt"
    torch.save(vgg.vgg.state_dict(), path)
    loaded = load_vgg16(path)
    assert not loaded.weights.untrained and str(path.resolve()) in loaded.weights.label
    assert loaded.weights.sha256 is not None and len(loaded.weights.sha256) == 64
    assert torch.equal(loaded.vgg.features[0].weight, vgg.vgg.features[0].weight)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_vgg16(tmp_path / "missing.pt")
    torch.save({"not": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a state dict of torchvision's vgg16"):
        load_vgg16(tmp_path / "other.pt")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_maps_equal_cpu_maps(vgg, images, cam_weights):
    """Same maps on CUDA as on the CPU.

    Oracle: the float64 computation on the CPU. In float64 the devices agree to float32 rounding
    (the maps are returned as float32; the H200 gave identical bits). In float32 (TF32 off) CUDA
    stays within 1e-4 of it — measured on an H200: at most 1.8e-5, while float32 on the CPU is
    off by up to 1.4e-2 on Grad-CAM (an untrained network's class gradients nearly cancel in the
    channel weights), so float32 CPU is no reference.
    """
    import copy

    reference = compute_maps(copy.deepcopy(vgg).double(), images.double(), cam_weights=cam_weights.double())
    gpu64 = compute_maps(
        copy.deepcopy(vgg).double().cuda(), images.double().cuda(), cam_weights=cam_weights.double().cuda()
    )
    model = copy.deepcopy(vgg).cuda()
    matmul_tf32, cudnn_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        gpu = compute_maps(model, images.cuda(), cam_weights=cam_weights.cuda())
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul_tf32, cudnn_tf32
    torch.testing.assert_close(gpu.targets.cpu(), reference.targets)
    torch.testing.assert_close(gpu64.targets.cpu(), reference.targets)
    for name in MAP_NAMES:
        expected = reference.maps[name].double()
        scale = float(expected.abs().max())
        torch.testing.assert_close(gpu64.maps[name].cpu().double(), expected, rtol=0, atol=1e-6 * scale)
        torch.testing.assert_close(gpu.maps[name].cpu().double(), expected, rtol=0, atol=1e-4 * scale)
