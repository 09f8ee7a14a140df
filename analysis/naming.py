"""Naming-aligned fixations: what the participant looked at just before naming each object.

For every utterance (:mod:`analysis.voice`) the fixations in the window ``[onset − window_ms,
onset)`` (default 1,000 ms) are taken from the fixations selected for the heatmaps, each cut to the
window (:func:`analysis.timecourse.fixations_in_window`: its duration is the time it spent in the
window). Then:

- every map is scored against them (:func:`analysis.timecourse.score_fixation_sets`, i.e. the
  engine the whole-trial analysis uses), per utterance, and summarised over images (the mean of
  an image's utterances first, so images are the unit of resampling as elsewhere);
- their pooled heatmap per image (all utterances of all participants) is saved;
- where the stimulus set has object boxes (VOC annotations), each fixation is given to the smallest
  box containing it, and the utterance gets ``fixated_class`` (the class looked at longest in the
  window), ``last_fixated_class`` (the class under the last fixation before the onset) and
  ``named_fixated`` (whether the class it named was looked at in the window).

Object boxes come from ``--boxes``: a folder of VOC annotation XML files (``<image>.xml`` with
``<object><name>`` and ``<bndbox>``, 1-based inclusive pixels as VOC writes them) or a CSV with
columns ``image,class,xmin_px,ymin_px,xmax_px,ymax_px`` in the project's continuous image pixels
(origin at the top-left corner of the top-left pixel). By default the stimulus folder's
``Annotations/`` folder or ``boxes.csv``, when present.
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from analysis.timecourse import TRIAL_KEYS, fixations_in_window, on_image, score_fixation_sets
from analysis.voice.detect import VoiceParams

__all__ = [
    "NamingParams",
    "NamingAnalysis",
    "naming_analysis",
    "read_boxes",
    "default_boxes",
    "session_utterances",
    "BOX_COLUMNS",
]

logger = logging.getLogger(__name__)

BOX_COLUMNS = ["image", "class", "xmin_px", "ymin_px", "xmax_px", "ymax_px"]
_UTTERANCE_KEYS = [*TRIAL_KEYS, "utterance"]


class NamingParams(BaseModel):
    """The naming task's audio in ``lookwhere analyze --dataset session``; written to ``params.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="find utterances in the sessions' audio and align fixations to them")
    voice: VoiceParams = VoiceParams()
    names: bool = Field(True, description="recognise the name said (pocketsphinx; automatic)")
    synonyms: Path | None = Field(None, description="class,name[,pronunciation] CSV (default: the VOC classes' list)")
    corrections: Literal["use", "ignore"] = Field(
        "use", description="use reviewed utterances (voice_corrections.jsonl in the session folder) where present"
    )
    window_ms: float = Field(1000.0, gt=0, description="fixations this long before each utterance's onset")
    boxes: Path | None = Field(
        None, description="VOC Annotations folder or boxes CSV (default: in the stimulus folder)"
    )


def read_boxes(path) -> pd.DataFrame:
    """Object boxes of the stimulus images, in continuous image pixels.

    Parameters
    ----------
    path : path
        A folder of VOC annotation XML files or a CSV with :data:`BOX_COLUMNS` (module docstring).

    Returns
    -------
    DataFrame
        :data:`BOX_COLUMNS`; a VOC box ``xmin..xmax`` (1-based, inclusive) becomes
        ``[xmin − 1, xmax)``. Objects marked difficult are kept (a participant may still name them).

    Raises
    ------
    ValueError
        When a file is not a VOC annotation or the CSV lacks columns (the message names it).
    """
    path = Path(path)
    if path.is_dir():
        rows = [row for xml in sorted(path.glob("*.xml")) for row in _voc_boxes(xml)]
        return pd.DataFrame(rows, columns=BOX_COLUMNS)
    table = pd.read_csv(path, dtype={"image": str, "class": str})
    missing = [c for c in BOX_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"boxes file {path} lacks the columns {missing}; expected {','.join(BOX_COLUMNS)}")
    return table[BOX_COLUMNS]


def _voc_boxes(path: Path) -> list[dict]:
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"{path} is not a VOC annotation: {error}") from None
    rows = []
    for number, obj in enumerate(root.iter("object"), 1):
        box = obj.find("bndbox")
        texts = [] if box is None else [box.findtext(tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
        try:  # a missing box or coordinate leaves fewer than four numbers
            xmin, ymin, xmax, ymax = (float(text) for text in texts if text is not None)
        except ValueError:
            raise ValueError(f"{path}: object {number} lacks a numeric <bndbox> (xmin, ymin, xmax, ymax)") from None
        rows.append(
            {
                "image": path.stem,
                "class": (obj.findtext("name") or "").strip(),
                "xmin_px": xmin - 1,
                "ymin_px": ymin - 1,
                "xmax_px": xmax,
                "ymax_px": ymax,
            }
        )
    return rows


def default_boxes(stimuli) -> Path | None:
    """``Annotations/`` or ``boxes.csv`` in the stimulus folder, when there."""
    for candidate in (Path(stimuli) / "Annotations", Path(stimuli) / "boxes.csv"):
        if candidate.exists():
            return candidate
    return None


def session_utterances(params: NamingParams, sessions, *, stimuli, progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """The utterances of recorded sessions as the analysis uses them, and their record for ``params.json``.

    Parameters
    ----------
    params : NamingParams
    sessions : path
        A session folder or a folder of sessions.
    stimuli : path
        The stimulus folder (its manifest gives the images' classes for the names).

    Returns
    -------
    table : DataFrame
        :func:`analysis.voice.recordings.find_utterances`' columns plus ``source`` (``automatic`` or
        ``corrected``); empty when the sessions have no audio.
    record : dict
        Recordings and utterances found, and the corrections used.
    """
    from analysis.voice.corrections import apply_corrections
    from analysis.voice.names import image_classes, read_synonyms, recognise_names
    from analysis.voice.recordings import audio_trials, detect_trials

    try:
        trials = audio_trials([sessions])
    except FileNotFoundError:
        logger.info("the sessions in %s hold no audio: no utterances", sessions)
        return pd.DataFrame(), {"recordings": 0, "utterances": 0, "corrections": []}
    table = detect_trials(trials, params=params.voice, progress=progress)
    if params.names:
        synonyms = read_synonyms() if params.synonyms is None else read_synonyms(params.synonyms)
        table = recognise_names(table, trials, classes_of=image_classes(stimuli), synonyms=synonyms, progress=progress)
    folders = {(t.participant, t.session): t.file.parent.parent for t in trials}
    if params.corrections == "use":
        table, corrections = apply_corrections(table, folders)
    else:
        table, corrections = table.assign(source="automatic"), []
    record = {
        "recordings": len(trials),
        "utterances": len(table),
        "corrections": corrections,
        "utterances_by_source": {str(k): int(v) for k, v in table["source"].value_counts().items()},
        "unaligned_recordings": sum(not t.aligned for t in trials),
    }
    return table, record


class NamingAnalysis:
    """Collects the naming-aligned scores image by image, then writes the tables.

    Parameters
    ----------
    params : NamingParams
    utterances : DataFrame
        From :func:`session_utterances`.
    selected : DataFrame
        The fixations selected for the heatmaps.
    boxes : DataFrame, optional
        :func:`read_boxes` of the stimulus set.
    voice_record : dict, optional
        :func:`session_utterances`' record, for ``params.json``.
    """

    def __init__(
        self,
        params: NamingParams,
        utterances: pd.DataFrame,
        selected: pd.DataFrame,
        boxes: pd.DataFrame | None = None,
        *,
        voice_record: dict | None = None,
    ) -> None:
        self.params, self.utterances, self.boxes = params, utterances, boxes
        self._voice_record = voice_record or {}
        self.tables: dict[str, pd.DataFrame] = {}
        self._score_rows: list[dict] = []
        self._heatmaps: dict[str, np.ndarray] = {}
        trials = {key: rows for key, rows in selected.groupby(TRIAL_KEYS, sort=False)}
        no_rows = selected.iloc[:0]
        #: (participant, session, trial, image, utterance) → its window's fixations
        self._windows = (
            {
                key: fixations_in_window(trials.get(key[:4], no_rows), onset - params.window_ms, onset)
                for key, onset in zip(
                    utterances[_UTTERANCE_KEYS].itertuples(index=False, name=None),
                    utterances["onset_ms"].to_numpy(np.float64),
                )
            }
            if len(utterances)
            else {}
        )

    def score_image(self, image_id: str, engine) -> None:
        """Score every utterance of one image, and keep the image's pooled naming-aligned heatmap."""
        windows = {key: table for key, table in self._windows.items() if key[3] == image_id}
        for key, results in score_fixation_sets(engine, windows).items():
            participant, session, trial, image, utterance = key
            self._score_rows += [
                {
                    "participant": participant,
                    "session": session,
                    "trial": trial,
                    "image": image,
                    "utterance": utterance,
                    "map": name,
                    "metric": metric,
                    "value": value,
                }
                for name, values in results.items()
                for metric, value in values.items()
            ]
        pooled = pd.concat(windows.values()) if windows else None
        if pooled is not None and on_image(pooled, engine.shape).any():
            engine.replace_fixations(pooled)
            self._heatmaps[image_id] = engine.heatmap().astype(np.float32)

    def image_results(self) -> tuple[list[dict], dict[str, np.ndarray]]:
        """The score rows and heatmaps of the images scored so far, for :meth:`add_image_results`
        of another copy (``lookwhere analyze --scheduler``: copies on the workers score the images)."""
        return self._score_rows, self._heatmaps

    def add_image_results(self, results: tuple[list[dict], dict[str, np.ndarray]]) -> None:
        """Add what a copy scored (:meth:`image_results`); added in image order, the tables of a serial run."""
        rows, heatmaps = results
        self._score_rows += rows
        self._heatmaps.update(heatmaps)

    def scores(self) -> pd.DataFrame:
        """Per utterance, map and metric: the naming-aligned score."""
        return pd.DataFrame(self._score_rows, columns=[*_UTTERANCE_KEYS, "map", "metric", "value"])

    def fixation_table(self) -> pd.DataFrame:
        """Per utterance: the fixations of its window and the objects they fell on (module docstring)."""
        rows = []
        for key, window in self._windows.items():
            rows.append(
                dict(zip(_UTTERANCE_KEYS, key))
                | self._objects(key[3], window)
                | {"n_fixations": len(window), "dwell_ms": float(window["duration_ms"].sum())}
            )
        table = pd.DataFrame(
            rows,
            columns=[
                *_UTTERANCE_KEYS,
                "n_fixations",
                "dwell_ms",
                "fixated_class",
                "last_fixated_class",
                "fixated_classes",
            ],
        )
        names = self.utterances[
            _UTTERANCE_KEYS + [c for c in ("onset_ms", "word", "name_class", "source") if c in self.utterances.columns]
        ]
        table = names.merge(table, on=_UTTERANCE_KEYS, how="left")
        if "name_class" in table.columns:
            has_boxes = table["fixated_classes"].notna() & table["name_class"].fillna("").ne("")
            table["named_fixated"] = pd.array(
                [
                    (name in classes.split(";")) if ok else pd.NA
                    for name, classes, ok in zip(table["name_class"], table["fixated_classes"].fillna(""), has_boxes)
                ],
                dtype="boolean",
            )
        return table

    def _objects(self, image_id: str, window: pd.DataFrame) -> dict:
        if self.boxes is None or not (self.boxes["image"] == image_id).any():
            return {"fixated_class": None, "last_fixated_class": None, "fixated_classes": None}
        boxes = self.boxes[self.boxes["image"] == image_id]
        x, y = window["x_image_px"].to_numpy()[:, None], window["y_image_px"].to_numpy()[:, None]
        inside = (
            (x >= boxes["xmin_px"].to_numpy())
            & (x < boxes["xmax_px"].to_numpy())
            & (y >= boxes["ymin_px"].to_numpy())
            & (y < boxes["ymax_px"].to_numpy())
        )
        area = ((boxes["xmax_px"] - boxes["xmin_px"]) * (boxes["ymax_px"] - boxes["ymin_px"])).to_numpy()
        # Each fixation belongs to the smallest box around it (a face within a person, a cup on a table).
        chosen = np.where(inside, area[None, :], np.inf).argmin(axis=1)
        classes = np.where(inside.any(axis=1), boxes["class"].to_numpy()[chosen], "")
        dwell = pd.Series(window["duration_ms"].to_numpy()).groupby(classes).sum().drop("", errors="ignore")
        order = np.argsort(window["start_ms"].to_numpy(), kind="stable")
        return {
            "fixated_class": dwell.idxmax() if len(dwell) else "",
            "last_fixated_class": classes[order[-1]] if len(order) else "",
            "fixated_classes": ";".join(sorted(dwell.index)),
        }

    def write(self, out: Path, *, stat_options: dict) -> dict[str, Path]:
        """Write ``utterances.csv``, ``naming.csv`` (:meth:`fixation_table`), ``naming_scores.csv``,
        ``naming_summary.csv`` (mean over images of the images' mean per utterance, bootstrap CI) and
        ``naming_heatmaps.npz`` (image id → pooled naming-aligned heatmap, float32)."""
        from analysis.stats import summarize_scores

        scores = self.scores()
        per_image = scores.groupby(["image", "map", "metric"], as_index=False, sort=False)["value"].mean()
        self.tables = {
            "utterances": self.utterances,
            "naming": self.fixation_table(),
            "naming_scores": scores,
            "naming_summary": summarize_scores(per_image, **stat_options),
        }
        files = {name: out / f"{name}.csv" for name in self.tables}
        for name, table in self.tables.items():
            table.to_csv(files[name], index=False)
        files["naming_heatmaps"] = out / "naming_heatmaps.npz"
        np.savez_compressed(files["naming_heatmaps"], **self._heatmaps)  # type: ignore[arg-type]  # numpy's stub
        return files

    def record(self) -> dict:
        """For ``params.json``: the parameters, the recordings, the corrections used, the window rule."""
        table = self.tables.get("naming", self.fixation_table())
        return {
            "naming": {
                "params": json.loads(self.params.model_dump_json()),
                **self._voice_record,
                "window": f"fixations overlapping [onset - {self.params.window_ms:g} ms, onset), cut to it",
                "utterances_with_fixations": int((table["n_fixations"] > 0).sum()),
                "boxes": None
                if self.boxes is None
                else {"n_boxes": len(self.boxes), "n_images": int(self.boxes["image"].nunique())},
                "names": "automatic (pocketsphinx, grammar of the image's classes); "
                "corrected where source is 'corrected'",
            }
        }


def naming_analysis(
    params: NamingParams, sessions, selected: pd.DataFrame, *, stimuli, progress: bool = False
) -> NamingAnalysis | None:
    """The naming analysis of recorded sessions (None when they hold no audio)."""
    utterances, record = session_utterances(params, sessions, stimuli=stimuli, progress=progress)
    if not record["recordings"]:
        return None
    boxes_path = params.boxes or default_boxes(stimuli)
    boxes = None if boxes_path is None else read_boxes(boxes_path)
    return NamingAnalysis(
        params,
        utterances,
        selected,
        boxes,
        voice_record={**record, "boxes_file": None if boxes_path is None else str(boxes_path)},
    )
