"""Array backends of the incremental engine (:mod:`analysis.engine`): numpy, or torch in float64.

The engine writes its array code once against a backend: ``xp`` is the array module (``numpy`` or
``torch``; both spell ``log``, ``minimum``, ``where``, ``einsum``, ``bincount`` alike) and the few
operations whose spelling differs are methods here. Small arrays (fixated pixels, random draws,
ROC points) stay in numpy on the CPU whatever the backend; only map-sized arrays live on the device.

torch is imported only when a torch device is asked for: the analysis package is imported by
processes (the experiment's) that must never load it.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
from scipy.special import xlogy

__all__ = ["NumpyBackend", "TorchBackend", "backend", "in_two_threads"]

_T = TypeVar("_T")
_R = TypeVar("_R")
_helpers: ThreadPoolExecutor | None = None
_helpers_lock = threading.Lock()


def in_two_threads(function: Callable[[_T], _R], halves: Sequence[_T]) -> list[_R]:
    """``[function(halves[0]), function(halves[1])]``, the second in a helper thread while the
    caller runs the first (numpy releases the GIL). The helpers persist: a new thread per call cost
    the live scoring a few ms each time under load."""
    global _helpers
    with _helpers_lock:
        if _helpers is None:
            _helpers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lookwhere-engine")
    second = _helpers.submit(function, halves[1])
    return [function(halves[0]), second.result()]


#: Devices :func:`backend` accepts besides torch device strings such as ``"cuda:1"``.
DEVICES = ("cpu", "cuda", "auto", "torch-cpu")


class NumpyBackend:
    """numpy on the CPU. Counts of values above thresholds use sorted copies (bisection), which a
    CPU does far faster than comparing every pixel."""

    name = "numpy"
    xp = np
    sorted_counts = True
    #: Tiles per step of the stacked map passes: small enough that a step stays in the CPU cache.
    tiles_per_step = 48

    def array(self, values, dtype=np.float64) -> np.ndarray:
        return np.ascontiguousarray(values, dtype=dtype)

    def index(self, values) -> np.ndarray:
        return np.asarray(values, dtype=np.int64)

    def numpy(self, values) -> np.ndarray:
        return np.asarray(values)

    def zeros(self, shape, dtype=np.float64) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def xlogy(self, x, y):
        return xlogy(x, y)

    def concat(self, arrays):
        return np.concatenate(arrays)

    def flatnonzero(self, mask):
        return np.flatnonzero(mask)

    def amin(self, values, axis: int):
        return values.min(axis=axis)

    def count_nonzero(self, values, axis: int):
        return np.count_nonzero(values, axis=axis)

    def take(self, values, index, out):
        """``values[index]`` (1-D) into ``out`` (any shape of ``index``'s size)."""
        # mode "clip": with out=, the default "raise" copies through a buffer
        return np.take(values, index, out=out.reshape(-1), mode="clip").reshape(out.shape)

    def amax(self, values, axis: int):
        return values.max(axis=axis)


class TorchBackend:
    """torch in float64 on ``device`` (``"cuda"``, ``"cuda:1"``, ``"cpu"``). Counts compare every
    pixel at once, which a GPU does in microseconds; they equal the numpy backend's bisection."""

    name = "torch"
    sorted_counts = False
    tiles_per_step = None  # all tiles in one step

    def __init__(self, device: str) -> None:
        import torch  # optional dependency, imported only when asked for

        self.xp = torch
        self.device = torch.device(device)

    def array(self, values, dtype=None):
        dtype = self.xp.float64 if dtype is None or dtype == np.float64 else _torch_dtype(self.xp, dtype)
        return self.xp.as_tensor(np.array(values), device=self.device).to(dtype)  # a copy: numpy may be read-only

    def index(self, values):
        return self.xp.as_tensor(np.asarray(values, dtype=np.int64), device=self.device)

    def numpy(self, values) -> np.ndarray:
        return values.detach().cpu().numpy() if isinstance(values, self.xp.Tensor) else np.asarray(values)

    def zeros(self, shape, dtype=np.float64):
        return self.xp.zeros(shape, dtype=_torch_dtype(self.xp, dtype), device=self.device)

    def xlogy(self, x, y):
        return self.xp.special.xlogy(x, y)

    def concat(self, arrays):
        return self.xp.cat(list(arrays))

    def flatnonzero(self, mask):
        return self.xp.nonzero(mask.reshape(-1)).reshape(-1)

    def amin(self, values, axis: int):
        return self.xp.amin(values, dim=axis)

    def count_nonzero(self, values, axis: int):
        return self.xp.count_nonzero(values, dim=axis)

    def take(self, values, index, out):
        """``values[index]`` (1-D) into ``out`` (any shape of ``index``'s size)."""
        self.xp.index_select(values, 0, index, out=out.reshape(-1))
        return out

    def amax(self, values, axis: int):
        return self.xp.amax(values, dim=axis)


def _torch_dtype(torch, dtype):
    return {
        np.float64: torch.float64,
        np.int8: torch.int8,
        np.int64: torch.int64,
        bool: torch.bool,
        np.bool_: torch.bool,
    }[dtype]


def _gpu_may_be_present() -> bool:
    """False where no NVIDIA device node exists (Linux), so "auto" needs no torch import (seconds)
    to find that there is no GPU."""
    return not sys.platform.startswith("linux") or any(Path("/dev").glob("nvidia[0-9]*"))


def backend(device: str):
    """The backend for ``device``.

    ``"cpu"``: numpy. ``"cuda"`` (or ``"cuda:N"``): torch on that GPU. ``"auto"``: CUDA when torch is
    installed and sees a GPU, else numpy. ``"torch-cpu"``: torch on the CPU (for tests of the torch
    code path without a GPU).
    """
    if not isinstance(device, str) or not (device in DEVICES or device.startswith("cuda:")):
        raise ValueError(f"device must be one of {list(DEVICES)} or 'cuda:N'; got {device!r}")
    if device == "cpu":
        return NumpyBackend()
    if device == "auto":
        if importlib.util.find_spec("torch") is None or not _gpu_may_be_present():
            return NumpyBackend()
        import torch

        return TorchBackend("cuda") if torch.cuda.is_available() else NumpyBackend()
    if importlib.util.find_spec("torch") is None:
        raise ValueError(f"device {device!r} needs torch, which is not installed; use device='cpu'")
    if device == "torch-cpu":
        return TorchBackend("cpu")
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device; use 'cpu' or 'auto'")
    return TorchBackend(device)
