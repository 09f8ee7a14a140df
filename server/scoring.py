"""Live scoring: an :class:`analysis.engine.ImageEngine` per recently scored image, kept current.

The live state (:class:`server.state.LiveState`) hands the scorer a cheap snapshot of one image
(:class:`ImageInput`: its pooled fixation rows and two version numbers); the scorer brings that
image's engine up to date and answers with the image's summary. Per new fixation that is one
kernel stamp and the metrics' running statistics (:mod:`analysis.engine`), not a recomputation:

* the image's rows are selected (:func:`analysis.heatmap.select_fixations`, per trial, so the
  image's rows alone give the same selection as the whole table); when the engine's fixations are
  a prefix of the selection, only the new ones are added, otherwise (an aborted run retracted, a
  fixation deselected by its trial's measured display time) the engine is rebuilt from them;
* the dataset prior and shuffled-AUC negatives come from the other images' selected fixations:
  recomputed only when those changed (``context_version``), i.e. about once per trial.

Engines are kept for the last ``max_images`` images (each holds about 25 bytes per map and pixel:
240 MB for 20 maps of 800×600, see :mod:`analysis.engine`), so memory is bounded whatever the
number of stimuli. Not thread-safe: one thread (or one lock) at a time.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis._engine_backend import backend
from analysis.engine import ImageEngine
from analysis.heatmap import select_fixations
from analysis.offline import without_selection
from analysis.scoring_config import ScoringConfig
from lookwhere.records import FIXATION_COLUMNS, FIXATION_DTYPES

__all__ = ["ImageInput", "LiveScorer", "fixation_table"]

logger = logging.getLogger(__name__)

_KEY_COLUMNS = ["x_image_px", "y_image_px", "duration_ms", "participant"]


def fixation_table(rows) -> pd.DataFrame:
    """Rows of :data:`lookwhere.records.FIXATION_COLUMNS` tuples as the tidy fixation table."""
    return pd.DataFrame(list(rows), columns=list(FIXATION_COLUMNS)).astype(FIXATION_DTYPES)


@dataclass(frozen=True)
class ImageInput:
    """What scoring one image needs from the live state, taken under its lock.

    Attributes
    ----------
    image : str
    shape : (int, int)
        ``(H, W)`` in pixels.
    rows : tuple of tuple
        The image's pooled fixations (unselected), :data:`~lookwhere.records.FIXATION_COLUMNS`
        tuples in arrival order.
    context_version : int
        Changes whenever another image's fixations change (dataset prior, shuffled AUC).
    participant : str or None
        The current participant, whose own heatmap is scored too.
    """

    image: str
    shape: tuple[int, int]
    rows: tuple[tuple, ...]
    context_version: int
    participant: str | None


#: Returns every image's pooled fixation rows and the shapes of the images that have any.
ContextSource = Callable[[], tuple[list[tuple], dict[str, tuple[int, int]]]]


class LiveScorer:
    """Summaries of images scored incrementally, equal to the offline analysis.

    Parameters
    ----------
    maps : MapStore or RecentMaps, optional
        Model maps scored beside the baselines (loaded at each image's size).
    scoring : ScoringConfig
        How to score; its heatmap parameters with the selection switches as configured (selection
        runs here).
    device : {"auto", "cpu", "cuda"}
        Where the engines compute (same results).
    max_images : int
        Engines kept; the least recently scored image's engine is dropped beyond.
    """

    def __init__(self, *, maps=None, scoring: ScoringConfig, device: str = "cpu", max_images: int = 3) -> None:
        if max_images < 1:
            raise ValueError(f"max_images must be >= 1; got {max_images!r}")
        self.maps = maps
        self.scoring = scoring
        self.params = scoring.heatmap
        # resolved once, here: a device that is not there fails at start, and "auto" imports
        # torch now rather than in the first scoring
        resolved = backend(device)
        #: where the engines compute: "cpu" (numpy) or a torch device such as "cuda:0"
        self.device = "cpu" if resolved.name == "numpy" else str(resolved.device)
        self._engine_options = dict(
            params=without_selection(scoring.heatmap),
            device=self.device,
            center_bias_sigma_fraction=scoring.center_bias_sigma_fraction,
            **scoring.engine_options(),
        )
        self.max_images = max_images
        self._engines: OrderedDict[str, ImageEngine] = OrderedDict()
        self._keys: dict[str, list[tuple]] = {}  # image → the engine's fixations, in order added

    def summary(self, item: ImageInput, context: ContextSource) -> dict:
        """The image's fixation counts, pooled scores (with ``human_loso`` when two participants
        have fixations), and the current participant's scores (``participant_scores``, None while
        they have no selected fixation on it): JSON-ready apart from NaN."""
        table, selected = self._tables(item)
        engine = self._update(item, selected, context)
        scores = dict(engine.scores())
        ceiling = engine.human_loso()
        if ceiling is not None:
            scores["human_loso"] = ceiling
        own = item.participant if item.participant in engine.participants else None
        return {
            "image": item.image,
            "shape": list(item.shape),
            "heatmap_params": self.params.model_dump(),
            "n_fixations": len(table),
            "n_fixations_used": len(selected),
            "n_participants": int(selected["participant"].nunique()),
            "participant": item.participant,
            "n_fixations_participant": int((table["participant"] == item.participant).sum()),
            "scores": scores,
            "participant_scores": None if own is None else engine.participant_scores(own),
        }

    def prepare(self, item: ImageInput, context: ContextSource) -> None:
        """Bring the image's engine up to date without scoring: at a trial's start, so the maps are
        prepared (about a second for 20 maps of 800×600 on 2 CPU cores) before its first fixation
        (the first one of a trial is not used by default, so there is more time still)."""
        self._update(item, self._tables(item)[1], context)

    def heatmap(self, item: ImageInput, context: ContextSource, *, participant: str | None = None) -> np.ndarray | None:
        """The pooled heatmap (or ``participant``'s), ``(H, W)`` float64; None without fixations."""
        _, selected = self._tables(item)
        if selected.empty:
            return None
        engine = self._update(item, selected, context)
        if participant is not None and participant not in engine.participants:
            return None
        return engine.heatmap(participant)

    def _tables(self, item: ImageInput) -> tuple[pd.DataFrame, pd.DataFrame]:
        table = fixation_table(item.rows)
        return table, select_fixations(table, self.params)

    def _update(self, item: ImageInput, selected: pd.DataFrame, context: ContextSource) -> ImageEngine:
        engine = self._engine(item)
        keys = list(selected[_KEY_COLUMNS].itertuples(index=False, name=None))
        held = self._keys[item.image]
        if keys[: len(held)] == held:
            engine.add_fixations(selected.iloc[len(held) :])
        else:  # a retracted run or a changed selection: exactness first
            logger.debug("image %s: rebuilding its engine from %d fixations", item.image, len(keys))
            engine.replace_fixations(selected)
        self._keys[item.image] = keys
        if engine.context_version != item.context_version:
            rows, shapes = context()
            engine.set_context(
                select_fixations(fixation_table(rows), self.params), shapes, version=item.context_version
            )
        return engine

    def _engine(self, item: ImageInput) -> ImageEngine:
        engine = self._engines.get(item.image)
        if engine is None:
            maps = self.maps.load(item.image, shape=item.shape) if self.maps is not None else {}
            engine = self._engines[item.image] = ImageEngine(item.image, item.shape, maps, **self._engine_options)
            self._keys[item.image] = []
            while len(self._engines) > self.max_images:
                dropped, _ = self._engines.popitem(last=False)
                del self._keys[dropped]
        self._engines.move_to_end(item.image)
        return engine
