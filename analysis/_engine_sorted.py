"""Sorted pixel values with exact jittered counts, for the engine's AUC-Judd on the CPU.

AUC-Judd needs, for each threshold ``t``, how many pixels of a map satisfy
``(v * a + b) + noise[pixel] >= t``: the map is the affine transform ``v * a + b`` of raw values
``v`` (a heatmap's normalisation), jittered by the per-pixel noise field of
:func:`analysis.metrics._judd_noise`, which is below ``noise_max`` (1e-7). Kept sorted by ``v``, the
pixels split into three runs per threshold: those with ``v * a + b >= t`` (all counted: the noise is
>= 0), those with ``(v * a + b) + noise_max < t`` (none counted), and the band between, a few pixels
whose own noise decides; only the band is evaluated pixel by pixel. Both run boundaries are found
with the same float operations as the per-pixel test, so the count is exact, not an approximation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SortedValues"]


class SortedValues:
    """A multiset of (value, pixel) pairs sorted by value; a pixel's value can be replaced.

    Parameters
    ----------
    n_pixels : int
        Size of the pixel index space (flat indices ``0 .. n_pixels - 1``).
    """

    def __init__(self, n_pixels: int) -> None:
        self.values = np.empty(0)
        self.pixels = np.empty(0, dtype=np.int64)
        self._member = np.zeros(n_pixels, dtype=bool)

    @classmethod
    def of_sorted(cls, values: np.ndarray) -> SortedValues:
        """Values already sorted, all at pixel 0 (for counts whose noise is 0)."""
        field = cls(0)
        field.values, field.pixels = values, np.zeros(values.size, dtype=np.int64)
        return field

    def __len__(self) -> int:
        return self.values.size

    def contains(self, pixels: np.ndarray) -> np.ndarray:
        """Which of ``pixels`` have an entry (bool, same shape)."""
        return self._member[pixels]

    def replace(self, pixels: np.ndarray, values: np.ndarray) -> None:
        """Set the value of each of ``pixels`` (distinct flat indices), adding the new ones."""
        if not pixels.size:
            return
        kept_values, kept_pixels = self.values, self.pixels
        present = self._member[pixels]
        if present.any():
            self._member[pixels[present]] = False
            keep = self._member[self.pixels]
            kept_values, kept_pixels = kept_values[keep], kept_pixels[keep]
        order = np.argsort(values, kind="stable")
        values, pixels = values[order], pixels[order]
        # merge: new entry j lands after the kept values below it and the j new ones before it
        at = np.searchsorted(kept_values, values) + np.arange(values.size)
        is_kept = np.ones(kept_values.size + values.size, dtype=bool)
        is_kept[at] = False
        self.values = np.empty(is_kept.size)
        self.values[at], self.values[is_kept] = values, kept_values
        self.pixels = np.empty(is_kept.size, dtype=np.int64)
        self.pixels[at], self.pixels[is_kept] = pixels, kept_pixels
        self._member[pixels] = True

    def count_at_least(self, a, b, thresholds, noise: np.ndarray, noise_max: float) -> np.ndarray:
        """How many entries satisfy ``(value * a + b) + noise[pixel] >= threshold``, per threshold.

        ``a`` (>= 0), ``b`` and ``thresholds`` are arrays of one length K (one transform per
        threshold); returns ``(K,)`` int64.
        """
        a, b, thresholds = (np.asarray(x, dtype=np.float64) for x in (a, b, thresholds))
        n = self.values.size
        if not n or not thresholds.size:
            return np.zeros(thresholds.size, dtype=np.int64)
        surely = self._first(lambda v, k: v * a[k] + b[k] >= thresholds[k], a, b, thresholds, 0.0)
        maybe = self._first(lambda v, k: (v * a[k] + b[k]) + noise_max >= thresholds[k], a, b, thresholds, noise_max)
        counts = n - surely
        band = surely - maybe
        if band.any():
            which = np.repeat(np.arange(thresholds.size), band)
            starts = np.repeat(maybe - np.cumsum(band) + band, band)
            at = np.arange(which.size) + starts
            jittered = (self.values[at] * a[which] + b[which]) + noise[self.pixels[at]]
            counts += np.bincount(which, weights=jittered >= thresholds[which], minlength=thresholds.size).astype(
                np.int64
            )
        return counts

    def _first(self, holds, a, b, thresholds, shift: float) -> np.ndarray:
        """Per threshold k, the first index whose value satisfies ``holds(value, k)`` (monotone in
        the value: false, then true), or ``len(self)``."""
        values, n = self.values, self.values.size
        k_all = np.arange(thresholds.size)
        with np.errstate(divide="ignore", invalid="ignore"):
            guess = np.where(a > 0, (thresholds - shift - b) / a, np.where(b + shift >= thresholds, -np.inf, np.inf))
        at = np.searchsorted(values, guess)
        while True:
            left = at > 0
            left[left] = holds(values[at[left] - 1], k_all[left])
            right = at < n
            right[right] = ~holds(values[at[right]], k_all[right])
            if not (left.any() or right.any()):
                return at
            # jump over whole runs of equal values, whose predicate is one
            at[left] = np.searchsorted(values, values[at[left] - 1], side="left")
            at[right] = np.searchsorted(values, values[at[right]], side="right")

    def extreme(self, *, largest: bool, excluded: np.ndarray | None = None) -> float | None:
        """The largest (or smallest) value among pixels not marked in ``excluded`` (bool per pixel);
        None when there is none."""
        n = self.values.size
        step = 256
        done = 0
        while done < n:
            stop = min(n, done + step)
            at = np.arange(n - 1 - done, n - 1 - stop, -1) if largest else np.arange(done, stop)
            ok = at if excluded is None else at[~excluded[self.pixels[at]]]
            if ok.size:
                return float(self.values[ok[0]])
            done, step = stop, step * 4
        return None
