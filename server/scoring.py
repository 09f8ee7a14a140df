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

Preparing an image's maps takes about two seconds (20 maps of 800×600 on 2 CPU cores), more than
a fixation's update by far; so the image of the *next* trial (``trial_start.next_image``) is
prepared by a background worker (below the receiver's priority, one image at a time) while the
current trial runs (:meth:`LiveScorer.prepare_in_background`), and is ready when its trial starts.

Engines are kept for the last ``max_images`` images (each holds about 33 bytes per map and pixel
plus ~80 per pixel with the numpy backend; measured with tracemalloc: 356 MB for 20 maps of
800×600, see :mod:`analysis.engine`), so memory is bounded whatever the number of stimuli.
Thread-safe: the engines are used by one thread at a time.
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


#: resolved once: pandas' lookup of dtypes by name was most of a table's cost (6 ms for 40 rows)
_DTYPES = {name: pd.api.types.pandas_dtype(dtype) for name, dtype in FIXATION_DTYPES.items()}


def fixation_table(rows) -> pd.DataFrame:
    """Rows of :data:`lookwhere.records.FIXATION_COLUMNS` tuples as the tidy fixation table."""
    columns = list(zip(*rows)) or [()] * len(FIXATION_COLUMNS)
    return pd.DataFrame(
        {
            name: np.array(values, dtype=dtype) if isinstance(dtype, np.dtype) else pd.array(values, dtype=dtype)
            for name, values, dtype in zip(FIXATION_COLUMNS, columns, _DTYPES.values())
        }
    )


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
        self._lock = threading.Lock()  # the two above and the four below, against the background worker
        self._prepared = threading.Condition(self._lock)  # notified when a preparation ends
        self._queue: OrderedDict[str, tuple[ImageInput, ContextSource]] = OrderedDict()  # oldest first
        self._preparing: str | None = None  # the image the worker prepares now
        self._worker: threading.Thread | None = None  # alive while the queue is not empty
        # image → held while its engine is in use: by each public method, and by the worker for an
        # engine that exists already (taken before waiting for a preparation, never the other way)
        self._busy: dict[str, threading.Lock] = {}
        self._last_tables: tuple[ImageInput, pd.DataFrame, pd.DataFrame] | None = None  # see _tables

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
        with self._using(item.image):
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

    def ceiling(self, item: ImageInput, context: ContextSource) -> None:
        """Compute the image's human ceiling, kept for :meth:`summary` (which adds the participant's
        scores to it): the live scoring's third step can then wait for newer fixations' scores."""
        selected = self._tables(item)[1]
        with self._using(item.image):
            self._update(item, selected, context).human_loso()

    def prepare(self, item: ImageInput, context: ContextSource) -> None:
        """Bring the image's engine up to date without scoring: at a trial's start, so the maps are
        prepared (about a second for 20 maps of 800×600 on 2 CPU cores) before its first fixation
        (the first one of a trial is not used by default, so there is more time still)."""
        selected = self._tables(item)[1]
        with self._using(item.image):
            self._update(item, selected, context)

    def prepare_in_background(self, item: ImageInput, context: ContextSource) -> None:
        """Queue the image's engine (maps, fixations so far, other images) for preparation in the
        background, unless it is queued or prepared with this context already (an engine whose
        context is older catches up). Returns at once; thread-safe.

        One worker prepares the queued images in turn, at the scoring thread's priority: two
        preparations at once would each take twice as long (2 CPU cores, the GIL), and the image
        of a trial that has started would wait behind the next trial's. A scoring that needs a
        queued image takes it off the queue and prepares it itself; one that needs the image being
        prepared waits for it.
        """
        with self._lock:
            engine = self._engines.get(item.image)
            if (engine is not None and engine.context_version == item.context_version) or item.image == self._preparing:
                return
            self._queue.pop(item.image, None)
            self._queue[item.image] = (item, context)  # the latest request, with its context
            while len(self._queue) > self.max_images:  # only the most recent requests can be kept
                self._queue.popitem(last=False)
            if self._worker is None:
                self._worker = threading.Thread(target=self._prepare_queued, daemon=True, name="lookwhere-prepare")
                self._worker.start()

    def _prepare_queued(self) -> None:
        # The scoring thread's priority, not lower: it may come to wait for this preparation, and
        # under load a lower one would starve (Linux schedules threads by their own nice value).
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            logger.debug("could not lower the preparing thread's priority", exc_info=True)
        while True:
            with self._prepared:
                if not self._queue:
                    self._worker = None
                    self._prepared.notify_all()
                    return
                image, (item, context) = self._queue.popitem(last=False)
                if image not in self._engines:
                    self._preparing = image
            try:
                if self._preparing == image:  # a new engine: no other thread has it yet
                    engine = self._new_engine(item)
                    keys = self._catch_up(engine, [], item, self._tables(item)[1], context)
                    with self._lock:
                        self._insert(image, engine, keys)
                else:  # an engine the scoring thread may be using: in turn with it
                    with self._using(image):
                        self._update(item, self._tables(item)[1], context)
            except Exception:  # the image is then prepared when it is scored
                logger.exception("preparing image %s in the background failed", image)
            finally:
                with self._prepared:
                    self._preparing = None
                    self._prepared.notify_all()

    def wait_prepared(self, timeout_s: float | None = None) -> bool:
        """Wait until nothing is queued or being prepared; False when ``timeout_s`` passed first."""
        with self._prepared:
            return self._prepared.wait_for(lambda: self._worker is None, timeout=timeout_s)

    def heatmap(self, item: ImageInput, context: ContextSource, *, participant: str | None = None) -> np.ndarray | None:
        """The pooled heatmap (or ``participant``'s), ``(H, W)`` float64; None without fixations."""
        _, selected = self._tables(item)
        if selected.empty:
            return None
        with self._using(item.image):
            engine = self._update(item, selected, context)
            if participant is not None and participant not in engine.participants:
                return None
            return engine.heatmap(participant)

    def _using(self, image: str) -> threading.Lock:
        """The lock held while ``image``'s engine is in use."""
        with self._lock:
            return self._busy.setdefault(image, threading.Lock())

    def _tables(self, item: ImageInput) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The image's fixation table and its selection (the last item's kept: a scoring's two
        steps ask for the same)."""
        last = self._last_tables
        if last is not None and last[0] is item:
            return last[1], last[2]
        table = fixation_table(item.rows)
        selected = select_fixations(table, self.params)
        self._last_tables = (item, table, selected)
        return table, selected

    def _update(self, item: ImageInput, selected: pd.DataFrame, context: ContextSource) -> ImageEngine:
        engine, held = self._engine(item)
        keys = self._catch_up(engine, held, item, selected, context)
        with self._lock:
            if self._engines.get(item.image) is engine:
                self._keys[item.image] = keys
        return engine

    def _catch_up(
        self, engine: ImageEngine, held: list[tuple], item: ImageInput, selected: pd.DataFrame, context: ContextSource
    ) -> list[tuple]:
        """Bring ``engine`` (holding the fixations ``held``) to ``selected`` and ``item``'s context;
        the fixations it holds then."""
        keys = list(selected[_KEY_COLUMNS].itertuples(index=False, name=None))
        if keys[: len(held)] == held:
            engine.add_fixations(selected.iloc[len(held) :])
        else:  # a retracted run or a changed selection: exactness first
            logger.debug("image %s: rebuilding its engine from %d fixations", item.image, len(keys))
            engine.replace_fixations(selected)
        if engine.context_version != item.context_version:
            rows, shapes = context()
            engine.set_context(
                select_fixations(fixation_table(rows), self.params), shapes, version=item.context_version
            )
        return keys

    def _engine(self, item: ImageInput) -> tuple[ImageEngine, list[tuple]]:
        """The image's engine and the fixations it holds (a new engine: none)."""
        with self._prepared:
            self._queue.pop(item.image, None)  # queued, not started: prepared here and now instead
            self._prepared.wait_for(lambda: self._preparing != item.image)  # being prepared: its result
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
