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

Preparing an image's maps takes about a second (20 maps of 800×600 on 2 CPU cores), more than a
fixation's update by far; so the image of the *next* trial (``trial_start.next_image``) is
prepared in a background thread (below the receiver's priority) while the current trial runs
(:meth:`LiveScorer.prepare_in_background`), and is ready when its trial starts.

Engines are kept for the last ``max_images`` images (each holds about 25 bytes per map and pixel:
240 MB for 20 maps of 800×600, see :mod:`analysis.engine`), so memory is bounded whatever the
number of stimuli. Not thread-safe apart from :meth:`LiveScorer.prepare_in_background`: one
thread (or one lock) at a time.
"""

from __future__ import annotations

import logging
import os
import threading
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
        self._lock = threading.Lock()  # the two above, against the background preparation
        self._preparing: dict[str, threading.Thread] = {}

    def summary(self, item: ImageInput, context: ContextSource, *, complete: bool = True) -> dict:
        """The image's fixation counts, pooled scores (with ``human_loso`` when two participants
        have fixations), and the current participant's scores (``participant_scores``, None while
        they have no selected fixation on it): JSON-ready apart from NaN.

        ``complete=False`` skips the human ceiling and the participant's scores, which take most of
        the time (every participant against the others): the baselines' and model maps' scores come
        first, and the same call with ``complete=True`` adds the rest without updating twice.
        ``complete`` in the result says which it is.
        """
        table, selected = self._tables(item)
        engine = self._update(item, selected, context)
        scores = dict(engine.scores())
        own = None
        if complete:
            ceiling = engine.human_loso()
            if ceiling is not None:
                scores["human_loso"] = ceiling
            if item.participant is not None and item.participant in engine.participants:
                own = engine.participant_scores(item.participant)
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
            "participant_scores": own,
            "complete": complete,
        }

    def prepare(self, item: ImageInput, context: ContextSource) -> None:
        """Bring the image's engine up to date without scoring: at a trial's start, so the maps are
        prepared (about a second for 20 maps of 800×600 on 2 CPU cores) before its first fixation
        (the first one of a trial is not used by default, so there is more time still)."""
        self._update(item, self._tables(item)[1], context)

    def prepare_in_background(self, item: ImageInput, context: ContextSource) -> None:
        """Prepare the image's engine (maps, fixations so far, other images) in a background thread
        at the scoring thread's priority, unless it is prepared or being prepared; a later call for the image waits
        for it instead of preparing it twice. Returns at once; thread-safe."""
        with self._lock:
            if item.image in self._engines or item.image in self._preparing:
                return
            thread = threading.Thread(
                target=self._prepare_quietly, args=(item, context), daemon=True, name=f"lookwhere-prepare-{item.image}"
            )
            self._preparing[item.image] = thread
        thread.start()

    def _prepare_quietly(self, item: ImageInput, context: ContextSource) -> None:
        # The scoring thread's priority, not lower: it may come to wait for this preparation, and
        # under load a lower one would starve (Linux schedules threads by their own nice value).
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            logger.debug("could not lower the preparing thread's priority", exc_info=True)
        try:
            engine = self._new_engine(item)
            _, selected = self._tables(item)
            engine.add_fixations(selected)
            rows, shapes = context()
            engine.set_context(
                select_fixations(fixation_table(rows), self.params), shapes, version=item.context_version
            )
            with self._lock:
                self._insert(item.image, engine, list(selected[_KEY_COLUMNS].itertuples(index=False, name=None)))
        except Exception:  # the image is then prepared when its trial starts
            logger.exception("preparing image %s in the background failed", item.image)
        finally:
            with self._lock:
                del self._preparing[item.image]

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
        engine, held = self._engine(item)
        keys = list(selected[_KEY_COLUMNS].itertuples(index=False, name=None))
        if keys[: len(held)] == held:
            engine.add_fixations(selected.iloc[len(held) :])
        else:  # a retracted run or a changed selection: exactness first
            logger.debug("image %s: rebuilding its engine from %d fixations", item.image, len(keys))
            engine.replace_fixations(selected)
        with self._lock:
            if self._engines.get(item.image) is engine:
                self._keys[item.image] = keys
        if engine.context_version != item.context_version:
            rows, shapes = context()
            engine.set_context(
                select_fixations(fixation_table(rows), self.params), shapes, version=item.context_version
            )
        return engine

    def _engine(self, item: ImageInput) -> tuple[ImageEngine, list[tuple]]:
        """The image's engine and the fixations it holds (a new engine: none)."""
        preparing = self._preparing.get(item.image)
        if preparing is not None:
            preparing.join()  # being prepared: wait for it rather than prepare it twice
        with self._lock:
            engine = self._engines.get(item.image)
            if engine is not None:
                self._engines.move_to_end(item.image)
                return engine, self._keys[item.image]
        engine = self._new_engine(item)
        with self._lock:
            self._insert(item.image, engine, [])
        return engine, []

    def _new_engine(self, item: ImageInput) -> ImageEngine:
        maps = self.maps.load(item.image, shape=item.shape) if self.maps is not None else {}
        return ImageEngine(item.image, item.shape, maps, **self._engine_options)

    def _insert(self, image: str, engine: ImageEngine, keys: list[tuple]) -> None:
        """Keep ``engine`` (holding ``keys``) as the most recent; drop the least recent beyond
        ``max_images`` (under the lock)."""
        self._engines[image], self._keys[image] = engine, keys
        self._engines.move_to_end(image)
        while len(self._engines) > self.max_images:
            dropped, _ = self._engines.popitem(last=False)
            del self._keys[dropped]
