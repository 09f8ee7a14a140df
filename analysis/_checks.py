"""Input validation shared by the analysis modules.

Messages name the parameter, what was expected, what was received and, where it helps, what to do.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_2d_float", "check_same_shape", "check_positive", "check_choice"]


def as_2d_float(array, name: str, *, finite: bool = True) -> np.ndarray:
    """Return ``array`` as a C-contiguous float64 ``(H, W)`` array, or raise ValueError."""
    out = np.ascontiguousarray(array, dtype=np.float64)
    if out.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) array; got shape {out.shape}")
    if out.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {out.shape}")
    if finite and not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).sum())
        raise ValueError(f"{name} holds {bad} non-finite values (NaN or inf); clean the map first")
    return out


def check_same_shape(**arrays: np.ndarray) -> None:
    """Raise ValueError unless every array has the same shape, naming each."""
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"maps must have the same (H, W) shape; got {listed}")


def check_positive(name: str, value: float) -> float:
    """Return ``value`` if it is a finite number > 0, else raise ValueError."""
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return value


def check_choice(name: str, value, choices) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)!r}; got {value!r}")
