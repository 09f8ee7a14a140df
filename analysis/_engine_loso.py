"""The human ceiling of the incremental engine (:mod:`analysis.engine`), all participants at once.

For each participant ``p`` the map is the others' heatmap ``X = (pooled raw - own raw) * a + b``
(normalised like a heatmap of the others' fixations) and the target is ``p``'s own heatmap and
fixations, as :func:`analysis.baselines.leave_one_out_groups` with :func:`analysis.metrics.score_map`.
Every fixation changes every participant's ``X`` (and its normalisation), so this runs per query.

Where ``p``'s own heatmap is zero ``X`` is the pooled raw transformed, so on the CPU the metrics
run over ``p``'s support only (a row of a padded ``(participants, pixels)`` batch) plus whole-image
scalars; AUC-Judd's counts over the rest of the image come from the pooled raw kept sorted
(:class:`analysis._engine_sorted.SortedValues`). The CPU scores one participant per batch (arrays
that stay in the cache; two threads); a GPU scores all of them in one batch over every pixel (few
kernel launches, few transfers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from analysis._engine_backend import in_two_threads
from analysis._engine_sorted import SortedValues
from analysis._engine_state import (
    N_THRESHOLDS,
    NOISE_MAX,
    STEP,
    Heatmap,
    MapStats,
    Target,
    heatmap_transform,
    lookup,
    sorted_noise,
)
from analysis.metrics import (
    _PYSALIENCY_KL_MINIMUM,
    MATLAB_EPS,
    _Affine,
    _cc_from,
    _density,
    _fraction_at_least,
    _judd_area,
    _minmax_values,
    _nss_from,
    _sim_density,
    _split_areas,
    _threshold_codes,
    _undefined,
    monte_carlo_se,
)

if TYPE_CHECKING:  # the engine imports this module
    from analysis.engine import ImageEngine

__all__ = ["HumanCeiling", "Workspace"]

#: Above this many comparisons, AUC-Judd counts compare one threshold at a time.
_MAX_COMPARISONS = 50_000_000


@dataclass
class _Batch:
    """Participants scored together, as the rows of ``(P, L)`` arrays: one participant over their
    support pixels (``pixels``, CPU), or every participant over every pixel (``pixels`` None)."""

    names: list[str]
    owns: list[Heatmap]
    targets: list[Target]
    pixels: np.ndarray | None


class HumanCeiling:
    """Scores of every participant against the others' heatmap; see the module docstring."""

    def __init__(self, engine: ImageEngine) -> None:
        self.engine, self.be = engine, engine._be
        self.n = engine._layout.n_pixels
        self.pooled = engine._pooled
        self.pooled_fixated = self.pooled.fixated()
        self.pooled_total = float(self.be.numpy(self.pooled.total))
        self.pooled_total_sq = float(self.be.numpy(self.pooled.total_sq))
        self.n_outside = self.n - int(self.pooled.support.sum())  # pixels where the pooled raw is 0
        self.noise = engine._maps.noise
        self.sorted = self._sorted_pooled() if self.be.sorted_counts else None

    def scores(self) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        """Participant → metric → score, and participant → sampled metric → Monte-Carlo error."""
        engine = self.engine
        names = engine.participants
        if len(names) < 2:
            return {}, {}
        owns = [engine._own[name] for name in names]
        targets = [engine._target(own, name) for name, own in zip(names, owns)]
        for target in targets:  # fill the caches the batches share before any thread runs
            for metric in ("auc_borji", "auc_shuffled"):
                if metric in engine.metrics and not engine._borji_undefined(metric, target.pixels.size):
                    engine._negatives(metric, target.pixels.size, target.stream)
        batches = self._batches(names, owns, targets)
        workspaces = engine._workspaces
        if self.be.sorted_counts and len(batches) > 1:  # the CPU: two threads (numpy releases the GIL)
            halves = [(batches[::2], workspaces[0]), (batches[1::2], workspaces[1])]
            parts = in_two_threads(lambda half: [self._score_batch(b, half[1]) for b in half[0]], halves)
            results = [r for part in parts for r in part]
        else:
            results = [self._score_batch(batch, workspaces[0]) for batch in batches]
        by_name = {r.name: r for rows in results for r in rows}
        rows = [by_name[name] for name in names]
        # the small per-participant steps, for everyone at once
        sampled: dict[str, tuple[np.ndarray, np.ndarray]] = {
            metric: self._borji(rows, metric) for metric in ("auc_borji", "auc_shuffled") if metric in engine.metrics
        }
        borji = {metric: values for metric, (values, _) in sampled.items()}
        baselines = self._centre_at(rows) if "info_gain" in engine.metrics else None
        scores = {r.name: self._finish(r, borji, baselines, k) for k, r in enumerate(rows)}
        errors = {r.name: {metric: float(se[k]) for metric, (_, se) in sampled.items()} for k, r in enumerate(rows)}
        return scores, errors

    def _centre_at(self, rows) -> list[np.ndarray]:
        """The centre-bias map (the information-gain baseline) at each participant's fixated pixels."""
        maps = self.engine._maps
        values = maps.at(np.concatenate([r.target.pixels for r in rows]))[maps.names.index("center_bias")]
        return np.split(values, np.cumsum([r.target.pixels.size for r in rows])[:-1])

    # -- batches -------------------------------------------------------------------------------------

    def _batches(self, names, owns, targets) -> list[_Batch]:
        if not self.be.sorted_counts:  # a GPU: everyone, every pixel
            return [_Batch(names, owns, targets, None)]
        # pysaliency makes an all-zero target uniform: then the participant's row is the whole image
        return [
            _Batch([name], [own], [target], np.arange(self.n) if target.empty_map else own.support_pixels())
            for name, own, target in zip(names, owns, targets)
        ]

    def _sorted_pooled(self) -> SortedValues:
        """The pooled raw over its support, sorted (brought up to date with the pending stamps)."""
        engine = self.engine
        pooled, support_noise = engine._sorted, engine._sorted_support_noise
        if pooled is None or support_noise is None:  # made together
            pooled = engine._sorted = SortedValues(self.n)
            support_noise = engine._sorted_support_noise = SortedValues(self.n)  # the noise over the pooled support
        if engine._pending:
            pixels = np.unique(np.concatenate([engine._layout.pixels_of(w) for w in engine._pending]))
            pooled.replace(pixels, self.pooled.raw_ext[pixels])
            new = pixels[~support_noise.contains(pixels)]
            support_noise.replace(new, self.noise[new])
            engine._pending = []
        return pooled

    # -- one batch -----------------------------------------------------------------------------------

    def _score_batch(self, batch: _Batch, ws: Workspace) -> list[_Row]:
        """The batch's participants with their sums over the rows (:attr:`_Row.sums`)."""
        engine, be, xp, n = self.engine, self.be, self.be.xp, self.n
        wanted = set(engine.metrics)
        if batch.pixels is None:
            shape = (len(batch.names), n)
            pooled = self.pooled.raw_ext[:n].reshape(1, -1)
            own = ws("own", shape)
            for row, o in enumerate(batch.owns):
                own[row] = o.raw_ext[:n]
        else:
            shape = (1, batch.pixels.size)
            index = be.index(batch.pixels)
            pooled = be.take(self.pooled.raw_ext, index, ws("pooled", shape))
            own = be.take(batch.owns[0].raw_ext, index, ws("own", shape))
        x, scratch = ws("x", shape), ws("scratch", shape)
        xp.subtract(pooled, own, out=x)  # the others' raw, until it becomes X below
        # per participant: extremes, sum and cross product of the others' raw over the row
        row_sums = be.numpy(
            xp.stack([be.amin(x, 1), be.amax(x, 1), x.sum(axis=1), xp.multiply(x, own, out=scratch).sum(axis=1)])
        )
        rows = [self._row(batch, k, *row_sums[:, k]) for k in range(len(batch.names))]

        def column(values):  # per-participant scalars as a (P, 1) column
            return be.array(np.asarray(values, dtype=np.float64)).reshape(-1, 1)

        sums = {}
        if "auc_judd" in wanted:  # from the others' raw map, before it becomes X
            sums["auc_judd"] = self._judd_counts(batch, rows, x, pooled, column, ws)
        _affine_into(xp, x, [(0.0, r.a, r.b) for r in rows], column, out=x)  # X = raw * a + b
        h = _affine_into(xp, own, [(0.0, r.target.a, r.target.b) for r in rows], column, out=own)
        if "mae" in wanted:
            sums["mae"] = self._mae_sums(rows, x, h, column, ws)
        for metric in ("sim", "kl_div"):
            if metric in wanted:
                sums[metric] = self._density_sums(rows, x, h, column, metric, ws)
        for r in rows:
            r.x_fixated = self._x_at(r, r.target.pixels)
        if "auc_borji" in wanted or "auc_shuffled" in wanted:
            self._negative_values(rows, wanted)
        for k, r in enumerate(rows):
            r.sums = {metric: values[k] for metric, values in sums.items()}
        return rows

    def _row(self, batch: _Batch, k: int, low: float, high: float, others_sum: float, cross: float) -> _Row:
        """One participant's scalars: the others' normalisation and the scalars of ``X``."""
        engine = self.engine
        own, target = batch.owns[k], batch.targets[k]
        pixels, weights, _ = self.pooled_fixated
        own_pixels, own_weights, _ = own.fixated()
        top = float((weights - lookup(own_pixels, own_weights, pixels)).max(initial=0.0))
        length = self.n if batch.pixels is None else batch.pixels.size
        if length < self.n:  # the rest of the image: the pooled raw outside the participant's support
            assert self.sorted is not None  # kept on the CPU, whose rows are one participant's support
            if self.n_outside:
                low, high = min(low, 0.0), max(high, 0.0)
            for largest in (False, True):
                value = self.sorted.extreme(largest=largest, excluded=own.support)
                if value is not None:
                    low, high = (low, max(high, value)) if largest else (min(low, value), high)
        own_total, own_total_sq = (float(self.be.numpy(x)) for x in (own.total, own.total_sq))
        total = self.pooled_total - own_total
        # sum of squares of pooled - own (the own raw is zero outside the participant's support)
        total_sq = self.pooled_total_sq - 2.0 * cross - own_total_sq
        a, b = heatmap_transform(top, low, high, total, engine.params, what=f"image {engine.image_id}")
        stats = MapStats.from_moments(
            np.float64(low), np.float64(high), np.float64(total), np.float64(total_sq), self.n
        ).transformed(a, b)
        return _Row(
            name=batch.names[k],
            own=own,
            target=target,
            a=a,
            b=b,
            stats=stats,
            length=length,
            x_sum_inside=a * others_sum + length * b,
            others_cross=cross,
            own_total=own_total,
        )

    # -- metrics over the rows -------------------------------------------------------------------------

    def _mae_sums(self, rows, x, h, column, ws: Workspace) -> np.ndarray:
        """MAE's ``sum |x - h|`` over all pixels: the rows, then the rest of the image, where the
        own heatmap is zero and ``|x - 0| = x`` (the others' map is >= its minimum)."""
        be, xp = self.be, self.be.xp
        difference = ws("terms", x.shape)
        if self.engine.mae_normalize == "minmax":
            x_maps = [_scaled_map(r.stats) for r in rows]
            h_maps = [_scaled_map(r.target.stats) for r in rows]
            _affine_into(xp, x, [(0.0, *m) for m in x_maps], column, out=difference)
            xp.subtract(
                difference,
                _affine_into(xp, h, [(0.0, *m) for m in h_maps], column, out=ws("scratch", x.shape)),
                out=difference,
            )
            inside_x = [m[0] * r.x_sum_inside + r.length * m[1] for m, r in zip(x_maps, rows)]
            whole_x = [float(r.stats.minmax_sum) for r in rows]
        else:
            xp.subtract(x, h, out=difference)
            inside_x = [r.x_sum_inside for r in rows]
            whole_x = [float(r.stats.total) for r in rows]
        inside = be.numpy(xp.abs(difference, out=difference).sum(axis=1))
        return inside + np.asarray(whole_x) - np.asarray(inside_x)

    def _density_sums(self, rows, x, h, column, metric: str, ws: Workspace) -> np.ndarray:
        """SIM's ``sum min(p, q)`` or KL's sum, over the rows; the rest of the image adds nothing
        (q = 0 there) except pysaliency KL's tiny ``q(0)`` terms, added by :meth:`_finish`."""
        be, xp = self.be, self.be.xp
        densities = [self._densities(r, metric) for r in rows]
        undefined = [p is None or q is None for p, q in densities]
        p = _affine_into(xp, x, [_affine_parts(p) for p, _ in densities], column, out=ws("terms", x.shape))
        q = _affine_into(xp, h, [_affine_parts(q) for _, q in densities], column, out=ws("scratch", x.shape))
        if metric == "sim":
            terms = xp.minimum(p, q, out=p)
        elif self.engine.variant == "mit":  # q log(eps + q / (p + eps)), as metrics._kl_div
            p += MATLAB_EPS
            terms = xp.divide(q, p, out=p)
            terms += MATLAB_EPS
            terms = xp.multiply(xp.log(terms, out=terms), q, out=terms)
        else:  # q (log q - log p)
            log_q = xp.log(q, out=ws("log q", x.shape))
            terms = xp.subtract(log_q, xp.log(p, out=p), out=p)
            terms = xp.multiply(terms, q, out=terms)
        totals = be.numpy(terms.sum(axis=1))
        return np.where(undefined, np.nan, totals)

    def _densities(self, r: _Row, metric: str) -> tuple[_Affine | None, _Affine | None]:
        n, s, t = self.n, r.stats, r.target.stats
        if metric == "sim" and self.engine.variant == "mit":
            return (
                _sim_density(float(s.lo), float(s.range), float(s.total), n),
                _sim_density(float(t.lo), float(t.range), float(t.total), n),
            )
        if metric == "sim":
            minimum_value, zero_to_uniform = 0.0, True
        elif self.engine.variant == "mit":
            minimum_value, zero_to_uniform = 0.0, False
        else:
            minimum_value, zero_to_uniform = _PYSALIENCY_KL_MINIMUM, True
        p = _density(float(s.lo), float(s.total), n, minimum_value=minimum_value, zero_to_uniform=zero_to_uniform)
        q = _density(float(t.lo), float(t.total), n, minimum_value=minimum_value, zero_to_uniform=zero_to_uniform)
        return p, q

    def _judd_counts(self, batch: _Batch, rows, raw, pooled, column, ws: Workspace) -> np.ndarray:
        """Per participant, how many pixels of the others' map, min-max scaled and jittered, are
        ``>=`` each of its thresholds (its fixated values, scaled and jittered, descending).

        ``raw`` holds the others' raw map over the rows; the scaled map is ``raw * a' + b'``
        (:func:`_judd_scaling`), computed the same way everywhere, so that the pixels of the rows
        subtracted from the whole-image counts are the ones counted there."""
        be, xp, n = self.be, self.be.xp, self.n
        scalings = [_judd_scaling(r) for r in rows]
        thresholds, orders = [], []
        for r, (scale, offset) in zip(rows, scalings):
            values = (self._others_raw_at(r, r.target.pixels) * scale + offset) + self.noise[r.target.pixels]
            order = np.argsort(values)[::-1]
            thresholds.append(values[order])
            orders.append(order)
        width = max(t.size for t in thresholds)
        padded = np.full((len(rows), max(width, 1)), np.inf)
        for k, t in enumerate(thresholds):
            padded[k, : t.size] = t
        noise = self.engine._maps.noise_at()
        if batch.pixels is not None:
            noise = be.take(noise.reshape(-1), be.index(batch.pixels), ws("noise", raw.shape))
        jittered = _affine_into(xp, raw, [(0.0, *scaling) for scaling in scalings], column, out=ws("terms", raw.shape))
        counts = _count_rows(be, xp.add(jittered, noise, out=jittered), padded, ws)
        if batch.pixels is not None and batch.pixels.size < n:
            # the rest of the image, where the others' raw is the pooled raw: every pixel, minus the row's
            _affine_into(xp, pooled, [(0.0, *scaling) for scaling in scalings], column, out=jittered)
            counts -= _count_rows(be, xp.add(jittered, noise, out=jittered), padded, ws)
            counts[0] += self._pooled_counts(*scalings[0], padded[0])
        for k, r in enumerate(rows):
            r.judd = (thresholds[k], counts[k, : thresholds[k].size], orders[k])
        return counts

    def _pooled_counts(self, a: float, b: float, thresholds: np.ndarray) -> np.ndarray:
        """Over every pixel: how many ``(pooled raw * a + b) + noise`` are ``>=`` each threshold
        (sorted pooled raw over its support; outside it the raw is 0). On the CPU only."""
        pooled, support_noise = self.sorted, self.engine._sorted_support_noise
        assert pooled is not None and support_noise is not None  # kept on the CPU (_sorted_pooled)
        finite = np.isfinite(thresholds)
        t = thresholds[finite]
        k = t.size
        counts = np.zeros(thresholds.size, dtype=np.int64)
        counts[finite] = pooled.count_at_least(np.full(k, a), np.full(k, b), t, self.noise, NOISE_MAX)
        value = 0.0 * a + b  # outside the pooled support
        could = np.zeros(thresholds.size, dtype=bool)
        could[finite] = value + NOISE_MAX >= t
        if self.n_outside and could.any():
            ones = np.ones(int(could.sum()))
            noise = sorted_noise(self.engine.seed, self.n, self.engine._maps.image_stream)
            everywhere = SortedValues.of_sorted(noise).count_at_least(
                ones, ones * value, thresholds[could], np.zeros(1), 0.0
            )
            in_support = support_noise.count_at_least(ones, ones * value, thresholds[could], np.zeros(1), 0.0)
            counts[could] += everywhere - in_support
        return counts

    def _x_at(self, r: _Row, pixels: np.ndarray) -> np.ndarray:
        """The others' map ``X`` of row ``r`` at flat ``pixels`` (numpy, any shape)."""
        return self._others_raw_at(r, pixels) * r.a + r.b

    def _others_raw_at(self, r: _Row, pixels: np.ndarray) -> np.ndarray:
        """The others' raw map (pooled raw - own raw) of row ``r`` at flat ``pixels`` (numpy)."""
        index = self.be.index(pixels)
        return self.be.numpy(self.pooled.raw_ext[index] - r.own.raw_ext[index])

    def _negative_values(self, rows, wanted) -> None:
        engine = self.engine
        for r in rows:
            r.negatives = {}
            for metric in ("auc_borji", "auc_shuffled"):
                n_fix = r.target.pixels.size
                if metric in wanted and not engine._borji_undefined(metric, n_fix) and not r.stats.constant:
                    r.negatives[metric] = self._x_at(r, engine._negatives(metric, n_fix, r.target.stream))

    # -- one participant's scores --------------------------------------------------------------------

    def _finish(self, r: _Row, borji: dict, baselines, k: int) -> dict[str, float]:
        engine, n = self.engine, self.n
        s, t = r.stats, r.target.stats
        values = {metric: values[k] for metric, values in borji.items()}
        if "mae" in r.sums:
            values["mae"] = r.sums["mae"] / n
        if "cc" in engine.metrics:
            mean = float(s.mean)
            covariance = r.target.a * (r.a * r.others_cross + (r.b - mean) * r.own_total) + r.target.b * (
                r.x_sum_inside - r.length * mean
            )
            values["cc"] = _cc_from(
                covariance,
                float(s.centered_sum_sq),
                float(t.centered_sum_sq),
                bool(s.constant),
                bool(t.constant),
                engine.variant,
            )
        if "sim" in r.sums:
            values["sim"] = (
                r.sums["sim"]
                if np.isfinite(r.sums["sim"])
                else _undefined("sim", "a map is constant and non-zero (MIT min-max gives 0/0)")
            )
        if "kl_div" in r.sums:
            values["kl_div"] = r.sums["kl_div"] + self._kl_outside(r)
        if "nss" in engine.metrics:
            values["nss"] = _nss_from(
                r.x_fixated - float(s.mean),
                r.target.counts,
                float(s.centered_sum_sq),
                n,
                bool(s.constant),
                engine.variant,
            )
        if "auc_judd" in r.sums:
            values["auc_judd"] = self._judd(r)
        if "info_gain" in engine.metrics:
            stats = MapStats(
                lo=np.array([s.lo]),
                hi=np.array([s.hi]),
                total=np.array([s.total]),
                centered_sum_sq=np.array([s.centered_sum_sq]),
                n_pixels=n,
            )
            values["info_gain"] = engine._info_gain(r.x_fixated[None, :], stats, r.target, baseline=baselines[k])[0]
        return {metric: float(values[metric]) for metric in engine.metrics}

    def _judd(self, r: _Row) -> float:
        n_fix = r.target.pixels.size
        if not n_fix:
            return _undefined("auc_judd", "the fixation map is empty")
        if n_fix == self.n:
            return _undefined("auc_judd", "every pixel is fixated (no negatives)")
        positives, counts, order = r.judd
        return _judd_area(positives, counts, r.target.counts[order], self.n, self.engine.variant)

    def _borji(self, rows, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """AUC-Borji or shuffled AUC of every participant and its Monte-Carlo error: the ragged
        positives and negatives of all participants as padded code arrays (padding coded past the
        thresholds, ignored)."""
        values, errors = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
        defined = []
        for k, r in enumerate(rows):
            undefined = self.engine._borji_undefined(metric, r.target.pixels.size)
            if undefined:
                _undefined(metric, undefined)
            elif r.stats.constant:
                _undefined(metric, "the saliency map is constant (MIT min-max gives 0/0)")
            else:
                defined.append(k)
        if not defined:
            return values, errors
        positives = [self._codes(rows[k], rows[k].x_fixated) for k in defined]
        negatives = [self._codes(rows[k], rows[k].negatives[metric]) for k in defined]
        tp = _fraction_at_least(_padded_codes(positives), N_THRESHOLDS, np.array([c.size for c in positives]))
        widths = np.array([c.shape[1] for c in negatives])
        padded = np.full((len(defined), negatives[0].shape[0], widths.max()), N_THRESHOLDS + 1)
        for row, codes in enumerate(negatives):
            padded[row, :, : codes.shape[1]] = codes
        fp = _fraction_at_least(padded.reshape(-1, widths.max()), N_THRESHOLDS, np.repeat(widths, padded.shape[1]))
        areas = _split_areas(tp, fp.reshape(len(defined), padded.shape[1], -1))
        values[defined], errors[defined] = areas.mean(axis=-1), monte_carlo_se(areas)
        return values, errors

    @staticmethod
    def _codes(r: _Row, values: np.ndarray) -> np.ndarray:
        """Borji threshold codes of the others' map values (min-max scaled as the whole map)."""
        return _threshold_codes(_minmax_values(values, float(r.stats.lo), float(r.stats.range)), STEP)

    def _kl_outside(self, r: _Row) -> float:
        """pysaliency KL's terms outside the participant's support, where q is ``q(0)`` (1e-20 over
        the sum): ``q(0) * sum(log q(0) - log p)`` with ``p`` from the pooled raw there."""
        n, s, t = self.n, r.stats, r.target.stats
        n_outside = n - r.length
        if self.engine.variant == "mit" or not n_outside:
            return 0.0
        p_density = _density(float(s.lo), float(s.total), n, minimum_value=_PYSALIENCY_KL_MINIMUM, zero_to_uniform=True)
        q_density = _density(float(t.lo), float(t.total), n, minimum_value=_PYSALIENCY_KL_MINIMUM, zero_to_uniform=True)
        q0 = float(q_density(np.zeros(1))[0])
        outside = np.setdiff1d(np.arange(n), r.own.support_pixels()) if r.b != 0.0 else None
        if outside is not None:
            raw = self.be.numpy(self.pooled.raw_ext[self.be.index(outside)])
            log_p = float(np.log(p_density(raw * r.a + r.b)).sum())
        else:
            n_positive, log_total = self._pooled_log_stats()
            inside = self.be.numpy(self.pooled.raw_ext[self.be.index(r.own.support_pixels())])
            positive_inside = inside[inside > 0]
            n_positive_outside = n_positive - positive_inside.size
            log_raw_outside = log_total - float(np.log(positive_inside).sum())
            # log((raw * a + 1e-20) * scale) = log(a) + log(raw) + log(scale) where raw * a >> 1e-20
            log_p = (
                n_positive_outside * (math.log(r.a) + math.log(p_density.scale))
                + log_raw_outside
                + (n_outside - n_positive_outside) * math.log(p_density(np.zeros(1))[0])
            )
        return q0 * (n_outside * math.log(q0) - log_p)

    def _pooled_log_stats(self) -> tuple[int, float]:
        """Pixels where the pooled raw is > 0, and the sum of its log there (pysaliency KL)."""
        if not hasattr(self, "_pooled_logs"):
            raw = self.be.numpy(self.pooled.raw_ext[self.be.index(self.pooled.support_pixels())])
            positive = raw[raw > 0]
            self._pooled_logs = (positive.size, float(np.log(positive).sum()))
        return self._pooled_logs


@dataclass
class _Row:
    """One participant of a batch: the others' normalisation ``X = raw * a + b`` and its scalars."""

    name: str
    own: Heatmap
    target: Target
    a: float
    b: float
    stats: MapStats
    length: int  # pixels in the participant's row (their support, or the whole image)
    x_sum_inside: float  # sum of X over the row
    others_cross: float  # sum((pooled - own) * own)
    own_total: float
    # set by HumanCeiling._score_batch: the others' map at the fixated pixels, the sums over the
    # row per metric, AUC-Borji's negatives per sampled metric, AUC-Judd's (thresholds, counts,
    # order) when asked for
    x_fixated: np.ndarray = field(init=False)
    sums: dict[str, float] = field(init=False)
    negatives: dict[str, np.ndarray] = field(init=False)
    judd: tuple[np.ndarray, np.ndarray, np.ndarray] = field(init=False)


def _padded_codes(rows: list[np.ndarray]) -> np.ndarray:
    """Ragged code rows as one ``(R, width)`` array, padded with a code past every threshold."""
    padded = np.full((len(rows), max(max(r.size for r in rows), 1)), N_THRESHOLDS + 1)
    for k, codes in enumerate(rows):
        padded[k, : codes.size] = codes
    return padded


def _judd_scaling(r: _Row) -> tuple[float, float]:
    """``(a', b')`` with ``raw * a' + b'`` the others' map ``X = raw * a + b`` min-max scaled, as
    AUC-Judd scales a map before its jitter (0 for a constant ``X``)."""
    if r.stats.constant:
        return 0.0, 0.0
    value_range, lo = float(r.stats.range), float(r.stats.lo)
    return r.a / value_range, (r.b - lo) / value_range


def _scaled_map(stats: MapStats) -> tuple[float, float]:
    """``(scale, offset)`` with ``x * scale + offset`` the min-max scaling of a map with these
    scalars (all zero for a constant map)."""
    if stats.constant:
        return 0.0, 0.0
    value_range = float(stats.range)
    return 1.0 / value_range, -float(stats.lo) / value_range


def _affine_parts(density: _Affine | None) -> tuple[float, float, float]:
    """``(offset, scale, constant)`` with ``(x + offset) * scale + constant`` equal to ``density``
    (zeros for an undefined one, whose result is replaced by NaN)."""
    if density is None:
        return 0.0, 0.0, 0.0
    if density.constant is not None:
        return 0.0, 0.0, density.constant
    return density.offset, density.scale, 0.0


def _count_rows(be, values, thresholds: np.ndarray, ws: Workspace) -> np.ndarray:
    """``counts[p, k]``: how many of row ``p`` of ``values`` ``(P, L)`` are ``>=`` ``thresholds[p, k]``."""
    t = be.array(thresholds)
    n_rows, length = values.shape
    if n_rows * length * t.shape[1] <= _MAX_COMPARISONS:
        above = be.xp.greater_equal(
            values[:, None, :], t[:, :, None], out=ws("above", (n_rows, t.shape[1], length), dtype=bool)
        )
        counts = be.count_nonzero(above, 2)
    else:
        above = ws("above", (n_rows, length), dtype=bool)
        counts = be.xp.stack(
            [be.count_nonzero(be.xp.greater_equal(values, t[:, k : k + 1], out=above), 1) for k in range(t.shape[1])], 1
        )
    return be.numpy(counts).astype(np.int64)


def _affine_into(xp, values, parts: list[tuple[float, float, float]], column, *, out):
    """``(values + offset) * scale + constant`` per row, written to ``out`` (zero terms skipped).
    ``parts``: one ``(offset, scale, constant)`` per row."""
    offsets, scales, constants = zip(*parts)
    if any(offsets):
        xp.add(values, column(offsets), out=out)
        xp.multiply(out, column(scales), out=out)
    else:
        xp.multiply(values, column(scales), out=out)
    if any(constants):
        xp.add(out, column(constants), out=out)
    return out


class Workspace:
    """Scratch arrays reused across participants and queries. On the CPU a fresh temporary the size
    of a participant's support (~40k values) is mapped and page-faulted anew each time, which costs
    more than the arithmetic on it."""

    def __init__(self, be) -> None:
        self.be = be
        self._store: dict = {}

    def __call__(self, name: str, shape: tuple[int, ...], dtype=np.float64):
        size = int(np.prod(shape))
        store = self._store.get(name)
        if store is None or store.shape[0] < size:
            store = self.be.zeros(max(size, 0 if store is None else 2 * store.shape[0]), dtype=dtype)
            self._store[name] = store
        return store[:size].reshape(shape)
