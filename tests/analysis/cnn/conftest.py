"""Fixtures of the CNN tests: one seeded untrained VGG16 per session, and its stock twin.

Inputs are 32–64 px so that a VGG16 forward + backward takes well under a second on 2 CPU cores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    import torch

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from analysis.cnn.model import AttentionVGG16, load_vgg16  # noqa: E402


@pytest.fixture(scope="session")
def vgg() -> AttentionVGG16:
    """``load_vgg16("untrained", seed=0)``: the model under test (do not modify it in tests)."""
    return load_vgg16("untrained", seed=0)


@pytest.fixture(scope="session")
def stock_vgg(vgg) -> torch.nn.Module:
    """torchvision's own VGG16 with the same weights and plain out-of-place ``nn.ReLU``s.

    The reference for captum, pytorch-grad-cam and the hook-based re-implementation: none of our
    code (switchable ReLUs, block bookkeeping) is in it.
    """
    stock = torchvision.models.vgg16(weights=None)
    stock.load_state_dict(vgg.vgg.state_dict())
    for module in stock.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    return stock.eval()


@pytest.fixture(scope="session")
def images() -> torch.Tensor:
    """Two random 64×64 network inputs, shape (2, 3, 64, 64), float32 (do not modify)."""
    generator = torch.Generator().manual_seed(7)
    return torch.randn(2, 3, 64, 64, generator=generator)


@pytest.fixture(scope="session")
def cam_weights() -> torch.Tensor:
    """Arbitrary fixed CAM weights, shape (1000, 512)."""
    return torch.from_numpy(np.random.default_rng(0).normal(size=(1000, 512)).astype(np.float32))
