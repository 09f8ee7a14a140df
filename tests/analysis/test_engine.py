"""The incremental engine equals the full recomputation after every fixation.

Oracle: ``tests/analysis/_reference.py``, the former :func:`analysis.offline.score_image`: every
heatmap rebuilt by :func:`analysis.heatmap.heatmap`, every map scored by
:func:`analysis.metrics.score_map` (whose definitions ``test_metrics.py`` checks against the MIT
benchmark and pysaliency). Deterministic metrics must agree to 1e-9, the seeded random AUCs exactly.

Data: real OSIE fixations (four observers, three images) on a quarter-size grid (200x150 pixels,
kernel 20 px, sigma 5 px) so that the reference can run after each fixation; the model maps are
synthetic (uniform noise, ties on a zero background, a smooth map). One test runs at full size.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from analysis.density import DensityParams
from analysis.engine import ImageEngine
from analysis.heatmap import HeatmapParams
from analysis.metrics import METRICS
from analysis.offline import score_image, without_selection
from analysis.readers import read_osie
from tests.analysis._reference import reference_human_gold, reference_participant_scores, reference_score_image

SCALE = 4
IMAGES = ("1001", "1002", "1003")
SHAPE = (600 // SCALE, 800 // SCALE)
PARAMS = without_selection(HeatmapParams(sigma_px=20 / SCALE, kernel_size_px=80 // SCALE))
RANDOM_METRICS = ("auc_judd", "auc_borji", "auc_shuffled")

# pysaliency's KL of the map with negative values is inf: the reference takes log(0) (so does the engine)
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")
COLUMNS = ["x_image_px", "y_image_px", "duration_ms", "participant"]


@pytest.fixture(scope="module")
def osie(osie_fixations_path):
    """Four observers' OSIE fixations on three images, in quarter-size pixels."""
    table = read_osie(osie_fixations_path, images=IMAGES)
    table = table[table["participant"].isin(sorted(table["participant"].unique())[:4])].copy()
    table[["x_image_px", "y_image_px"]] /= SCALE
    return table.reset_index(drop=True)


@pytest.fixture(scope="module")
def maps():
    rng = np.random.default_rng(0)
    return {
        "noise": rng.random(SHAPE),
        "ties": np.round(rng.random(SHAPE), 1) * (rng.random(SHAPE) < 0.5),  # ties, zero background
        "smooth": gaussian_filter(rng.normal(size=SHAPE), 6) * 40 - 3,  # negative values too
    }


def _assert_same(got: dict, expected: dict, what: str) -> None:
    assert list(got) == list(expected), what
    for name, values in expected.items():
        assert list(got[name]) == list(values), (what, name)
        for metric, value in values.items():
            ours = got[name][metric]
            if not (np.isfinite(value) and np.isfinite(ours)):  # NaN when undefined, inf (pysaliency)
                assert ours == value or (np.isnan(value) and np.isnan(ours)), (what, name, metric, ours, value)
            elif metric in RANDOM_METRICS:
                assert ours == value, (what, name, metric, ours, value)
            else:
                assert abs(ours - value) <= 1e-9, (what, name, metric, ours, value)


def _check(
    engine: ImageEngine, table: pd.DataFrame, shapes, *, params, scoring, maps, what: str, density_params=None
) -> None:
    """Engine == reference for the pooled scores, the human ceiling, the last participant's scores
    and the heatmaps, on the fixations of ``table`` (this image's and the others')."""
    image = engine.image_id
    expected = reference_score_image(
        image, table, shapes, params=params, scoring=scoring, maps=maps, density_params=density_params
    )
    _assert_same(engine.scores(), expected.scores, f"{what}: pooled")
    _assert_same(engine.mc_se(), expected.mc_se, f"{what}: pooled Monte-Carlo errors")
    _assert_same(engine.loso(), expected.loso, f"{what}: human ceiling")
    _assert_same(engine.loso_mc_se(), expected.loso_mc_se, f"{what}: human ceiling Monte-Carlo errors")
    np.testing.assert_allclose(engine.heatmap(), expected.human_map, rtol=0, atol=1e-12)
    assert engine.human_loso() == (
        pytest.approx(expected.human_loso, abs=1e-9, nan_ok=True) if expected.human_loso else None
    )
    rows = table[table["image"] == image]
    if len(rows):
        participant = str(rows["participant"].iloc[-1])
        scores, errors = reference_participant_scores(
            image, table, shapes, participant, params=params, scoring=scoring, maps=maps, density_params=density_params
        )
        _assert_same(engine.participant_scores(participant), scores, f"{what}: participant {participant}")
        _assert_same(engine.mc_se(participant), errors, f"{what}: participant {participant} errors")


def _replay(table, *, image, params, scoring, maps, device="cpu", every=1, shape=SHAPE, density_params=None):
    """Add ``image``'s fixations one by one, comparing with the reference every ``every`` and at
    the end."""
    shapes = {i: shape for i in table["image"].unique()} | {image: shape}
    others = table[table["image"] != image]
    rows = table[table["image"] == image]
    engine = ImageEngine(image, shape, maps, params=params, device=device, density_params=density_params, **scoring)
    engine.set_context(table, shapes)
    for k, row in enumerate(rows[COLUMNS].itertuples(index=False), start=1):
        engine.add_fixation(*row)
        if k % every == 0 or k == len(rows):
            _check(
                engine,
                pd.concat([others, rows.iloc[:k]]),
                shapes,
                params=params,
                scoring=scoring,
                maps=maps,
                what=f"{image} after {k} fixations",
                density_params=density_params,
            )
    return engine


@pytest.mark.parametrize(("device", "every"), [("cpu", 1), ("torch-cpu", 3)])
def test_equals_the_full_recomputation_after_every_fixation(osie, maps, device, every):
    if device != "cpu":
        pytest.importorskip("torch")  # torch on the CPU is slow here: compare every third fixation
    _replay(osie, image="1001", params=PARAMS, scoring={"seed": 3}, maps=maps, device=device, every=every)


OPTIONS = [
    ({"variant": "pysaliency", "mae_normalize": "none", "seed": 5}, {}),
    ({"metrics": ("kl_div", "auc_judd", "cc"), "seed": 2}, {}),
    ({}, {"final_normalization": "max"}),
    ({"variant": "pysaliency"}, {"final_normalization": "minmax"}),
    ({"variant": "pysaliency", "mae_normalize": "none"}, {"final_normalization": "sum"}),
    ({}, {"prenormalize": "none", "duration_weighted": False}),
    ({"mae_normalize": "none"}, {"even_kernel_centre": "matlab", "kernel_size_px": None}),
    ({"variant": "pysaliency", "seed": 11}, {"sigma_px": 3.0, "kernel_size_px": 9}),
    ({"kl_ig_maps": "raw"}, {"even_kernel_centre": "scipy"}),
    ({"kl_ig_maps": "raw", "variant": "pysaliency"}, {}),
]
# fitted conversions of some maps into densities (the others keep the default)
DENSITY_PARAMS = {
    "noise": DensityParams(sigma_px=3.0, centre_weight=0.3),
    "dataset_prior": DensityParams(sigma_px=1.5, centre_weight=0.05),
    "blank": DensityParams(sigma_px=2.0, centre_weight=0.5),
}


@pytest.mark.parametrize(("scoring", "heatmap_options"), OPTIONS)
def test_equals_the_full_recomputation_for_every_option(osie, maps, scoring, heatmap_options):
    params = PARAMS.model_copy(update=heatmap_options)
    _replay(osie, image="1002", params=params, scoring=scoring, maps=maps, every=9)


@pytest.mark.parametrize("variant", ["mit", "pysaliency"])
def test_fitted_densities_for_kl_and_information_gain(osie, maps, variant):
    engine = _replay(
        osie,
        image="1003",
        params=PARAMS,
        scoring={"variant": variant},
        maps=maps,
        every=10,
        density_params=DENSITY_PARAMS,
    )
    # the gold standard, on request
    shapes = {image: SHAPE for image in IMAGES}
    for scoring, gold in (
        ({"variant": variant}, DensityParams(sigma_px=2.0, centre_weight=0.2)),
        ({"variant": variant, "kl_ig_maps": "raw"}, DensityParams(sigma_px=4.0, centre_weight=0.05)),
    ):
        engine = ImageEngine("1003", SHAPE, maps, params=PARAMS, density_params=DENSITY_PARAMS, **scoring)
        engine.set_context(osie, shapes)
        engine.add_fixations(osie[osie["image"] == "1003"])
        expected = reference_human_gold(
            "1003", osie, shapes, gold, params=PARAMS, scoring=scoring, density_params=DENSITY_PARAMS
        )
        got = engine.human_gold(gold)
        assert len(got[0]) == 4
        _assert_same(got[0], expected[0], f"gold {scoring}")
        _assert_same(got[1], expected[1], f"gold errors {scoring}")


@pytest.mark.parametrize(("scoring", "heatmap_options"), [OPTIONS[0], OPTIONS[3]])
def test_torch_backend_for_other_options(osie, maps, scoring, heatmap_options):
    pytest.importorskip("torch")
    params = PARAMS.model_copy(update=heatmap_options)
    _replay(osie, image="1003", params=params, scoring=scoring, maps=maps, every=12, device="torch-cpu")


@pytest.mark.parametrize("variant", ["mit", "pysaliency"])
def test_heatmaps_covering_the_whole_image(osie, variant):
    # A kernel as large as the image: no zero background, so min-max normalisation shifts the heatmap
    # and every pixel is in the support (the engine's outside-the-support shortcuts do not apply).
    table = osie.copy()
    table[["x_image_px", "y_image_px"]] /= 5
    shape = (SHAPE[0] // 5, SHAPE[1] // 5)
    params = PARAMS.model_copy(update={"sigma_px": 8.0, "kernel_size_px": 41, "final_normalization": "minmax"})
    rng = np.random.default_rng(4)
    _replay(
        table,
        image="1001",
        params=params,
        scoring={"variant": variant, "mae_normalize": "none"},
        maps={"noise": rng.random(shape)},
        every=5,
        shape=shape,
    )


def test_full_size_image(osie_fixations_path):
    table = read_osie(osie_fixations_path, images=IMAGES)
    table = table[table["participant"].isin(sorted(table["participant"].unique())[:5])]
    maps = {"noise": np.random.default_rng(1).random((600, 800))}
    _replay(
        table,
        image="1003",
        params=without_selection(HeatmapParams()),
        scoring={},
        maps=maps,
        every=20,
        shape=(600, 800),
    )


def test_retracted_fixations_rebuild_the_state(osie, maps):
    shapes = {image: SHAPE for image in IMAGES}
    rows = osie[osie["image"] == "1001"]
    engine = ImageEngine("1001", SHAPE, maps, params=PARAMS)
    engine.set_context(osie, shapes)
    engine.add_fixations(rows)
    kept = rows[rows["participant"] != rows["participant"].iloc[0]].iloc[:-3]  # one observer's trial aborted
    engine.replace_fixations(kept)
    assert engine.n_fixations == len(kept)
    table = pd.concat([osie[osie["image"] != "1001"], kept])
    _check(engine, table, shapes, params=PARAMS, scoring={}, maps=maps, what="after retraction")


def test_context_is_recomputed_only_for_a_new_version(osie, maps):
    shapes = {image: SHAPE for image in IMAGES}
    rows = osie[osie["image"] == "1001"]
    engine = ImageEngine("1001", SHAPE, maps, params=PARAMS)
    engine.add_fixations(rows)
    # no context yet: no other image, as the full recomputation of this image alone
    _check(engine, rows, shapes, params=PARAMS, scoring={}, maps=maps, what="no context")
    partial = pd.concat([rows, osie[osie["image"] == "1002"]])
    engine.set_context(partial, shapes, version=1)
    _check(engine, partial, shapes, params=PARAMS, scoring={}, maps=maps, what="context 1")
    engine.set_context(osie, shapes, version=1)  # same version: kept
    _check(engine, partial, shapes, params=PARAMS, scoring={}, maps=maps, what="context 1 kept")
    engine.set_context(osie, shapes, version=2)
    assert engine.context_version == 2
    _check(engine, osie, shapes, params=PARAMS, scoring={}, maps=maps, what="context 2")


def test_fixations_off_the_image_zero_durations_and_lone_participants(osie, maps):
    shapes = {image: SHAPE for image in IMAGES}
    rows = osie[osie["image"] == "1001"].copy()
    first, second = sorted(rows["participant"].unique())[:2]
    lone = rows[rows["participant"] == first].iloc[:3]
    engine = ImageEngine("1001", SHAPE, maps, params=PARAMS)
    engine.set_context(osie, shapes)
    _check(engine, osie[osie["image"] != "1001"], shapes, params=PARAMS, scoring={}, maps=maps, what="empty")
    engine.add_fixations(lone)
    assert engine.loso() == {} and engine.human_loso() is None  # one participant: no ceiling
    _check(
        engine,
        pd.concat([osie[osie["image"] != "1001"], lone]),
        shapes,
        params=PARAMS,
        scoring={},
        maps=maps,
        what="one participant",
    )
    odd = rows[rows["participant"] == second].iloc[:4].copy()
    odd["x_image_px"] = [-3.0, np.nan, SHAPE[1] + 1.0, 10.5]  # three off the image
    odd["duration_ms"] = [200.0, 150.0, 100.0, 0.0]  # the one on the image weighs nothing
    engine.add_fixations(odd)
    assert engine.participants == sorted([first, second])
    _check(
        engine,
        pd.concat([osie[osie["image"] != "1001"], lone, odd]),
        shapes,
        params=PARAMS,
        scoring={},
        maps=maps,
        what="off the image",
    )


def test_score_image_goes_through_the_engine(osie, maps):
    shapes = {image: SHAPE for image in IMAGES}

    class Store:
        def load(self, image_id, *, shape):
            return maps

    got = score_image("1002", osie, shapes, params=PARAMS, scoring={"seed": 4}, store=Store())
    expected = reference_score_image("1002", osie, shapes, params=PARAMS, scoring={"seed": 4}, maps=maps)
    _assert_same(got.scores, expected.scores, "score_image")
    _assert_same(got.loso, expected.loso, "score_image loso")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "gpu"}, "device must be one of"),
        ({"params": HeatmapParams()}, "selection off"),
        ({"maps": {"m": np.zeros((3, 3))}}, r"has shape \(3, 3\), but the image is \(150, 200\)"),
        ({"maps": {"center_bias": np.zeros(SHAPE)}}, "taken by a baseline"),
        ({"metrics": ("nss", "auc")}, "unknown"),
    ],
)
def test_invalid_arguments_raise_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ImageEngine("1001", SHAPE, **({"params": PARAMS} | kwargs))


def test_sorted_values_count_jittered_values_exactly():
    # Oracle: comparing every entry. Values with ties and a band of near-threshold entries, replaced
    # window by window as the engine does, under several transforms a * v + b.
    from analysis._engine_sorted import SortedValues

    rng = np.random.default_rng(8)
    n_pixels = 5000
    noise = rng.random(n_pixels) / 1e7
    field = SortedValues(n_pixels)
    values = np.zeros(n_pixels)
    member = np.zeros(n_pixels, dtype=bool)
    for _ in range(6):
        pixels = np.unique(rng.integers(0, n_pixels, 900))
        values[pixels] = np.round(rng.random(pixels.size), 3) * 1e-4  # ties, and jitter-sized gaps
        member[pixels] = True
        field.replace(pixels, values[pixels])
        assert len(field) == member.sum() and np.all(np.diff(field.values) >= 0)
        for a, b in ((1.0, 0.0), (3.7, -2e-5), (0.0, 1e-8)):
            thresholds = np.r_[values[rng.choice(np.flatnonzero(member), 20)] * a + b + noise[:20], -1.0, 1.0]
            expected = [int(((values[member] * a + b) + noise[member] >= t).sum()) for t in thresholds]
            k = thresholds.size
            got = field.count_at_least(np.full(k, a), np.full(k, b), thresholds, noise, 1e-7)
            assert got.tolist() == expected
    inside = field.extreme(largest=True, excluded=values > 5e-5)
    assert inside == values[member & (values <= 5e-5)].max()


def test_a_bad_duration_raises():
    engine = ImageEngine("1001", SHAPE, params=PARAMS)
    with pytest.raises(ValueError, match="duration_ms must be finite and >= 0"):
        engine.add_fixation(10.0, 10.0, float("nan"), "s01")


def test_the_cpu_engine_never_imports_torch():
    code = (
        "import sys, numpy as np\n"
        "from analysis.engine import ImageEngine\n"
        "from analysis.heatmap import HeatmapParams\n"
        "e = ImageEngine('a', (30, 40), {'m': np.ones((30, 40))}, params=HeatmapParams(within_display_only=False))\n"
        "e.add_fixation(5.0, 5.0, 100.0, 'p'); e.add_fixation(9.0, 7.0, 100.0, 'q'); e.scores(); e.loso()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
def test_cuda_equals_the_full_recomputation(osie, maps):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    _replay(osie, image="1001", params=PARAMS, scoring={"seed": 3}, maps=maps, device="cuda", every=4)
    _replay(
        osie,
        image="1002",
        params=PARAMS.model_copy(update={"final_normalization": "minmax"}),
        scoring={"variant": "pysaliency", "mae_normalize": "none"},
        maps=maps,
        device="cuda",
        every=9,
    )
    assert set(METRICS) >= set(RANDOM_METRICS)
