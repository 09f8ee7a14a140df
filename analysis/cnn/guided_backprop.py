"""Guided Backpropagation (Springenberg et al. 2015; paper §3.1) and the switchable ReLU it needs.

Guided Backprop is the input gradient of the target class score computed with a modified ReLU
backward: the gradient passing through every ReLU is the ordinary one, ``grad * (x > 0)``, with its
negative part clipped, ``max(grad * (x > 0), 0)`` (as captum's ``GuidedBackprop``, which applies
``relu`` to each ReLU module's grad_input).

To compute Guided Backprop from the *same* forward pass as the other methods, every ReLU of the
model is a :class:`SwitchableReLU`: its backward reads the module's ``guided`` flag at backward
time, so one forward graph serves both the ordinary backward passes (Grad-CAM, dense model) and the
guided one. :func:`guided_relu_backward` flips the flags for one backward pass and restores them in
``finally``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from analysis._checks import check_choice

__all__ = ["SwitchableReLU", "guided_relu_backward", "reduce_channels", "REDUCTIONS"]

#: How a 3-channel input gradient becomes a 2-D map (SPEC §2): max |g| over channels (default) or Σ|g|.
REDUCTIONS = ("max_abs", "sum_abs")


class _SwitchableReLUFunction(torch.autograd.Function):
    """``relu(x)`` whose backward is the ordinary one or the guided one, chosen at backward time."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, module: SwitchableReLU) -> torch.Tensor:
        out = x.clamp_min(0)
        ctx.save_for_backward(out)
        # The module (not its current flag) is kept, so the flag is read when backward runs.
        ctx.module = module
        return out

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (out,) = ctx.saved_tensors
        # Same as torch's threshold_backward: the derivative at 0 is taken as 0.
        grad_input = grad_output * (out > 0)
        if ctx.module.guided:
            grad_input = grad_input.clamp_min(0)
        return grad_input, None


class SwitchableReLU(nn.ReLU):
    """Out-of-place ReLU whose backward becomes Guided Backprop's while ``guided`` is True.

    It subclasses :class:`torch.nn.ReLU` so that tools looking for ReLU modules (captum's
    ``GuidedBackprop``, pytorch-grad-cam) still find it. It is never in-place: torchvision's
    in-place ReLUs overwrite the activations that hooks and autograd hold (SPEC §2).
    """

    def __init__(self) -> None:
        super().__init__(inplace=False)
        self.guided = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SwitchableReLUFunction.apply(x, self)


@contextlib.contextmanager
def guided_relu_backward(model: nn.Module) -> Iterator[None]:
    """Make every :class:`SwitchableReLU` of ``model`` backpropagate guided gradients.

    Backward passes run inside the ``with`` block use the guided rule; the flags are restored in
    ``finally``, also when the block raises.

    Raises
    ------
    ValueError
        If ``model`` has no :class:`SwitchableReLU` (guided backprop would silently be plain
        gradients); build the model with :func:`analysis.cnn.model.load_vgg16`.
    """
    relus = [m for m in model.modules() if isinstance(m, SwitchableReLU)]
    if not relus:
        raise ValueError(
            f"model {type(model).__name__} has no SwitchableReLU, so its backward cannot be guided; "
            "load it with analysis.cnn.model.load_vgg16 or replace its ReLUs with SwitchableReLU"
        )
    try:
        for relu in relus:
            relu.guided = True
        yield
    finally:
        for relu in relus:
            relu.guided = False


def reduce_channels(gradient: torch.Tensor, *, reduction: str = "max_abs") -> torch.Tensor:
    """Reduce a signed 3-channel input gradient to a 2-D map (SPEC §2 "Guided Backprop").

    Parameters
    ----------
    gradient : torch.Tensor, shape (B, 3, H, W)
        Signed input gradient (Guided Backprop or Guided Grad-CAM) in network-input pixels.
    reduction : {"max_abs", "sum_abs"}
        ``max_abs`` (default): max over channels of ``|g|``; ``sum_abs``: ``Σ_channels |g|``.

    Returns
    -------
    torch.Tensor, shape (B, H, W), same dtype as ``gradient``, values >= 0.
    """
    check_choice("reduction", reduction, REDUCTIONS)
    if gradient.ndim != 4:
        raise ValueError(f"gradient must have shape (B, 3, H, W); got {tuple(gradient.shape)}")
    magnitude = gradient.abs()
    return magnitude.amax(dim=1) if reduction == "max_abs" else magnitude.sum(dim=1)
