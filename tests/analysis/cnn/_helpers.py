"""Helpers shared by the CNN tests."""

from __future__ import annotations

import copy

import torch

from analysis.cnn.model import AttentionVGG16

#: Per-image targets that differ inside the batch (the untrained net's top-1 is the same class
#: for every random input, so tests pass explicit targets; with these two, both Grad-CAMs of the
#: `images` fixture are non-zero).
TARGETS = (1, 20)


def double_copy(model: AttentionVGG16) -> AttentionVGG16:
    """A float64 copy (for finite differences)."""
    return copy.deepcopy(model).double()


def assert_no_hooks(model: torch.nn.Module) -> None:
    """No module keeps a forward, forward-pre or backward hook (captum's test_hook_removal check)."""
    for name, module in model.named_modules():
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            assert len(getattr(module, kind)) == 0, f"{name or 'model'} keeps {kind}"
