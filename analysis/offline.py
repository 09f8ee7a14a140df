"""Offline re-analysis (``lookwhere analyze``): fixations → heatmaps → scores → tables, figures, report.

The pipeline, in the order it runs:

1. read the fixations (OSIE ``fixations.mat``, EyeLink ASC and EDF recordings, the project's own
   session records) into the tidy table and put every fixation in original-image pixels
   (:mod:`analysis.readers.mapping`); a recording that cannot be read or mapped is reported and left
   out; of sessions, the trials the experimenter's notes or the quality limits exclude are left out
   (:mod:`analysis.quality`);
2. select the fixations that count (:func:`analysis.heatmap.select_fixations`), once;
3. per image: the pooled human heatmap and fixation counts, the other images' fixations (for
   shuffled AUC and the dataset prior), the centre-bias map (also the information-gain baseline);
4. score every map (baselines, CNN maps from a map store) against the pooled human target, and
   each participant against the others' heatmap (``human_loso``); with ``--scheduler``, one Dask
   task per image (:mod:`analysis.distributed`);
5. write ``scores.csv``, ``loso_scores.csv``, ``heatmaps.npz``, ``params.json``, ``summary.csv``,
   ``comparisons.csv``, the figures and ``report.html`` into the output folder.

Outputs are whole or absent: ``--out`` and every input (fixation files, trial mapping, the analysed
stimulus images, fully decoded) are checked before any scoring, the outputs are written into a
temporary folder beside ``--out`` and moved into place at the end (:class:`analysis.outputs.StagedOutput`);
a failed run leaves ``--out`` as it was.

Scores come from :class:`analysis.engine.ImageEngine`, which the live server updates fixation by
fixation, so live and offline numbers agree; the engine equals :func:`analysis.metrics.score_map`
on maps from :mod:`analysis.heatmap` (the definitions) to 1e-9.
"""

from __future__ import annotations

import copy
import json
import logging
import platform
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from pydantic import ConfigDict, Field
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

import lookwhere
from analysis.ceilings import split_half_ceilings
from analysis.density import DensityParams
from analysis.density_fit import GOLD, DensityFit, fit_densities
from analysis.engine import ImageEngine
from analysis.fixations import StudyFixations
from analysis.heatmap import HeatmapParams, select_fixations
from analysis.metrics import HIGHER_IS_BETTER
from analysis.naming import NamingAnalysis, NamingParams, naming_analysis
from analysis.outputs import StagedOutput, package_versions, sha256_of
from analysis.quality import QualityRules, session_quality
from analysis.readers.eyelink import TrialRules
from analysis.registry import map_kind
from analysis.scoring_config import ScoringConfig
from analysis.stats import combined_mc_se
from analysis.timecourse import TimecourseAnalysis, TimecourseParams
from stimuli.sets import StimulusSet

if TYPE_CHECKING:  # imported when a store is opened (analysis.cnn is optional here), and with --scheduler
    from distributed import Client

    from analysis.cnn.store import MapStore

__all__ = [
    "AnalysisConfig",
    "AnalysisResult",
    "ImageScores",
    "load_fixations",
    "run_analysis",
    "score_image",
    "without_selection",
]

logger = logging.getLogger(__name__)


class AnalysisConfig(ScoringConfig):
    """Everything an offline analysis depends on; written to ``params.json`` beside the results.

    The scoring choices are :class:`~analysis.scoring_config.ScoringConfig`'s fields (the live
    server's too); ``seed`` also seeds the bootstrap.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: Literal["osie", "eyelink", "asc", "session"] = Field(
        description="format of the fixation data ('asc' is an alias of 'eyelink')"
    )
    fixations: Path = Field(
        description="fixations.mat (osie), an EyeLink .asc/.edf file or folder of them (eyelink), or a "
        "lookwhere run session folder or folder of sessions (session)"
    )
    stimuli: Path = Field(description="folder of the stimulus images")
    out: Path = Field(description="output folder (created)")
    images: tuple[str, ...] | None = Field(None, description="image ids to analyse (default: all with fixations)")
    maps: Path | None = Field(None, description="CNN map store to score beside the baselines")
    scale: float | None = Field(
        None,
        gt=0,
        description="drawn size / image size (eyelink); default ×2 fitted to the screen, or "
        "the recording's !V IMGLOAD size",
    )
    screen_px: tuple[int, int] | None = Field(None, description="screen size overriding the recordings' (eyelink)")
    source: Literal["edf", "link"] | None = Field(
        None,
        description="session: fixations from the transferred EDF or the link record (default: the EDF when present)",
    )
    eye: Literal["best", "left", "right", "both"] = Field(
        "best", description="eye whose fixations count (eyelink): best = better last validation, else right"
    )
    trial_rules: TrialRules = Field(TrialRules(), description="trial, image, onset and offset messages (eyelink)")
    trials_table: Path | None = Field(
        None, description="CSV recording,trial,image[,onset_ms,offset_ms] overriding the messages (eyelink)"
    )
    bootstrap_resamples: int = Field(10_000, ge=100)
    confidence: float = Field(0.95, gt=0, lt=1)
    n_overlays: int = Field(6, ge=0, description="images shown as overlays in the report")
    naming: NamingParams = Field(NamingParams(), description="session: utterances and naming-aligned fixations")
    timecourse: TimecourseParams = Field(
        TimecourseParams(), description="scores per viewing-time bin and fixation index"
    )
    quality: QualityRules = Field(
        QualityRules(), description="session: the trials left out by the experimenter's notes and quality limits"
    )
    kl_ig_maps: Literal["density", "raw"] = Field(
        "density", description="KL and information gain on each map turned into a density (default) or on the raw maps"
    )
    density_fit: Literal["cv", "default"] = Field(
        "cv",
        description="density parameters fitted leave one image out (default), or the defaults the live server uses",
    )
    split_half_splits: int = Field(10, ge=1, description="random splits of the split-half noise ceilings")
    overlay_images: tuple[str, ...] | None = Field(
        None, description="images shown as overlays (default: the first n_overlays)"
    )
    heatmaps_float64: bool = Field(False, description="heatmaps.npz in float64 (default float32)")
    mixed_model: bool = Field(
        True, description="fit the mixed model (~40 s per metric on 200 images x 15 participants)"
    )


@dataclass
class AnalysisResult:
    """What :func:`run_analysis` produced (the tables also lie on disk in ``out``)."""

    out: Path
    scores: pd.DataFrame
    summary: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    #: input file → why it was left out (the run analysed the others)
    failed: dict[str, str] = field(default_factory=dict)
    #: data warnings, each naming its file (also in params.json and the report)
    warnings: list[str] = field(default_factory=list)


def load_fixations(config: AnalysisConfig, stimulus_set: StimulusSet) -> StudyFixations:
    """Read the configured fixation data into a table with image coordinates, with its provenance."""
    if not config.fixations.exists():
        raise FileNotFoundError(f"fixation data {config.fixations} does not exist")
    if config.dataset == "osie":
        from analysis.readers import read_osie

        table = read_osie(config.fixations)  # every image: the baselines' pool, whatever --images says
        return StudyFixations(table, files=[config.fixations], counts=_counts_read(table))
    from analysis.readers.mapping import MappingOptions, read_recordings, read_trials_table, recording_paths

    if config.dataset == "session":
        from analysis.readers.session_edf import read_session_fixations

        options = MappingOptions(eye=config.eye, screen_px=config.screen_px, scale=config.scale)
        return read_session_fixations(config.fixations, stimulus_set.size, source=config.source, options=options)

    options = MappingOptions(
        rules=config.trial_rules,
        eye=config.eye,
        screen_px=config.screen_px,
        scale=config.scale,
        trials_table=None if config.trials_table is None else read_trials_table(config.trials_table),
    )
    return read_recordings(recording_paths(config.fixations), stimulus_set.size, options)


def _counts_read(table: pd.DataFrame) -> dict:
    return {"read": len(table), "read_per_eye": Counter(table["eye"].astype(str)), "dropped": Counter()}


def _images_to_analyse(config: AnalysisConfig, fixations: pd.DataFrame, stimulus_set: StimulusSet) -> list[str]:
    """The images to score; each is decoded in full first, as ``lookwhere stimuli check`` does."""
    images = _image_ids(config, fixations, stimulus_set)
    unreadable = []
    for image_id in images:
        try:
            with Image.open(stimulus_set.path(image_id)) as image:
                image.load()  # a truncated file fails here, not after the scoring
        except (OSError, UnidentifiedImageError) as error:
            unreadable.append(f"{stimulus_set.path(image_id)}: {error}")
    if unreadable:
        raise ValueError(
            f"{len(unreadable)} stimulus images cannot be read (run `lookwhere stimuli check {config.stimuli}`; "
            "replace them or leave them out with --images):\n  " + "\n  ".join(unreadable[:10])
        )
    return images


def _image_ids(config: AnalysisConfig, fixations: pd.DataFrame, stimulus_set: StimulusSet) -> list[str]:
    available = set(stimulus_set.image_ids)
    with_fixations = set(fixations["image"].unique())
    if config.images is not None:
        missing_images = sorted(set(config.images) - available)
        missing_fix = sorted(set(config.images) - with_fixations)
        problems = []
        if missing_images:
            problems.append(f"not in the stimulus folder {config.stimuli}: {missing_images[:10]}")
        if missing_fix:
            problems.append(f"without fixations in {config.fixations}: {missing_fix[:10]}")
        if problems:
            raise ValueError("cannot analyse the requested images; " + "; ".join(problems))
        return list(config.images)
    images = sorted(with_fixations & available)
    skipped = len(with_fixations - available)
    if skipped:
        logger.info("%d images have fixations but no file in %s; they are left out", skipped, config.stimuli)
    if not images:
        raise ValueError(f"no image of {config.stimuli} has fixations in {config.fixations}")
    return images


def _open_store(config: AnalysisConfig) -> MapStore | None:
    if config.maps is None:
        return None
    from analysis.cnn.store import MapStore

    return MapStore.open(config.maps)


def run_analysis(
    config: AnalysisConfig,
    *,
    progress: bool = True,
    command_line: list[str] | None = None,
    client: Client | None = None,
) -> AnalysisResult:
    """Run the whole offline analysis described by ``config``; see the module docstring.

    ``command_line`` (the words typed) is recorded in ``params.json``. The outputs appear in
    ``config.out`` only when the whole run succeeded. With a Dask ``client``
    (:func:`analysis.distributed.open_client`, ``--scheduler``) the images are scored on its workers,
    one task per image, with the same results. The rest runs here: the bootstrap resamples come from
    one seeded stream (:func:`analysis.stats.two_way_resamples`), drawn in ~13 s for 200 images, so
    split across workers they would either change or cost as much as they save.
    """
    output = StagedOutput(config.out)
    try:
        result = _analyse(config, output.path, progress=progress, command_line=command_line, client=client)
    except BaseException:
        output.discard()
        raise
    output.commit()
    result.out = config.out
    result.files = {name: config.out / path.relative_to(output.path) for name, path in result.files.items()}
    return result


def _analyse(
    config: AnalysisConfig, out: Path, *, progress: bool, command_line, client: Client | None
) -> AnalysisResult:
    stimulus_set = StimulusSet(config.stimuli)
    study = load_fixations(config, stimulus_set)
    quality = session_quality(config.dataset, config.fixations, rules=config.quality, fixations=study.table)
    if quality is not None:  # the excluded trials are left out of everything
        study = quality.exclude(study)
    images = _images_to_analyse(config, study.table, stimulus_set)
    # The dataset prior and the shuffled-AUC negatives of every image come from one fixed pool, every
    # image of the input with fixations (and a stimulus file, which gives its size), so an image's
    # scores are the same in any subset run.
    pool = sorted(set(study.table["image"]) & set(stimulus_set.image_ids))
    pool_fixations = study.table[study.table["image"].isin(pool)]
    fixations = pool_fixations[pool_fixations["image"].isin(images)]
    shapes = {image_id: stimulus_set.shape(image_id) for image_id in pool}
    store = _store_for(config, images)
    store_maps = [] if store is None else list(store.map_names)

    selected_pool = select_fixations(pool_fixations, config.heatmap)
    selected = selected_pool[selected_pool["image"].isin(images)]
    logger.info(
        "%d of %d fixations on %d images count towards the heatmaps (the baselines draw on %d images)",
        len(selected),
        len(fixations),
        len(images),
        len(pool),
    )
    scoring = {**config.engine_options(), "kl_ig_maps": config.kl_ig_maps}
    params = without_selection(config.heatmap)
    fit = fit_densities(
        selected_pool,
        shapes,
        params=params,
        store=store,
        center_bias_sigma_fraction=config.center_bias_sigma_fraction,
        progress=progress,
    )

    job = _ImageScoring(config, selected_pool, selected, shapes, params=params, scoring=scoring, store=store, fit=fit)
    extras = _extra_analyses(config, fixations, selected, shapes, progress=progress) + ([quality] if quality else [])
    rows, human_maps = _score_images(job, images, extras, client=client, progress=progress)

    scores, loso, tables = rows.tables(store)
    tables["density_params"] = fit.table(images)
    outcome = _write_outputs(
        config,
        scores,
        loso,
        human_maps,
        stimulus_set,
        store,
        store_maps,
        fixations,
        selected,
        out=out,
        study=study,
        command_line=command_line,
        pool=pool,
        tables=tables,
        fit=fit,
        extras=extras,
    )
    outcome.failed, outcome.warnings = dict(study.failed), list(study.warnings)
    return outcome


@dataclass(frozen=True)
class _ImageScoring:
    """Everything one image's scoring needs (with ``--scheduler``, sent once to every worker)."""

    config: AnalysisConfig
    #: the selected fixations of the baselines' pool, and of the analysed images
    selected_pool: pd.DataFrame
    selected: pd.DataFrame
    shapes: dict[str, tuple[int, int]]
    params: HeatmapParams
    scoring: dict
    store: MapStore | None
    fit: DensityFit

    def score(self, image_id: str) -> tuple[ImageScores, dict[str, float]]:
        """The image's scores (:func:`score_image`) and its split-half ceilings."""
        config = self.config
        result = score_image(
            image_id,
            self.selected_pool,
            self.shapes,
            params=self.params,
            scoring=self.scoring,
            store=self.store,
            center_bias_sigma_fraction=config.center_bias_sigma_fraction,
            density_params=self.fit.for_image(image_id) if config.density_fit == "cv" else None,
            gold=self.fit.params(GOLD, image_id),
            per_participant=True,
        )
        return result, _split_half(config, self.selected, self.shapes, image_id, params=self.params)


def _score_images(
    job: _ImageScoring, images: list[str], extras: list, *, client: Client | None, progress: bool
) -> tuple[_ScoreRows, dict[str, np.ndarray]]:
    """Score every image, here or one task per image on the workers of ``client``; the rows and the
    pooled heatmaps, in image order (so either way the tables are the same)."""
    rows = _ScoreRows()
    human_maps: dict[str, np.ndarray] = {}
    with tqdm(total=len(images), desc="scoring images", unit="image", disable=not progress) as bar:
        if client is None:
            for image_id in images:
                result, ceilings = _score_with_extras(job, image_id, extras)
                human_maps[image_id] = result.human_map
                rows.add(image_id, result, ceilings)
                bar.update()
            return rows, human_maps
        from analysis.distributed import broadcast, run_batches

        shared = {"job": broadcast(client, job), "extras": broadcast(client, extras)}
        for scored, extra_results in run_batches(client, _score_on_worker, [[i] for i in images], bar=bar, **shared):
            for image_id, result, ceilings in scored:
                human_maps[image_id] = result.human_map
                rows.add(image_id, result, ceilings)
            for extra, results in zip(extras, extra_results):
                extra.add_image_results(results)
    return rows, human_maps


def _score_with_extras(job: _ImageScoring, image_id: str, extras: list) -> tuple[ImageScores, dict[str, float]]:
    """:meth:`_ImageScoring.score`, then each extra analysis on the image's engine (which is dropped).

    With one BLAS thread: OpenBLAS splits a product's sums by its thread count, which changed
    scores in the 15th digit between this process and a Dask worker (one thread) or another
    machine; the live server scores with one thread too.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        result, ceilings = job.score(image_id)
        for extra in extras:  # after the whole-image results: they reuse the image's engine
            extra.score_image(image_id, result.engine)
    return replace(result, engine=None), ceilings


def _score_on_worker(images: list[str], *, job: _ImageScoring, extras: list) -> tuple[list[tuple], list]:
    """A Dask task: ``[(image id, ImageScores, ceilings)]`` of ``images``, and what copies of the
    extras scored (their ``image_results()``, which the client adds to its own extras)."""
    extras = copy.deepcopy(extras)  # the worker's shared copies stay unscored for its other tasks
    scored = [(image_id, *_score_with_extras(job, image_id, extras)) for image_id in images]
    return scored, [extra.image_results() for extra in extras]


def _split_half(config: AnalysisConfig, selected: pd.DataFrame, shapes, image_id: str, *, params) -> dict:
    """The image's split-half ceilings (:func:`analysis.ceilings.split_half_ceilings`)."""
    return split_half_ceilings(
        selected[selected["image"] == image_id],
        shapes[image_id],
        params=params,
        seed=config.seed,
        image=image_id,
        n_splits=config.split_half_splits,
        variant=config.metric_variant,
        mae_normalize=config.mae_normalize,
    )


def _store_for(config: AnalysisConfig, images: list[str]) -> MapStore | None:
    """The map store of ``config`` (None without one), checked to hold every image analysed."""
    store = _open_store(config)
    if store is not None:
        missing = sorted(set(images) - set(store.image_ids))
        if missing:
            raise ValueError(
                f"map store {config.maps} has no maps for {len(missing)} images (e.g. {missing[:5]}); "
                "run `lookwhere precompute` for them or pass --images"
            )
    return store


@dataclass
class _ScoreRows:
    """The long-format rows of every image's results, collected image by image."""

    scores: list[dict] = field(default_factory=list)
    participants: list[dict] = field(default_factory=list)
    loso: list[dict] = field(default_factory=list)
    ceilings: list[dict] = field(default_factory=list)

    def add(self, image_id: str, result: ImageScores, ceilings: dict[str, float]) -> None:
        maps, errors = result.pooled_rows()
        for map_name, values in maps.items():
            self.scores.extend(
                {
                    "image": image_id,
                    "map": map_name,
                    "metric": m,
                    "value": v,
                    "mc_se": errors.get(map_name, {}).get(m, np.nan),
                }
                for m, v in values.items()
            )
        self.participants.extend({"image": image_id, **row} for row in result.participant_rows())
        for participant, values in result.loso.items():
            self.loso.extend(
                {
                    "image": image_id,
                    "participant": participant,
                    "metric": m,
                    "value": v,
                    "mc_se": result.loso_mc_se.get(participant, {}).get(m, np.nan),
                }
                for m, v in values.items()
            )
        self.ceilings.extend({"image": image_id, "metric": m, "value": v} for m, v in ceilings.items())

    def tables(self, store: MapStore | None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
        """``(scores, loso, {"participant_scores", "ceilings"})``, with map kinds."""
        scores = _with_kinds(pd.DataFrame(self.scores, columns=["image", "map", "metric", "value", "mc_se"]), store)
        loso = pd.DataFrame(self.loso, columns=["image", "participant", "metric", "value", "mc_se"])
        columns = ["image", "participant", "map", "metric", "value", "mc_se"]
        return (
            scores,
            loso,
            {
                "participant_scores": _with_kinds(pd.DataFrame(self.participants, columns=columns), store),
                "ceilings": pd.DataFrame(self.ceilings, columns=["image", "metric", "value"]),
            },
        )


def _extra_analyses(
    config: AnalysisConfig, fixations, selected, shapes, *, progress: bool
) -> list[TimecourseAnalysis | NamingAnalysis]:
    """The time course (every dataset) and, for sessions with audio, the naming-aligned fixations.

    Each has ``score_image(image_id, engine)``, ``write(out, *, stat_options)``, ``record()`` and
    ``tables`` (:class:`analysis.timecourse.TimecourseAnalysis`, :class:`analysis.naming.NamingAnalysis`).
    """
    extras: list[TimecourseAnalysis | NamingAnalysis] = []
    if config.timecourse.enabled:
        extras.append(TimecourseAnalysis(config.timecourse, selected, fixations, shapes))
    if config.dataset == "session" and config.naming.enabled:
        naming = naming_analysis(config.naming, config.fixations, selected, stimuli=config.stimuli, progress=progress)
        extras += [naming] if naming is not None else []
    return extras


def _with_kinds(table: pd.DataFrame, store) -> pd.DataFrame:
    """``table`` with each map's ``kind`` (:func:`analysis.registry.map_kind`) and whether it
    comes from untrained weights."""
    table["kind"] = table["map"].map(map_kind)
    table["untrained"] = (table["kind"] == "cnn") & bool(store is not None and store.is_untrained)
    return table


def without_selection(params: HeatmapParams) -> HeatmapParams:
    """``params`` with the fixation selection switched off.

    Selection runs once over the pooled table (:func:`analysis.heatmap.select_fixations`); the
    per-group heatmaps built from its result must not select again (first-fixation exclusion is not
    idempotent).
    """
    return params.model_copy(update={"within_display_only": False, "exclude_first_fixation": False})


@dataclass
class ImageScores:
    """Everything scored for one image (see :func:`score_image`)."""

    human_map: np.ndarray
    #: map name → metric → value, for the baselines, the controls and the store's maps
    scores: dict[str, dict[str, float]]
    #: participant → metric → value: that participant against the others' heatmap
    loso: dict[str, dict[str, float]]
    #: the image's engine, for scoring other sets of its fixations afterwards
    engine: ImageEngine | None = field(default=None, repr=False, compare=False)
    #: map name → sampled metric → Monte-Carlo standard error of :attr:`scores`
    mc_se: dict[str, dict[str, float]] = field(default_factory=dict)
    #: participant → sampled metric → Monte-Carlo standard error of :attr:`loso`
    loso_mc_se: dict[str, dict[str, float]] = field(default_factory=dict)
    #: participant → metric → value: the gold standard against that participant (when asked for)
    gold: dict[str, dict[str, float]] = field(default_factory=dict)
    gold_mc_se: dict[str, dict[str, float]] = field(default_factory=dict)
    #: participant → map name → metric → value: every map against each participant (when asked for)
    participants: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    participants_mc_se: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    @property
    def human_loso(self) -> dict[str, float] | None:
        """The others' heatmap against each participant: the mean over participants of :attr:`loso`
        (NaNs skipped); None with fewer than two participants."""
        return _participant_mean(self.loso)

    @property
    def human_loso_mc_se(self) -> dict[str, float]:
        """Monte-Carlo standard error of :attr:`human_loso`'s sampled AUCs."""
        return _participant_mc_se(self.loso, self.loso_mc_se)

    @property
    def human_gold(self) -> dict[str, float] | None:
        """The gold standard: the mean over participants of :attr:`gold`; None without it."""
        return _participant_mean(self.gold)

    @property
    def human_gold_mc_se(self) -> dict[str, float]:
        return _participant_mc_se(self.gold, self.gold_mc_se)

    def pooled_rows(self) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        """Every row of the image's table: the maps, then ``human_loso`` and ``human_gold``
        (participant means), with their Monte-Carlo errors."""
        scores, errors = dict(self.scores), dict(self.mc_se)
        for name, values, mc_se in (
            ("human_loso", self.human_loso, self.human_loso_mc_se),
            ("human_gold", self.human_gold, self.human_gold_mc_se),
        ):
            if values is not None:
                scores[name], errors[name] = values, mc_se
        return scores, errors

    def participant_rows(self) -> list[dict]:
        """Every map, ``human_loso`` and ``human_gold`` against each participant, as table rows
        ``participant, map, metric, value, mc_se``."""
        rows = []
        for participant, maps in self.participants.items():
            per_map = {**maps, "human_loso": self.loso.get(participant), "human_gold": self.gold.get(participant)}
            errors = {
                **self.participants_mc_se.get(participant, {}),
                "human_loso": self.loso_mc_se.get(participant, {}),
                "human_gold": self.gold_mc_se.get(participant, {}),
            }
            for name, values in per_map.items():
                for metric, value in (values or {}).items():
                    rows.append(
                        {
                            "participant": participant,
                            "map": name,
                            "metric": metric,
                            "value": value,
                            "mc_se": errors.get(name, {}).get(metric, np.nan),
                        }
                    )
        return rows


def _participant_mean(values: dict[str, dict[str, float]]) -> dict[str, float] | None:
    if not values:
        return None
    table = pd.DataFrame(values.values())
    return {metric: float(table[metric].mean()) for metric in table.columns}


def _participant_mc_se(values: dict[str, dict[str, float]], errors: dict[str, dict[str, float]]) -> dict[str, float]:
    """Participants draw independently: ``sqrt(sum se²) / n`` over those with a value."""
    if not errors:
        return {}
    table, scores = pd.DataFrame(errors.values()), pd.DataFrame(values.values())
    return {metric: combined_mc_se(table[metric].where(scores[metric].notna()).to_numpy()) for metric in table.columns}


def score_image(
    image_id: str,
    selected: pd.DataFrame,
    shapes: dict[str, tuple[int, int]],
    *,
    params: HeatmapParams,
    scoring: dict,
    store=None,
    center_bias_sigma_fraction: float = 0.25,
    density_params: dict[str, DensityParams] | None = None,
    gold: DensityParams | None = None,
    per_participant: bool = False,
    device: str = "cpu",
) -> ImageScores:
    """Score every map of one image against the pooled human data, and the human ceiling.

    A one-shot use of :class:`analysis.engine.ImageEngine`, the implementation the live server
    updates fixation by fixation, so offline and live numbers come from the same code.

    Parameters
    ----------
    image_id : str
        The image scored.
    selected : DataFrame
        The selected fixations of every image of the pool (:func:`analysis.heatmap.select_fixations`);
        the other images give the dataset prior and the shuffled-AUC negatives.
    shapes : mapping of image id → (H, W)
        Size of every image in ``selected``.
    params : HeatmapParams
        Heatmap parameters with selection off (:func:`without_selection`).
    scoring : dict
        Keyword arguments of :func:`analysis.metrics.score_map` (metrics, seed, variant,
        mae_normalize) and ``kl_ig_maps`` (:class:`~analysis.engine.ImageEngine`).
    store : MapStore, optional
        CNN maps scored beside the baselines.
    center_bias_sigma_fraction : float
        Of the centre-bias baseline, which is also the information-gain baseline.
    density_params : mapping of map name → DensityParams, optional
        How each map becomes a density for KL and information gain (default parameters otherwise).
    gold : DensityParams, optional
        The gold standard's parameters: score it (:meth:`~analysis.engine.ImageEngine.human_gold`).
    per_participant : bool
        Also score every map against each participant's own heatmap and fixations.
    device : str
        Where the engine computes (:class:`analysis.engine.ImageEngine`); same results.
    """
    shape = shapes[image_id]
    maps = store.load(image_id, shape=shape) if store is not None else {}
    engine = ImageEngine(
        image_id,
        shape,
        maps,
        params=params,
        center_bias_sigma_fraction=center_bias_sigma_fraction,
        density_params=density_params,
        device=device,
        **scoring,
    )
    engine.set_context(selected, shapes)
    engine.add_fixations(selected[selected["image"] == image_id])
    result = ImageScores(
        human_map=engine.heatmap(),
        scores=engine.scores(),
        loso=engine.loso(),
        mc_se=engine.mc_se(),
        loso_mc_se=engine.loso_mc_se(),
        engine=engine,
    )
    if gold is not None:
        result.gold, result.gold_mc_se = engine.human_gold(gold)
    if per_participant:
        result.participants = {p: engine.participant_scores(p) for p in engine.participants}
        result.participants_mc_se = {p: engine.mc_se(p) for p in engine.participants}
    return result


#: What the derived rows of the score tables mean (params.json).
_NOTES = {
    "human_gold": "mean over participants of the gold standard (Kümmerer et al. 2015): the other participants' "
    "fixation density, blur and centre-bias mixture fitted leave one image out, scored against "
    "the participant's own heatmap and fixations",
    "human_loso": "mean over participants of each participant's fixations/heatmap scored against the "
    "other participants' heatmap",
    "information_gain_baseline": "center_bias",
    "shuffled_auc_negatives": "fixations of all other images of the baseline pool, in normalised coordinates",
    "random_streams": "seeded by (seed, metric, image) for the pooled target and (seed, metric, image, "
    "participant) for one participant's; the AUC-Judd jitter by (seed, image)",
}


def _write_statistics(
    config: AnalysisConfig,
    scores: pd.DataFrame,
    participant_scores: pd.DataFrame,
    files: dict[str, Path],
    out: Path,
) -> dict:
    """The study's statistics (:func:`analysis.stats.study_statistics`), written to ``summary.csv``,
    ``comparisons.csv`` and (when fitted) ``mixed_model.csv``, added to ``files``."""
    from analysis.stats import study_statistics

    statistics = study_statistics(
        scores,
        participant_scores,
        higher_is_better=HIGHER_IS_BETTER,
        kinds=dict(zip(scores["map"], scores["kind"])),
        n_resamples=config.bootstrap_resamples,
        confidence=config.confidence,
        seed=config.seed,
        mixed=config.mixed_model,
    )
    summary = statistics["summary"]
    summary["untrained"] = summary["map"].isin(scores.loc[scores["untrained"], "map"].unique())
    summary.to_csv(files["summary"], index=False)
    statistics["comparisons"].to_csv(files["comparisons"], index=False)
    if not statistics["mixed_model"].empty:
        files["mixed_model"] = out / "mixed_model.csv"
        statistics["mixed_model"].to_csv(files["mixed_model"], index=False)
    return statistics


def _params(
    config: AnalysisConfig,
    scores: pd.DataFrame,
    human_maps: dict[str, np.ndarray],
    stimulus_set: StimulusSet,
    store: MapStore | None,
    store_maps: list[str],
    fixations: pd.DataFrame,
    selected: pd.DataFrame,
    *,
    study: StudyFixations,
    command_line: list[str] | None,
    pool: list[str],
    fit: DensityFit,
    statistics: dict,
) -> dict:
    """params.json: the configuration, versions, inputs and counts, and what the numbers mean."""
    return {
        "lookwhere_version": lookwhere.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "config": json.loads(config.model_dump_json()),
        "n_images": int(scores["image"].nunique()),
        "n_fixations_read": int(len(fixations)),
        "n_fixations_used": int(len(selected)),
        "n_participants": int(fixations["participant"].nunique()),
        "command_line": command_line,
        "packages": package_versions(),
        "inputs_sha256": sha256_of(
            [
                *study.files,
                *([config.trials_table] if config.trials_table else []),
                *(stimulus_set.path(image_id) for image_id in human_maps),
            ]
        ),
        "fixations": _fixation_counts(config, study, fixations, selected),
        "display_period": _display_period(config, fixations, study),
        "viewing_time_ms": _viewing_time(fixations),
        "images": {"analysed": len(human_maps), "not_analysed": _images_not_analysed(study, pool, human_maps)},
        "recordings": study.recordings,
        "left_out": study.failed,
        "source_agreement": None
        if study.agreement is None
        else {name: int(study.agreement[name].sum()) for name in ("n_link", "n_edf", "n_matched")},
        "warnings": study.warnings,
        "maps": sorted(scores["map"].unique()),
        "map_store": None
        if store is None
        else {"path": str(config.maps), "maps": store_maps, "metadata": store.metadata},
        "baseline_pool": {
            "n_images": len(pool),
            "n_images_with_fixations_without_stimulus": int(study.table["image"].nunique()) - len(pool),
            "rule": "the dataset prior and the shuffled-AUC negatives of an image come from every other image of "
            "the input with fixations and a stimulus file, whatever --images selects",
        },
        "statistics": {
            "headline": "target 'participant': every map against each participant's own heatmap and fixations; "
            "CIs from a two-way bootstrap over images and participants",
            "kendalls_w": statistics["kendalls_w"],
            "mixed_model": "value ~ map + (1|image) + (1|participant), statsmodels MixedLM (REML), mixed_model.csv"
            if not statistics["mixed_model"].empty
            else "not fitted (fewer than 3 participants, or --no-mixed-model)",
        },
        "densities": {
            "kl_ig_maps": config.kl_ig_maps,
            "density_fit": config.density_fit,
            "rule": "KL divergence and information gain compare each map turned into a density: min-max, Gaussian "
            "blur (reflected borders), divided by the sum, mixed with the centre-bias density (1 - w) P + w C; "
            "sigma and w fitted per map by the log-likelihood of the fixations on the other images of the "
            "pool (leave one image out; per image in density_params.csv); information gain over the "
            "centre bias's density. The uniform control is a density as it is.",
            **fit.summary(),
        },
        "notes": _NOTES,
    }


def _write_outputs(
    config,
    scores,
    loso,
    human_maps,
    stimulus_set,
    store,
    store_maps,
    fixations,
    selected,
    *,
    out: Path,
    study: StudyFixations,
    command_line,
    pool: list[str],
    tables: dict[str, pd.DataFrame],
    fit: DensityFit,
    extras=(),
) -> AnalysisResult:
    from analysis import report

    files = {
        "scores": out / "scores.csv",
        "loso_scores": out / "loso_scores.csv",
        "heatmaps": out / "heatmaps.npz",
        "params": out / "params.json",
        "summary": out / "summary.csv",
        "comparisons": out / "comparisons.csv",
    }
    if study.agreement is not None:
        files["source_agreement"] = out / "source_agreement.csv"
        study.agreement.to_csv(files["source_agreement"], index=False)
    for name, table in tables.items():
        files[name] = out / f"{name}.csv"
        table.to_csv(files[name], index=False)
    scores.to_csv(files["scores"], index=False)
    loso.to_csv(files["loso_scores"], index=False)
    dtype = np.float64 if config.heatmaps_float64 else np.float32  # float32: 7 digits, half the size
    np.savez_compressed(files["heatmaps"], **{image: values.astype(dtype) for image, values in human_maps.items()})

    statistics = _write_statistics(config, scores, tables["participant_scores"], files, out)
    summary, comparison_table = statistics["summary"], statistics["comparisons"]

    params = _params(
        config,
        scores,
        human_maps,
        stimulus_set,
        store,
        store_maps,
        fixations,
        selected,
        study=study,
        command_line=command_line,
        pool=pool,
        fit=fit,
        statistics=statistics,
    )
    stat_options = dict(n_resamples=config.bootstrap_resamples, confidence=config.confidence, seed=config.seed)
    for extra in extras:
        files.update(extra.write(out, stat_options=stat_options))
        params.update(extra.record())
    files["params"].write_text(json.dumps(params, indent=2, default=str))

    files.update(
        report.write_report(
            out,
            config=config,
            scores=scores,
            summary=summary,
            comparisons=comparison_table,
            human_maps=human_maps,
            stimulus_set=stimulus_set,
            store=store,
            params=params,
            tables={name: table for extra in extras for name, table in extra.tables.items()},
            ceilings=tables["ceilings"],
            mixed=statistics["mixed_model"],
        )
    )
    logger.info("wrote %s", ", ".join(str(p.name) for p in files.values()))
    return AnalysisResult(out=out, scores=scores, summary=summary, files=files)


def _fixation_counts(
    config: AnalysisConfig, study: StudyFixations, fixations: pd.DataFrame, selected: pd.DataFrame
) -> dict:
    """Fixations read, dropped by reason (in the order the steps run) and used, in all and per eye."""
    dropped = Counter(study.counts["dropped"])
    dropped["image not analysed"] = len(study.table) - len(fixations)
    first_only = config.heatmap.model_copy(update={"within_display_only": False})
    after_first = len(select_fixations(fixations, first_only))
    dropped["first fixation of its trial"] = len(fixations) - after_first
    dropped["outside the display period"] = after_first - len(selected)
    return {
        "read": int(study.counts["read"]),
        "read_per_eye": _per_eye(study.counts["read_per_eye"]),
        "dropped": {reason: int(n) for reason, n in dropped.items() if n},
        "used": len(selected),
        "used_per_eye": _per_eye(Counter(selected["eye"].astype(str))),
    }


def _per_eye(counts: Counter) -> dict[str, int]:
    return {eye or "unknown": int(n) for eye, n in counts.items()}


def _viewing_time(fixations: pd.DataFrame) -> dict:
    """How long the images were shown (per trial, ms): median and range; None where unknown."""
    shown = (
        fixations.groupby(["participant", "session", "trial", "image"], dropna=False, observed=True)[
            "stimulus_duration_ms"
        ]
        .first()
        .dropna()
    )
    if shown.empty:
        return {"median": None, "min": None, "max": None, "n_trials": 0}
    return {
        "median": float(shown.median()),
        "min": float(shown.min()),
        "max": float(shown.max()),
        "n_trials": int(shown.size),
    }


def _images_not_analysed(study: StudyFixations, pool: list[str], analysed) -> dict[str, int]:
    """Images with fixations that were not analysed, by reason."""
    with_fixations = set(study.table["image"].unique())
    reasons = {
        "without a stimulus file": len(with_fixations - set(pool)),
        "not selected by --images (in the baselines' pool)": len(set(pool) - set(analysed)),
    }
    return {reason: n for reason, n in reasons.items() if n}


def _display_period(config: AnalysisConfig, fixations: pd.DataFrame, study: StudyFixations) -> dict:
    """The display-period rule actually applied, and to how many fixations it could not be."""
    unknown = fixations[["start_ms", "end_ms", "stimulus_duration_ms"]].isna().any(axis=1)
    return {
        "rule": "0 <= start_ms and end_ms <= stimulus_duration_ms (ms from image onset), not cut short by a "
        "recording stop (truncated)"
        if config.heatmap.within_display_only
        else "not applied (within_display_only is off)",
        "fixations_without_times_kept": int(unknown.sum()) if config.heatmap.within_display_only else None,
        "per_recording": {r["file"]: r["display_period"] for r in study.recordings if "display_period" in r},
    }
