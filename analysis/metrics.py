"""Map-comparison metrics: the paper's MAE (eq. 15) and the MIT saliency-benchmark set.

Every metric compares one saliency map (a CNN map or a baseline, any scale) with what people did on
the same image: the blurred human heatmap (MAE, CC, SIM, KL) or the fixation locations (NSS, the
AUCs, information gain). All arrays are ``(H, W)`` in original-image pixels, row = y, origin at the
top-left corner; pixel ``(row, col)`` covers ``[col, col+1) x [row, row+1)``.

Definitions
-----------
By default (``variant="mit"``) each metric transcribes the MATLAB code of the MIT saliency benchmark,
cvzoya/saliency ``code_forMetrics`` (Bylinskii et al., "What do different evaluation metrics tell us
about saliency models?", TPAMI 2019). ``variant="pysaliency"`` reproduces pysaliency 0.2.22
(matthias-k/pysaliency ``metrics.py``, ``saliency_map_models.py``, ``roc_cython.pyx``) where the two
disagree; the tests pin both.

============  ==============================  ===========================================================
metric        MIT source (default)            pysaliency counterpart (``variant="pysaliency"``)
============  ==============================  ===========================================================
mae           paper eq. 15                    none (min-max scaling: SPEC §2 replication note)
nss           ``NSS.m``                       ``metrics.NSS`` via ``SaliencyMapModel.NSSs``
cc            ``CC.m``                        ``metrics.CC``
sim           ``similarity.m``                ``metrics.SIM``
kl_div        ``KLdiv.m``                     ``metrics.image_based_kl_divergence`` (model ``KLDiv``)
auc_judd      ``AUC_Judd.m``                  ``SaliencyMapModel.AUC_Judd`` (``nonfixations='unfixated'``,
                                              ``thresholds='fixations'``)
auc_borji     ``AUC_Borji.m``                 none (its ``AUC(nonfixations='uniform')`` is the exact
                                              rank AUC, a different estimator)
auc_shuffled  ``AUC_shuffled.m``              none (its ``sAUC`` is the exact rank AUC against all
                                              other-image fixations, a different estimator)
info_gain     ``InfoGain.m``                  ``Model.information_gain`` of ``SaliencyMapNormalizingModel``
============  ==============================  ===========================================================

Documented differences between MIT and pysaliency
-------------------------------------------------
- **Duplicate fixations.** MIT binarises the fixation map (``fixationMap > 0``): a pixel fixated
  three times counts once. pysaliency evaluates per fixation, so repeats weigh more (NSS, AUC-Judd
  positives, information gain).
- **Tie handling in AUC-Judd.** MIT sweeps the sorted fixated values and sets ``tp = i / N`` even
  when several fixated pixels share a value (the curve then steps back in ``fp``); pysaliency counts
  every positive ``>= threshold``. MIT breaks ties by jittering the map with ``rand / 1e7``
  (uniform), pysaliency with ``randn * 1e-7`` (Gaussian, seed 42); the noise therefore differs and the
  two agree exactly only without jitter on a map without ties. The jitter is added to the *raw* map in
  both, so it is large relative to maps with a tiny range (densities): give maps a range near 1.
- **NSS standard deviation.** MATLAB ``std`` divides by ``N - 1``, numpy's by ``N`` (relative
  difference ``1/(2N)``, 1e-6 on 800x600). A constant map gives NaN (MIT, 0/0) or 0 (pysaliency).
- **SIM normalisation.** MIT min-max scales each map to [0, 1] before dividing by its sum, so a map's
  offset does not count; pysaliency only shifts maps with negative values and divides by the sum.
- **Epsilons.** MIT uses MATLAB ``eps`` (2.220446049250313e-16) inside KL's logarithm and quotient and
  in information gain's logarithms. pysaliency's default image-based KL adds ``1e-20`` to each map
  (``minimum_value``) and uses no epsilon in the logarithm; its ``MIT_KLDiv`` uses ``2.2204e-16``.
  Its information gain uses no epsilon (a fixation on a zero of the map gives ``-inf``).
- **KL image-based vs fixation-based.** Both ``kl_div`` variants are image-based, KL(human || map)
  between the two maps as distributions. pysaliency also offers a fixation-based KL (histograms of
  saliency at fixations vs non-fixations) which is a different quantity and not provided here.
- **Information gain normalisation.** MIT min-max scales both maps before turning them into
  distributions (a constant map gives NaN); pysaliency divides by the sum (shifting negative maps).
- **Coordinate truncation.** This module takes per-pixel fixation counts; building them is the
  caller's job. The project convention (floor of continuous coordinates) equals pysaliency's
  ``x_int = int(x)`` truncation for coordinates inside the image.
- **Resizing.** MATLAB ``imresize``-s the saliency map to the fixation map's size; here every map must
  already have the same ``(H, W)`` (the caller upsamples CNN maps, SPEC §2) and a mismatch raises.
- **Negative maps in KL.** MATLAB's ``KLdiv`` has no rule for negative values (complex logarithms);
  both variants here shift a map with negative values to a minimum of 0 first, as pysaliency does.

Implementation (same definitions, less work)
--------------------------------------------
- AUC-Judd min-max scales the map to [0, 1] and then jitters every pixel as MATLAB does
  (``rand(size(map)) / 1e7``, one draw per pixel in flat order from the stream
  ``(seed, auc_judd, *stream)``), so a pixel's noise depends on its position (and the image), never
  on the fixations; the same noise field serves every map and target of the image. The MIT
  benchmark scores maps saved as 8-bit images, read back in [0, 1], so its jitter is 1e-7 of the
  map's range; scaling first keeps it so whatever the map's scale (``AUC_Judd.m`` itself jitters
  the map as given: a map with a range of 1e-6 would be reordered by its jitter). Min-max scaling
  keeps the order, so the MATLAB loop's own scaling after the jitter changes nothing.
  ``sum(S >= threshold)`` is then an exact count over the sorted jittered map. This is what lets
  the incremental engine (:mod:`analysis.engine`) sort a map's jittered values once and count each
  new threshold by bisection. The tests check it against a line-by-line transcription of the
  MATLAB loop given the same noise.
- Min-max scaling divides by the range (rather than multiplying by its reciprocal), so a map's
  maximum scales to exactly 1 and the Borji AUCs' top threshold counts it, however the range was
  computed.
- AUC-Borji and shuffled AUC use one threshold grid ``0:step:1`` for all splits (MATLAB stops at the
  split's largest value; the extra thresholds add only repeated (0, 0) points, no area) and count
  all splits at once. Shuffled-AUC draws are uniform random subsets, as MATLAB's ``randperm``.
- Random numbers come from numpy's PCG64, seeded with ``(seed, metric, *stream)``; ``stream`` names
  what is scored (the pipeline passes ``(image,)`` for the pooled target and ``(image,
  participant)`` for one participant's), so every image and participant draws independently and
  the Monte-Carlo error of a mean over images falls as ``1 / sqrt(n)``. MATLAB's own streams cannot
  be reproduced, so random metrics agree with MATLAB in distribution, not digit for digit.
- The Monte-Carlo standard error of a sampled AUC (AUC-Borji, shuffled AUC) is the standard
  deviation of its splits' areas over ``sqrt(n_splits)`` (:func:`score_map` with
  ``return_mc_se=True``).
- Long-lived inputs (:class:`HumanTarget`) cache scalars only; no metric keeps a map-sized array.

Undefined results
-----------------
A metric that is undefined for valid inputs (a constant map where the definition divides by its
range or standard deviation, an empty fixation map, no other-image fixations, a missing baseline)
returns NaN and logs one INFO line saying why; it never raises for those. Invalid inputs (wrong
shape or dimensionality, NaN or inf values, negative fixation counts, unknown options) raise
``ValueError`` before any work.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, overload

import numpy as np

from analysis._checks import as_2d_float, check_choice, check_positive, check_same_shape

__all__ = [
    "HIGHER_IS_BETTER",
    "SAMPLED_METRICS",
    "HumanTarget",
    "METRICS",
    "MATLAB_EPS",
    "Variant",
    "auc_borji",
    "auc_judd",
    "auc_shuffled",
    "cc",
    "info_gain",
    "kl_div",
    "mae",
    "monte_carlo_se",
    "nss",
    "score_map",
    "sim",
]

logger = logging.getLogger(__name__)

Variant = Literal["mit", "pysaliency"]
_VARIANTS = ("mit", "pysaliency")

#: MATLAB ``eps`` (spacing of doubles at 1), the regulariser of the MIT KL and information gain.
MATLAB_EPS = float(np.finfo(np.float64).eps)
#: pysaliency's default ``minimum_value`` for image-based KL divergence.
_PYSALIENCY_KL_MINIMUM = 1e-20
#: Scale of the AUC-Judd tie-breaking jitter: MATLAB adds ``rand(size(map)) / 10000000``.
_JITTER_DIVISOR = 1e7

METRICS: tuple[str, ...] = (
    "mae",
    "nss",
    "cc",
    "sim",
    "kl_div",
    "auc_judd",
    "auc_borji",
    "auc_shuffled",
    "info_gain",
)
HIGHER_IS_BETTER: dict[str, bool] = {
    "mae": False,
    "nss": True,
    "cc": True,
    "sim": True,
    "kl_div": False,
    "auc_judd": True,
    "auc_borji": True,
    "auc_shuffled": True,
    "info_gain": True,
}

# Each random metric draws from its own stream (seed, stream id, *stream key), so its value does not
# depend on which other metrics were computed in the same call.
_STREAM = {"auc_judd": 1, "auc_borji": 2, "auc_shuffled": 3, "split_half": 4}
#: The metrics whose value is a mean over random splits, reported with a Monte-Carlo standard error.
SAMPLED_METRICS = ("auc_borji", "auc_shuffled")


def _stream_words(stream: tuple[str, ...]) -> list[int]:
    """64 bits of SHA-256 per part of a stream key (image id, participant): stable across runs and
    Python versions, unlike ``hash``; one word per part, so ``("ab",)`` and ``("a", "b")`` differ."""
    return [int.from_bytes(hashlib.sha256(str(part).encode("utf-8")).digest()[:8], "little") for part in stream]


def _rng(seed: int, metric: str, stream: tuple[str, ...]) -> np.random.Generator:
    """The random stream of ``metric`` for the target named ``stream`` (``()``: one for all)."""
    return np.random.default_rng([seed, _STREAM[metric], *_stream_words(stream)])


def _check_stream(stream) -> tuple[str, ...]:
    if isinstance(stream, str) or not isinstance(stream, (tuple, list)):
        raise ValueError(f"stream must be a tuple of names (e.g. (image, participant)); got {stream!r}")
    return tuple(str(part) for part in stream)


# --------------------------------------------------------------------------------------------------
# Prepared inputs: validated once, statistics computed on first use and then shared between metrics.
# --------------------------------------------------------------------------------------------------


class _Map:
    """A validated real-valued ``(H, W)`` map, flattened to float64 ``(H*W,)``.

    Scalars (range, sum, moments) are computed on first use and kept. Arrays derived from the map are
    recomputed by each metric that needs them, except the mean-centred copy, which NSS and CC share
    within one call; long-lived maps (those of a :class:`HumanTarget`) therefore keep no array but
    their own, so a target costs no more memory than its inputs.
    """

    def __init__(self, values: np.ndarray) -> None:
        self.flat = values.ravel()

    @cached_property
    def lo(self) -> float:
        return float(self.flat.min())

    @cached_property
    def hi(self) -> float:
        return float(self.flat.max())

    @property
    def range(self) -> float:
        return self.hi - self.lo

    @property
    def is_constant(self) -> bool:
        return self.range == 0.0

    @cached_property
    def sum(self) -> float:
        return float(self.flat.sum())

    @cached_property
    def mean(self) -> float:
        return self.sum / self.flat.size

    @cached_property
    def centered(self) -> np.ndarray:
        """The map minus its mean (kept: used on per-call saliency maps only)."""
        return self.flat - self.mean

    @cached_property
    def centered_sum_sq(self) -> float:
        # Reuse the centred copy where this map keeps one; a long-lived map keeps only this scalar.
        centered = self.__dict__.get("centered")
        if centered is None:
            centered = self.flat - self.mean
        return _inner(centered, centered)

    def minmax(self) -> np.ndarray:
        """The map scaled to [0, 1] (:func:`_minmax_values`); a constant map becomes all zeros."""
        if self.is_constant:
            return np.zeros_like(self.flat)
        return _minmax_values(self.flat, self.lo, self.range)

    @cached_property
    def minmax_sum(self) -> float:
        """``sum((x - lo) / range)``, from the sum, without another pass; 0 for a constant map."""
        return (self.sum - self.flat.size * self.lo) / self.range if not self.is_constant else 0.0

    def minmax_at(self, index: np.ndarray) -> np.ndarray:
        """Min-max scaled values at flat indices ``index`` (any shape); the map must not be constant."""
        return _minmax_values(self.flat[index], self.lo, self.range)

    def density_mit_sim(self) -> np.ndarray | None:
        """MIT ``similarity.m``: min-max, then divide by the sum (:func:`_sim_density`).

        An all-zero map stays zero; a constant non-zero map gives None (0/0 in MATLAB).
        """
        density = _sim_density(self.lo, self.range, self.sum, self.flat.size)
        return None if density is None else density(self.flat)

    def density(self, *, minimum_value: float, zero_to_uniform: bool) -> np.ndarray:
        """The map as a distribution (:func:`_density`)."""
        return _density(
            self.lo, self.sum, self.flat.size, minimum_value=minimum_value, zero_to_uniform=zero_to_uniform
        )(self.flat)


class _Fixations:
    """The fixated pixels of a validated ``(H, W)`` count map: flat indices and counts."""

    def __init__(self, counts: np.ndarray) -> None:
        flat = counts.ravel()
        self.index = np.flatnonzero(flat > 0)
        self.counts = flat[self.index]

    def __len__(self) -> int:
        return self.index.size


def _as_counts(array, name: str) -> np.ndarray:
    """Validate a fixation-count map: finite float64 ``(H, W)``, no negative counts."""
    counts = as_2d_float(array, name)
    if (counts < 0).any():
        raise ValueError(f"{name} holds fixation counts and must be >= 0; got minimum {counts.min()!r}")
    return counts


def _check_variant(variant: str) -> None:
    check_choice("variant", variant, _VARIANTS)


def _undefined(metric: str, why: str) -> float:
    logger.info("%s is undefined here (%s); returning NaN", metric, why)
    return float("nan")


def _inner(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of the element-wise product. Not np.dot: OpenBLAS threads it, which thrashes on a busy
    machine (0.04 ms idle, over 10 ms under load on 2 cores, measured on 800x600); numpy's pairwise
    sum is at least as accurate."""
    return float(np.multiply(a, b).sum())


def _trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoidal area along the last axis (MATLAB ``trapz(x, y)``; np.trapz left numpy 2.4)."""
    return 0.5 * np.sum(np.diff(x, axis=-1) * (y[..., 1:] + y[..., :-1]), axis=-1)


# --------------------------------------------------------------------------------------------------
# Value transforms, written once for the metrics here and the incremental engine
# (:mod:`analysis.engine`), which applies them to numpy or torch arrays of a map's values.
# --------------------------------------------------------------------------------------------------


def _minmax_values(values, lo: float | np.ndarray, value_range: float | np.ndarray):
    """``(values - lo) / range``: a true division, so the map's maximum becomes exactly 1 whatever
    its range (``x * (1 / x)`` is not always 1); random AUCs compare these values with the
    thresholds ``0, 0.1, ..., 1``."""
    return (values - lo) / value_range


@dataclass(frozen=True)
class _Affine:
    """The value transform ``(values + offset) * scale`` (``values * scale`` when ``offset`` is 0),
    or the constant ``constant`` when it is set."""

    offset: float = 0.0
    scale: float = 1.0
    constant: float | None = None

    def __call__(self, values):
        if self.constant is not None:
            return values * 0.0 + self.constant  # numpy or torch alike
        if not self.offset:
            return values * self.scale
        return (values + self.offset) * self.scale


def _sim_density(lo: float, value_range: float, total: float, n_pixels: int) -> _Affine | None:
    """MIT ``similarity.m``'s distribution of a map with minimum ``lo``, range and sum ``total``:
    min-max, then divide by the sum. All zero stays zero; constant non-zero gives None (0/0)."""
    if value_range == 0.0:
        return _Affine(constant=0.0) if lo == 0.0 else None
    return _Affine(offset=-lo, scale=1.0 / (total - n_pixels * lo))


def _density(lo: float, total: float, n_pixels: int, *, minimum_value: float, zero_to_uniform: bool) -> _Affine:
    """Shift a map with negative values to minimum 0, add ``minimum_value``, divide by the sum.

    An all-zero result stays zero (MIT ``KLdiv.m``) or becomes uniform (pysaliency
    ``convert_saliency_map_to_density``), as ``zero_to_uniform`` says.
    """
    offset = minimum_value - min(lo, 0.0)
    shifted_total = total + n_pixels * offset
    if shifted_total == 0.0:
        return _Affine(constant=1.0 / n_pixels if zero_to_uniform else 0.0)
    return _Affine(offset=offset, scale=1.0 / shifted_total)


# --------------------------------------------------------------------------------------------------
# Kernels on prepared inputs (no validation). Public functions and score_map share them; the
# ``*_from`` functions finish a metric from the few numbers it needs, for the engine as well.
# --------------------------------------------------------------------------------------------------


def _mae(s: _Map, h: _Map, normalize: str) -> float:
    if normalize == "none":
        difference = np.subtract(s.flat, h.flat)
    else:
        difference = s.minmax()
        difference -= h.minmax()
    return float(np.abs(difference, out=difference).mean())


def _nss(s: _Map, fix: _Fixations, variant: str) -> float:
    centered = s.centered[fix.index] if not s.is_constant else None
    return _nss_from(centered, fix.counts, s.centered_sum_sq, s.flat.size, s.is_constant, variant)


def _nss_from(
    centered_at_fixations, counts, centered_sum_sq: float, n_pixels: int, constant: bool, variant: str
) -> float:
    """NSS from the mean-centred map at the fixated pixels and the centred sum of squares."""
    if not len(counts):
        return _undefined("nss", "the fixation map is empty")
    if variant == "mit":
        if constant:
            return _undefined("nss", "the saliency map is constant (MATLAB std = 0)")
        std = np.sqrt(centered_sum_sq / (n_pixels - 1))
        return float(centered_at_fixations.mean() / std)
    # pysaliency: a constant map is left un-scaled (all zeros after centring), population std,
    # per-fixation mean
    if constant:
        return 0.0
    std = np.sqrt(centered_sum_sq / n_pixels)
    return float(np.average(centered_at_fixations / std, weights=counts))


def _cc(s: _Map, h: _Map, variant: str) -> float:
    if s.is_constant or h.is_constant:
        return _cc_from(0.0, 0.0, 0.0, s.is_constant, h.is_constant, variant)
    # sum((s - mean s) h) = sum((s - mean s)(h - mean h)): saves centring the long-lived human map
    return _cc_from(_inner(s.centered, h.flat), s.centered_sum_sq, h.centered_sum_sq, False, False, variant)


def _cc_from(
    covariance_sum: float,
    s_centered_sum_sq: float,
    h_centered_sum_sq: float,
    s_constant: bool,
    h_constant: bool,
    variant: str,
) -> float:
    """CC from ``sum((s - mean s) h)`` and both centred sums of squares."""
    if s_constant or h_constant:
        if variant == "pysaliency" and s_constant and not h_constant:
            return 0.0
        return _undefined("cc", "a map is constant (zero standard deviation)")
    return covariance_sum / np.sqrt(s_centered_sum_sq * h_centered_sum_sq)


def _sim(s: _Map, h: _Map, variant: str) -> float:
    if variant == "mit":
        p, q = s.density_mit_sim(), h.density_mit_sim()
        if p is None or q is None:
            return _undefined("sim", "a map is constant and non-zero (MIT min-max gives 0/0)")
    else:
        p = s.density(minimum_value=0.0, zero_to_uniform=True)
        q = h.density(minimum_value=0.0, zero_to_uniform=True)
    return float(np.minimum(p, q, out=p).sum())


def _kl_div(s: _Map, h: _Map, variant: str) -> float:
    if variant == "mit":
        p = s.density(minimum_value=0.0, zero_to_uniform=False)
        q = h.density(minimum_value=0.0, zero_to_uniform=False)
        # sum(q .* log(eps + q ./ (p + eps))), in one scratch buffer; q = 0 terms vanish
        log_ratio = p + MATLAB_EPS
        np.divide(q, log_ratio, out=log_ratio)
        log_ratio += MATLAB_EPS
        np.log(log_ratio, out=log_ratio)
        return _inner(q, log_ratio)
    p = s.density(minimum_value=_PYSALIENCY_KL_MINIMUM, zero_to_uniform=True)
    q = h.density(minimum_value=_PYSALIENCY_KL_MINIMUM, zero_to_uniform=True)
    log_ratio = np.log(q)
    log_ratio -= np.log(p, out=p)
    return _inner(q, log_ratio)


def _info_gain(s: _Map, fix: _Fixations, b: _Map, variant: str) -> float:
    if not len(fix):
        return _undefined("info_gain", "the fixation map is empty")
    if variant == "mit":
        if s.is_constant or b.is_constant:
            return _undefined("info_gain", "a map is constant (MIT min-max gives 0/0)")
        return _info_gain_from(
            s.minmax_at(fix.index) / s.minmax_sum, b.minmax_at(fix.index) / b.minmax_sum, fix.counts, variant
        )
    return _info_gain_from(_density_at(s, fix.index), _density_at(b, fix.index), fix.counts, variant)


def _info_gain_of_densities(s: _Map, fix: _Fixations, b: _Map, variant: str) -> float:
    """Information gain of two maps that are densities (non-negative): each divided by its sum, no
    min-max (which would shift a density), then as :func:`_info_gain_from`."""
    if not len(fix):
        return _undefined("info_gain", "the fixation map is empty")
    if not (s.sum > 0 and b.sum > 0):
        return _undefined("info_gain", "a density has no mass")
    return _info_gain_from(s.flat[fix.index] / s.sum, b.flat[fix.index] / b.sum, fix.counts, variant)


def _info_gain_from(p, q, counts, variant: str) -> float:
    """Information gain from the map's (``p``) and the baseline's (``q``) probability at each
    fixated pixel (MIT: min-max scaled, divided by the sum; pysaliency: :func:`_density_values`)."""
    if variant == "mit":
        return float(np.mean(np.log2(MATLAB_EPS + p) - np.log2(MATLAB_EPS + q)))
    with np.errstate(divide="ignore"):
        gains = np.log2(p) - np.log2(q)
    return float(np.average(gains, weights=counts))


def _density_at(m: _Map, index: np.ndarray) -> np.ndarray:
    """pysaliency's density (negative maps shifted, divided by the sum, zero -> uniform) at ``index``."""
    return _density_values(m.flat[index], m.lo, m.sum, m.flat.size)


def _density_values(values, lo: float, total: float, n_pixels: int):
    """pysaliency's density of a map with minimum ``lo`` and sum ``total``, at some of its values."""
    offset = -min(lo, 0.0)
    shifted_total = total + n_pixels * offset
    if shifted_total == 0.0:
        return values * 0.0 + 1.0 / n_pixels
    return (values + offset) / shifted_total


@functools.lru_cache(maxsize=8)
def _judd_noise(seed: int, n_pixels: int, stream: tuple[str, ...] = ()) -> np.ndarray:
    """MATLAB's AUC-Judd jitter ``rand(size(map)) / 1e7``: one uniform draw per pixel, in flat
    (row-major) order, from the stream ``(seed, auc_judd, *stream)``. Read-only and shared: every map
    and target of the image gets the same noise, whatever its fixations."""
    noise = _rng(seed, "auc_judd", stream).random(n_pixels)
    noise /= _JITTER_DIVISOR
    noise.setflags(write=False)
    return noise


def _count_at_least(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of ``sorted_values`` (ascending) are ``>=`` each threshold: MATLAB's
    ``sum(S >= thresh)``, an exact count however the values were sorted or counted."""
    return sorted_values.size - np.searchsorted(sorted_values, thresholds, side="left")


def _auc_judd(s: _Map, fix: _Fixations, jitter: bool, seed: int, variant: str, stream: tuple[str, ...] = ()) -> float:
    n_fix = len(fix)
    if not n_fix:
        return _undefined("auc_judd", "the fixation map is empty")
    if n_fix == s.flat.size:
        return _undefined("auc_judd", "every pixel is fixated (no negatives)")
    if not jitter and s.is_constant:
        return _undefined("auc_judd", "the saliency map is constant and jitter is off")
    if jitter:  # min-max first, so the jitter is 1e-7 of the map's range (a constant map: all zeros)
        values = s.minmax()
        values += _judd_noise(seed, s.flat.size, stream)
    else:  # min-max keeps the order (and rounding it could merge distinct values): the raw values
        values = s.flat
    fixated = values[fix.index]
    order = np.argsort(fixated)[::-1]
    positives = fixated[order]
    return _judd_area(positives, _count_at_least(np.sort(values), positives), fix.counts[order], s.flat.size, variant)


def _judd_area(positives: np.ndarray, at_least: np.ndarray, weights: np.ndarray, n_pixels: int, variant: str) -> float:
    """AUC-Judd's ROC area from its thresholds.

    ``positives`` ``(N_fix,)`` are the (jittered) values at the fixated pixels sorted descending,
    ``at_least`` how many of the map's pixels are ``>=`` each, ``weights`` each pixel's fixation
    count in the same order.
    """
    n_fix = positives.size
    n_negatives = n_pixels - n_fix
    if variant == "mit":
        rank = np.arange(1, n_fix + 1)
        tp = rank / n_fix
        fp = (at_least - rank) / n_negatives
    else:
        # Tie-aware: at each distinct threshold count every positive >= it (last of its tie group).
        last_of_group = np.append(positives[1:] != positives[:-1], True)
        tp = np.cumsum(weights)[last_of_group] / weights.sum()
        fixated_at_least = np.arange(1, n_fix + 1)[last_of_group]
        fp = (at_least[last_of_group] - fixated_at_least) / n_negatives
    tp = np.concatenate(([0.0], tp, [1.0]))
    fp = np.concatenate(([0.0], fp, [1.0]))
    return float(_trapezoid(tp, fp))


def _thresholds(step: float) -> np.ndarray:
    """MATLAB ``0:step:1``, the threshold grid of the Borji AUCs on a min-max scaled map.

    MATLAB stops at the largest sampled value instead of 1; thresholds above it add only repeated
    (0, 0) points to the ROC, which have no area, so one grid serves every split. ``k * step`` may
    differ from MATLAB's colon in the last bit, which matters only for a value exactly on a threshold.
    """
    return step * np.arange(int(np.floor(1.0 / step + 1e-9)) + 1)


def _threshold_codes(scaled_values, step: float) -> np.ndarray:
    """For min-max scaled values (any shape), how many thresholds of :func:`_thresholds` are ``<=``
    each: value ``>= thresholds[k]`` exactly when its code is ``> k``."""
    return np.searchsorted(_thresholds(step), scaled_values, side="right")


def _fraction_at_least(codes: np.ndarray, n_thresholds: int, n_values: np.ndarray | None = None) -> np.ndarray:
    """Per row of threshold codes ``(R, M)``: the fraction of values ``>=`` each threshold, ``(R, K)``.

    Rows may be padded: codes above ``n_thresholds`` are ignored, and ``n_values`` ``(R,)`` gives each
    row's number of values (default ``M``).
    """
    n_rows, width = codes.shape
    n_bins = n_thresholds + 2  # the last bin collects the padding
    offsets = n_bins * np.arange(n_rows)[:, None]
    counts = np.bincount((np.minimum(codes, n_thresholds + 1) + offsets).ravel(), minlength=n_rows * n_bins)
    counts = counts.reshape(n_rows, n_bins)[:, :-1]
    at_least = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1][:, 1:]
    return at_least / (width if n_values is None else n_values[:, None])


def _split_areas(tp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """ROC area of every split of the Borji AUCs, for any leading axes (e.g. one per map).

    ``tp`` ``(..., K)``: fraction of positives ``>=`` each threshold; ``fp`` ``(..., n_splits, K)``:
    the same for each split's negatives. Returns ``(..., n_splits)``; the AUC is their mean.
    """
    # ROC points from the highest threshold down, framed by (0, 0) and (1, 1) as in MATLAB
    zeros, ones = np.zeros((*fp.shape[:-1], 1)), np.ones((*fp.shape[:-1], 1))
    x = np.concatenate((zeros, fp[..., ::-1], ones), axis=-1)
    y = np.concatenate((zeros, np.broadcast_to(tp[..., None, ::-1], fp.shape), ones), axis=-1)
    return _trapezoid(y, x)


def monte_carlo_se(split_areas) -> np.ndarray:
    """Monte-Carlo standard error of a sampled AUC: ``std(areas, ddof=1) / sqrt(n_splits)``.

    Parameters
    ----------
    split_areas : array_like, shape (..., n_splits)
        The ROC area of each random split (the AUC is their mean).

    Returns
    -------
    numpy.ndarray, shape (...)
        NaN with fewer than two splits. The error of a mean of ``n`` independently drawn AUCs is
        ``sqrt(sum(se_i ** 2)) / n``.
    """
    areas = np.asarray(split_areas, dtype=np.float64)
    n_splits = areas.shape[-1]
    if n_splits < 2:
        return np.full(areas.shape[:-1], np.nan)
    return areas.std(axis=-1, ddof=1) / np.sqrt(n_splits)


def _auc_sampled(s: _Map, fix: _Fixations, negative_index: np.ndarray, step: float) -> np.ndarray:
    """Each split's AUC ``(n_splits,)``; ``negative_index`` is ``(n_splits, n_negatives)`` flat
    pixel indices."""
    n_thresholds = _thresholds(step).size
    tp = _fraction_at_least(_threshold_codes(s.minmax_at(fix.index)[None, :], step), n_thresholds)[0]
    fp = _fraction_at_least(_threshold_codes(s.minmax_at(negative_index), step), n_thresholds)
    return _split_areas(tp, fp)


def _borji_negatives(
    seed: int, n_pixels: int, n_fixated: int, n_splits: int, stream: tuple[str, ...] = ()
) -> np.ndarray:
    """AUC-Borji's negatives ``(n_splits, n_fixated)``: MATLAB ``randi``, as many uniform pixel draws
    (with replacement) as fixated pixels per split. They depend only on these numbers and the stream,
    not on the map: the first ``n_splits * n_fixated`` draws of the stream."""
    return _rng(seed, "auc_borji", stream).integers(0, n_pixels, size=(n_splits, n_fixated))


def _shuffled_negatives(
    seed: int, other_index: np.ndarray, n_fixated: int, n_splits: int, stream: tuple[str, ...] = ()
) -> np.ndarray:
    """Shuffled AUC's negatives ``(n_splits, min(n_fixated, n_other))``: per split MATLAB's
    ``randperm``, the first ``min(N_fix, N_other)`` of the other-image fixated pixels."""
    return other_index[_shuffled_draws(seed, other_index.size, n_fixated, n_splits, stream)]


def _shuffled_draws(seed: int, n_other: int, n_fixated: int, n_splits: int, stream: tuple[str, ...] = ()) -> np.ndarray:
    """Which of the ``n_other`` other-image pixels each split of shuffled AUC draws (positions)."""
    return _distinct_draws(_rng(seed, "auc_shuffled", stream), n_other, min(n_fixated, n_other), n_splits)


def _auc_borji(
    s: _Map, fix: _Fixations, n_splits: int, step: float, seed: int, stream: tuple[str, ...] = ()
) -> np.ndarray | None:
    """The splits' areas, or None (logged) where AUC-Borji is undefined."""
    if len(fix) <= 1:
        why = f"{len(fix)} fixated pixel(s); MIT needs at least 2"
    elif s.is_constant:
        why = "the saliency map is constant (MIT min-max gives 0/0)"
    else:
        return _auc_sampled(s, fix, _borji_negatives(seed, s.flat.size, len(fix), n_splits, stream), step)
    _undefined("auc_borji", why)
    return None


def _auc_shuffled(
    s: _Map,
    fix: _Fixations,
    other_index: np.ndarray | None,
    n_splits: int,
    step: float,
    seed: int,
    stream: tuple[str, ...] = (),
) -> np.ndarray | None:
    """The splits' areas, or None (logged) where shuffled AUC is undefined (``other_index`` None:
    the target has no other-image fixations)."""
    if other_index is None:
        why = "the target has no other_fixation_map"
    elif not len(fix):
        why = "the fixation map is empty"
    elif not other_index.size:
        why = "other_fixation_map is empty"
    elif s.is_constant:
        why = "the saliency map is constant (MIT min-max gives 0/0)"
    else:
        return _auc_sampled(s, fix, _shuffled_negatives(seed, other_index, len(fix), n_splits, stream), step)
    _undefined("auc_shuffled", why)
    return None


def _mean_of(areas: np.ndarray | None) -> float:
    return float("nan") if areas is None else float(areas.mean())


def _se_of(areas: np.ndarray | None) -> float:
    return float("nan") if areas is None else float(monte_carlo_se(areas))


def _distinct_draws(rng: np.random.Generator, population: int, size: int, n_rows: int) -> np.ndarray:
    """``(n_rows, size)`` indices into ``range(population)``, distinct within a row; each row is a
    uniformly random ``size``-subset (as the first ``size`` entries of MATLAB's ``randperm``).

    Rows are drawn with replacement and repeated entries redrawn until none is left. The procedure
    treats every element alike, so every subset is equally likely; it needs few rounds while
    ``size`` is well below ``population``, and dense draws use permutations instead.
    """
    if 4 * size > population:
        return np.stack([rng.permutation(population)[:size] for _ in range(n_rows)])
    draws = rng.integers(0, population, size=(n_rows, size))
    while True:
        order = np.argsort(draws, axis=1)
        ordered = np.take_along_axis(draws, order, axis=1)
        rows, columns = np.nonzero(ordered[:, 1:] == ordered[:, :-1])
        if not rows.size:
            return draws
        draws[rows, order[rows, columns + 1]] = rng.integers(0, population, size=rows.size)


# --------------------------------------------------------------------------------------------------
# Public metrics, one per definition.
# --------------------------------------------------------------------------------------------------


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")


def _check_splits(n_splits: int, step: float) -> None:
    if not isinstance(n_splits, (int, np.integer)) or n_splits < 1:
        raise ValueError(f"n_splits must be a positive integer; got {n_splits!r}")
    check_positive("step", step)
    if step > 1:
        raise ValueError(f"step must be <= 1 (thresholds sweep [0, 1]); got {step!r}")


def mae(saliency_map, human_map, *, normalize: Literal["minmax", "none"] = "minmax") -> float:
    """Mean absolute error between a map and the human heatmap (paper eq. 15).

    ``MAE = 1 / (W H) * sum_x sum_y |S(x, y) - G(x, y)|``.

    Parameters
    ----------
    saliency_map, human_map : array_like, shape (H, W)
        The network (or baseline) map S and the blurred human heatmap G, finite, any scale.
    normalize : {"minmax", "none"}
        ``"minmax"`` (default, SPEC §2 replication note "Scale of the human map for MAE") scales both
        maps to [0, 1] first; a constant map becomes all zeros. ``"none"`` is the paper-literal
        eq. 15 on the maps as given.

    Returns
    -------
    float
        MAE in the maps' units (in [0, 1] with ``"minmax"``); lower is better.
    """
    check_choice("normalize", normalize, ("minmax", "none"))
    s, h = as_2d_float(saliency_map, "saliency_map"), as_2d_float(human_map, "human_map")
    check_same_shape(saliency_map=s, human_map=h)
    return _mae(_Map(s), _Map(h), normalize)


def nss(saliency_map, fixation_map, *, variant: Variant = "mit") -> float:
    """Normalized scanpath saliency: mean of the z-scored map at fixated pixels (MIT ``NSS.m``).

    Parameters
    ----------
    saliency_map : array_like, shape (H, W)
        Finite, any scale.
    fixation_map : array_like, shape (H, W)
        Fixation counts per pixel (>= 0).
    variant : {"mit", "pysaliency"}
        ``"mit"``: each fixated pixel once, standard deviation with ``N - 1``; NaN for a constant map.
        ``"pysaliency"``: each fixation (repeats weigh more), standard deviation with ``N``; 0 for a
        constant map.

    Returns
    -------
    float
        NSS in standard deviations (0 = chance); NaN for an empty fixation map.
    """
    _check_variant(variant)
    s, f = as_2d_float(saliency_map, "saliency_map"), _as_counts(fixation_map, "fixation_map")
    check_same_shape(saliency_map=s, fixation_map=f)
    return _nss(_Map(s), _Fixations(f), variant)


def cc(saliency_map, human_map, *, variant: Variant = "mit") -> float:
    """Pearson linear correlation coefficient between the two maps (MIT ``CC.m``).

    Parameters
    ----------
    saliency_map, human_map : array_like, shape (H, W)
        Finite, any scale.
    variant : {"mit", "pysaliency"}
        Differ only for constant maps: NaN (MIT), or 0 when only ``saliency_map`` is constant
        (pysaliency).

    Returns
    -------
    float
        In [-1, 1]; NaN when a map is constant (see ``variant``).
    """
    _check_variant(variant)
    s, h = as_2d_float(saliency_map, "saliency_map"), as_2d_float(human_map, "human_map")
    check_same_shape(saliency_map=s, human_map=h)
    return _cc(_Map(s), _Map(h), variant)


def sim(saliency_map, human_map, *, variant: Variant = "mit") -> float:
    """Similarity (histogram intersection) of the two maps as distributions (MIT ``similarity.m``).

    ``SIM = sum_i min(P_i, Q_i)`` with P, Q the maps turned into distributions.

    Parameters
    ----------
    saliency_map, human_map : array_like, shape (H, W)
        Finite, any scale.
    variant : {"mit", "pysaliency"}
        ``"mit"``: min-max scale each map to [0, 1], then divide by its sum (an all-zero map stays
        zero; a constant non-zero map gives NaN). ``"pysaliency"``: shift a map with negative values
        to minimum 0, divide by its sum (an all-zero map becomes uniform).

    Returns
    -------
    float
        In [0, 1]; 1 for identical distributions.
    """
    _check_variant(variant)
    s, h = as_2d_float(saliency_map, "saliency_map"), as_2d_float(human_map, "human_map")
    check_same_shape(saliency_map=s, human_map=h)
    return _sim(_Map(s), _Map(h), variant)


def kl_div(saliency_map, human_map, *, variant: Variant = "mit") -> float:
    """Image-based KL divergence KL(human || saliency) of the maps as distributions (MIT ``KLdiv.m``).

    ``"mit"``: ``P = S / sum(S)``, ``Q = G / sum(G)`` (an all-zero map stays zero),
    ``KL = sum_i Q_i log(eps + Q_i / (P_i + eps))`` with MATLAB ``eps``.
    ``"pysaliency"`` (its default image-based KL): ``P = (S + 1e-20) / sum``, likewise Q,
    ``KL = sum_i Q_i (log Q_i - log P_i)``. Maps with negative values are first shifted to minimum 0.

    Parameters
    ----------
    saliency_map, human_map : array_like, shape (H, W)
        Finite, any scale.
    variant : {"mit", "pysaliency"}

    Returns
    -------
    float
        KL divergence in nats (>= 0 up to the epsilons); lower is better.
    """
    _check_variant(variant)
    s, h = as_2d_float(saliency_map, "saliency_map"), as_2d_float(human_map, "human_map")
    check_same_shape(saliency_map=s, human_map=h)
    return _kl_div(_Map(s), _Map(h), variant)


def auc_judd(
    saliency_map,
    fixation_map,
    *,
    jitter: bool = True,
    seed: int = 0,
    variant: Variant = "mit",
    stream: tuple[str, ...] | list[str] = (),
) -> float:
    """Area under the ROC curve, thresholds at the fixated values (MIT ``AUC_Judd.m``).

    Positives are the fixated pixels; negatives all other pixels. ``"mit"`` uses each fixated pixel
    once and MIT's ``tp = i / N`` sweep; ``"pysaliency"`` weighs each pixel by its fixation count and
    counts ties exactly (as ``SaliencyMapModel.AUC_Judd``).

    Parameters
    ----------
    saliency_map : array_like, shape (H, W)
        Finite, any scale: it is min-max scaled to [0, 1] before the jitter (``U[0, 1) / 1e7`` per
        pixel, MATLAB's), as the MIT benchmark's maps, saved as 8-bit images, are; so the result
        does not depend on the map's scale.
    fixation_map : array_like, shape (H, W)
        Fixation counts per pixel (>= 0).
    jitter : bool
        Break ties with the seeded jitter (MIT default). Without it a constant map gives NaN.
    seed : int
        Seed of the jitter.
    variant : {"mit", "pysaliency"}
    stream : tuple of str
        Names the jitter's random stream with the seed (the pipeline passes ``(image,)``).

    Returns
    -------
    float
        AUC in [0, 1], 0.5 = chance; NaN for an empty fixation map.
    """
    _check_variant(variant)
    _check_seed(seed)
    stream = _check_stream(stream)
    s, f = as_2d_float(saliency_map, "saliency_map"), _as_counts(fixation_map, "fixation_map")
    check_same_shape(saliency_map=s, fixation_map=f)
    return _auc_judd(_Map(s), _Fixations(f), jitter, seed, variant, stream)


def auc_borji(
    saliency_map,
    fixation_map,
    *,
    n_splits: int = 100,
    step: float = 0.1,
    seed: int = 0,
    stream: tuple[str, ...] | list[str] = (),
) -> float:
    """AUC against uniformly sampled pixels, averaged over random splits (MIT ``AUC_Borji.m``).

    The map is min-max scaled to [0, 1]; thresholds sweep ``0:step:1``; each split draws as many
    pixels (uniformly, with replacement) as there are fixated pixels. Fixated pixels count once.

    Parameters
    ----------
    saliency_map : array_like, shape (H, W)
        Finite, any scale.
    fixation_map : array_like, shape (H, W)
        Fixation counts per pixel (>= 0); needs at least 2 fixated pixels (MIT), else NaN.
    n_splits : int
        Number of random negative sets.
    step : float
        Threshold step on the [0, 1] scaled map, in (0, 1].
    seed : int
        Seed of the sampling.
    stream : tuple of str
        Names the random stream with the seed (the pipeline passes ``(image,)`` or
        ``(image, participant)``), so that every target draws its own negatives.

    Returns
    -------
    float
        Mean AUC over the splits; NaN for a constant map.
    """
    _check_splits(n_splits, step)
    _check_seed(seed)
    stream = _check_stream(stream)
    s, f = as_2d_float(saliency_map, "saliency_map"), _as_counts(fixation_map, "fixation_map")
    check_same_shape(saliency_map=s, fixation_map=f)
    return _mean_of(_auc_borji(_Map(s), _Fixations(f), n_splits, step, seed, stream))


def auc_shuffled(
    saliency_map,
    fixation_map,
    other_fixation_map,
    *,
    n_splits: int = 100,
    step: float = 0.1,
    seed: int = 0,
    stream: tuple[str, ...] | list[str] = (),
) -> float:
    """Shuffled AUC: negatives are fixated pixels of other images (MIT ``AUC_shuffled.m``).

    As :func:`auc_borji`, except that each split draws, without replacement, ``min(N_fix, N_other)``
    of the pixels fixated on other images; this discounts centre bias.

    Parameters
    ----------
    saliency_map : array_like, shape (H, W)
        Finite, any scale.
    fixation_map : array_like, shape (H, W)
        Fixation counts per pixel (>= 0).
    other_fixation_map : array_like, shape (H, W)
        Counts of fixations made on other images, already mapped onto this image's pixel grid
        (binarised, as MIT's ``otherMap``).
    n_splits, step, seed, stream
        As :func:`auc_borji`.

    Returns
    -------
    float
        Mean AUC over the splits; NaN for a constant map or an empty fixation map.
    """
    _check_splits(n_splits, step)
    _check_seed(seed)
    stream = _check_stream(stream)
    s, f = as_2d_float(saliency_map, "saliency_map"), _as_counts(fixation_map, "fixation_map")
    other = _as_counts(other_fixation_map, "other_fixation_map")
    check_same_shape(saliency_map=s, fixation_map=f, other_fixation_map=other)
    other_index = np.flatnonzero(other.ravel() > 0)
    return _mean_of(_auc_shuffled(_Map(s), _Fixations(f), other_index, n_splits, step, seed, stream))


def info_gain(saliency_map, fixation_map, baseline_map, *, variant: Variant = "mit", densities: bool = False) -> float:
    """Information gain of the map over a baseline at the fixations, in bits (MIT ``InfoGain.m``).

    ``"mit"``: both maps min-max scaled, divided by their sums into P and B, then
    ``IG = mean over fixated pixels of log2(eps + P) - log2(eps + B)``. ``"pysaliency"``: maps
    divided by their sums (negative maps shifted), mean over fixations (repeats weigh more) without
    epsilon, as ``information_gain`` of a ``SaliencyMapNormalizingModel``. With ``densities`` both
    maps are probability densities (:func:`analysis.density.to_density`): they are only divided by
    their sums, since min-max would shift them (Kümmerer et al., PNAS 2015).

    Parameters
    ----------
    saliency_map, baseline_map : array_like, shape (H, W)
        Finite, any scale. The baseline is usually a centre-bias map.
    fixation_map : array_like, shape (H, W)
        Fixation counts per pixel (>= 0).
    variant : {"mit", "pysaliency"}

    Returns
    -------
    float
        Bits per fixation (0 = no better than the baseline); NaN for an empty fixation map or (MIT)
        a constant map.
    """
    _check_variant(variant)
    s, f = as_2d_float(saliency_map, "saliency_map"), _as_counts(fixation_map, "fixation_map")
    b = as_2d_float(baseline_map, "baseline_map")
    check_same_shape(saliency_map=s, fixation_map=f, baseline_map=b)
    if densities:
        _check_density(s, "saliency_map")
        _check_density(b, "baseline_map")
        return _info_gain_of_densities(_Map(s), _Fixations(f), _Map(b), variant)
    return _info_gain(_Map(s), _Fixations(f), _Map(b), variant)


def _check_density(values: np.ndarray, name: str) -> None:
    if values.min() < 0:
        raise ValueError(
            f"{name} must be a density (>= 0); got minimum {values.min()!r}: convert it with "
            "analysis.density.to_density"
        )


# --------------------------------------------------------------------------------------------------
# All metrics for one map against one image's human data.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class HumanTarget:
    """Everything a map is scored against, for one image; validated once, reusable for many maps.

    Parameters
    ----------
    human_map : array_like, shape (H, W)
        The blurred human heatmap (any scale).
    fixation_map : array_like, shape (H, W)
        Fixation counts per pixel (>= 0), in image pixels.
    other_fixation_map : array_like, shape (H, W), optional
        Counts of fixations from other images on this image's grid, for shuffled AUC.
    baseline_map : array_like, shape (H, W), optional
        The information-gain baseline (centre bias by default in the pipeline).

    Notes
    -----
    The arrays are validated and kept as float64 (converted only when given another dtype, so usually
    the caller's own arrays: do not modify them afterwards). Scalars of the human data (range, sums,
    moments), the fixated pixels and the other-image fixated pixels are computed on first use and kept,
    so scoring many maps against one target repeats none of that work, while a target holds no
    array beyond its inputs. ``eq=False``: arrays have no single truth value.
    """

    human_map: np.ndarray
    fixation_map: np.ndarray
    other_fixation_map: np.ndarray | None = None
    baseline_map: np.ndarray | None = None

    def __post_init__(self) -> None:
        arrays = {
            "human_map": as_2d_float(self.human_map, "human_map"),
            "fixation_map": _as_counts(self.fixation_map, "fixation_map"),
        }
        if self.other_fixation_map is not None:
            arrays["other_fixation_map"] = _as_counts(self.other_fixation_map, "other_fixation_map")
        if self.baseline_map is not None:
            arrays["baseline_map"] = as_2d_float(self.baseline_map, "baseline_map")
        check_same_shape(**arrays)
        for name, array in arrays.items():
            object.__setattr__(self, name, array)

    @property
    def shape(self) -> tuple[int, int]:
        return self.human_map.shape

    @cached_property
    def _human(self) -> _Map:
        return _Map(self.human_map)

    @cached_property
    def _fixations(self) -> _Fixations:
        return _Fixations(self.fixation_map)

    @cached_property
    def _other_index(self) -> np.ndarray | None:
        if self.other_fixation_map is None:
            return None
        return np.flatnonzero(self.other_fixation_map.ravel() > 0)

    @cached_property
    def _baseline(self) -> _Map | None:
        return None if self.baseline_map is None else _Map(self.baseline_map)


@overload
def score_map(
    saliency_map,
    target: HumanTarget,
    *,
    metrics: tuple[str, ...] | list[str] = ...,
    seed: int = ...,
    variant: Variant = ...,
    mae_normalize: Literal["minmax", "none"] = ...,
    stream: tuple[str, ...] | list[str] = ...,
    return_mc_se: Literal[False] = ...,
    density=...,
) -> dict[str, float]: ...


@overload
def score_map(
    saliency_map,
    target: HumanTarget,
    *,
    metrics: tuple[str, ...] | list[str] = ...,
    seed: int = ...,
    variant: Variant = ...,
    mae_normalize: Literal["minmax", "none"] = ...,
    stream: tuple[str, ...] | list[str] = ...,
    return_mc_se: Literal[True],
    density=...,
) -> tuple[dict[str, float], dict[str, float]]: ...


def score_map(
    saliency_map,
    target: HumanTarget,
    *,
    metrics: tuple[str, ...] | list[str] = METRICS,
    seed: int = 0,
    variant: Variant = "mit",
    mae_normalize: Literal["minmax", "none"] = "minmax",
    stream: tuple[str, ...] | list[str] = (),
    return_mc_se: bool = False,
    density=None,
) -> dict[str, float] | tuple[dict[str, float], dict[str, float]]:
    """Score one map against one image's human data with several metrics, sharing the work.

    The map is validated and flattened once; its range, mean-centred copy and scaled versions are
    computed once for every metric that needs them. AUC-Borji and shuffled AUC use MIT's definitions
    (100 splits, step 0.1) under either ``variant``. This is what the offline analysis and the live
    server call.

    Parameters
    ----------
    saliency_map : array_like, shape (H, W)
        Finite, any scale, already at the target's ``(H, W)`` (upsample CNN maps first).
    target : HumanTarget
        The image's human heatmap, fixations and optional shuffled-AUC / information-gain inputs.
    metrics : sequence of str
        Names from :data:`METRICS`, in the order wanted.
    seed : int
        Seed of the random parts (AUC-Judd jitter, AUC-Borji and shuffled-AUC sampling); each metric
        uses its own stream, so a value equals the one its standalone function gives with this seed.
    variant : {"mit", "pysaliency"}
        Passed to the metrics that have one.
    mae_normalize : {"minmax", "none"}
        Passed to :func:`mae` as ``normalize`` (``"none"`` is the paper-literal MAE).
    stream : tuple of str
        Names the random streams with the seed: ``(image,)`` for the pooled target,
        ``(image, participant)`` for one participant's (the AUC-Judd jitter takes the image alone:
        ``stream[:1]``), so that every image and participant draws independently.
    return_mc_se : bool
        Also return the Monte-Carlo standard error of each sampled AUC asked for
        (:data:`SAMPLED_METRICS`, :func:`monte_carlo_se`).
    density : array_like, shape (H, W), optional
        The map as a probability density (:func:`analysis.density.to_density`). When given, KL
        divergence and information gain use it instead of the map, and the target's
        ``baseline_map`` must be a density too (:func:`info_gain` with ``densities``).

    Returns
    -------
    dict, or (dict, dict) with ``return_mc_se``
        ``{metric: value}`` in the order of ``metrics``. A metric that is undefined for these inputs
        (constant map, empty fixations) or whose input the target lacks (``other_fixation_map`` for
        ``auc_shuffled``, ``baseline_map`` for ``info_gain``) is NaN, with an INFO log line. The
        second dict holds ``{metric: standard error}`` of the sampled AUCs (NaN where undefined).
    """
    _check_variant(variant)
    _check_seed(seed)
    stream = _check_stream(stream)
    check_choice("mae_normalize", mae_normalize, ("minmax", "none"))
    unknown = [name for name in metrics if name not in METRICS]
    if unknown:
        raise ValueError(f"metrics must be names from {METRICS}; got unknown {unknown}")
    if not isinstance(target, HumanTarget):
        raise TypeError(f"target must be a HumanTarget; got {type(target).__name__}")
    s_array = as_2d_float(saliency_map, "saliency_map")
    check_same_shape(saliency_map=s_array, target=target.human_map)
    s = _Map(s_array)
    p = s
    if density is not None:
        p_array = as_2d_float(density, "density")
        check_same_shape(density=p_array, target=target.human_map)
        _check_density(p_array, "density")
        if target.baseline_map is not None:
            _check_density(target.baseline_map, "target.baseline_map")
        p = _Map(p_array)

    def gain() -> float:
        if target._baseline is None:
            return _undefined("info_gain", "the target has no baseline_map")
        if density is not None:
            return _info_gain_of_densities(p, fix, target._baseline, variant)
        return _info_gain(s, fix, target._baseline, variant)

    human, fix = target._human, target._fixations
    compute: dict[str, Callable[[], float]] = {
        "mae": lambda: _mae(s, human, mae_normalize),
        "nss": lambda: _nss(s, fix, variant),
        "cc": lambda: _cc(s, human, variant),
        "sim": lambda: _sim(s, human, variant),
        "kl_div": lambda: _kl_div(p, human, variant),
        "auc_judd": lambda: _auc_judd(s, fix, True, seed, variant, stream[:1]),
        "info_gain": gain,
    }
    # the sampled AUCs (SAMPLED_METRICS): their splits' areas, None where undefined
    sample: dict[str, Callable[[], np.ndarray | None]] = {
        "auc_borji": lambda: _auc_borji(s, fix, 100, 0.1, seed, stream),
        "auc_shuffled": lambda: _auc_shuffled(s, fix, target._other_index, 100, 0.1, seed, stream),
    }
    scores: dict[str, float] = {}
    areas: dict[str, np.ndarray | None] = {}
    for name in metrics:  # in the order asked for (the order of the INFO lines)
        if name in sample:
            areas[name] = sample[name]()
            scores[name] = _mean_of(areas[name])
        else:
            scores[name] = compute[name]()
    if not return_mc_se:
        return scores
    return scores, {name: _se_of(split_areas) for name, split_areas in areas.items()}
