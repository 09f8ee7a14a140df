"""Which object name was said in each utterance: pocketsphinx constrained to the image's names.

Automatic, meant to be reviewed. Each utterance is decoded by pocketsphinx (its US-English
acoustic model and CMU dictionary ship in its wheel; nothing is downloaded) with a grammar that
allows exactly one of the names the image can be expected to get: the names of the image's object
classes (the ``classes`` column of the stimulus folder's ``manifest.csv``, as the VOC 2007 set has)
looked up in a synonyms file (``class,name[,pronunciation]``; the default,
:data:`DEFAULT_SYNONYMS`, covers the 20 VOC classes). An image without classes gets every name of
the file.

A constrained grammar always answers with one of its names, so the answer comes with a score: the
per-frame acoustic log-likelihood of the decoded name minus that of an unconstrained phone loop
over the same audio (≤ 0 up to search noise; nearer 0 is a closer match). It ranks answers for
review; it is not a calibrated probability.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.voice.detect import ANALYSIS_RATE_HZ, _resample
from analysis.voice.recordings import AudioTrial, read_wav

__all__ = ["DEFAULT_SYNONYMS", "read_synonyms", "image_classes", "NameRecognizer", "recognise_names", "NAME_COLUMNS"]

logger = logging.getLogger(__name__)

DEFAULT_SYNONYMS = Path(__file__).resolve().parent / "data" / "synonyms.csv"
#: Columns :func:`recognise_names` adds to the utterance table.
NAME_COLUMNS = ("word", "name_class", "name_score")
_PADDING_MS = 100.0  # audio kept around each utterance: the decoder wants silence at both ends


def read_synonyms(path=DEFAULT_SYNONYMS) -> pd.DataFrame:
    """The synonyms file: one row per (class, name), with an optional ARPAbet pronunciation.

    Lines starting with ``#`` are comments. Names are lower-cased.

    Raises
    ------
    ValueError
        When the file lacks the ``class`` or ``name`` column or has an empty name.
    """
    table = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False, skipinitialspace=True)
    missing = sorted({"class", "name"} - set(table.columns))
    if missing:
        raise ValueError(f"synonyms file {path} lacks the columns {missing}; expected class,name[,pronunciation]")
    if "pronunciation" not in table.columns:
        table["pronunciation"] = ""
    table = table[["class", "name", "pronunciation"]].apply(lambda column: column.str.strip())
    table["name"] = table["name"].str.lower()
    empty = table.index[(table["name"] == "") | (table["class"] == "")]
    if len(empty):
        raise ValueError(f"synonyms file {path}: rows {list(empty + 2)[:5]} have an empty class or name")
    return table.reset_index(drop=True)


def image_classes(stimuli) -> dict[str, tuple[str, ...]]:
    """Image id → its object classes, from the stimulus folder's ``manifest.csv`` (empty when it has none)."""
    from stimuli.manifest import MANIFEST_NAME, read_manifest

    path = Path(stimuli) / MANIFEST_NAME
    if not path.is_file():
        return {}
    return {
        entry.image_id: tuple(c for c in entry.extra.get("classes", "").split(";") if c)
        for entry in read_manifest(path)
        if entry.extra.get("classes")
    }


class NameRecognizer:
    """pocketsphinx with one grammar per set of expected classes.

    Parameters
    ----------
    synonyms : DataFrame
        From :func:`read_synonyms`. A name with a word that neither the CMU dictionary nor the
        file's pronunciation knows is left out with a warning.
    """

    def __init__(self, synonyms: pd.DataFrame) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as error:
            raise ImportError(
                "recognising names needs pocketsphinx (pip install 'pocketsphinx==5.1.1', installed "
                "by scripts/setup.sh); or pass --names off"
            ) from error
        # Dither keeps the features finite in digital silence; batch CMN suits whole utterances.
        self._decoder = Decoder(lm=None, samprate=ANALYSIS_RATE_HZ, dither=True, cmn="batch", loglevel="FATAL")
        self._decoder.add_allphone_file("_phones")
        self._names: dict[str, set[str]] = {}
        self._searches: dict[tuple[str, ...], str] = {}
        unknown = []
        for cls, name, pronunciation in synonyms[["class", "name", "pronunciation"]].itertuples(index=False, name=None):
            if pronunciation:  # one dictionary entry for the whole name
                words = [name.replace(" ", "_")]
                self._decoder.add_word(words[0], pronunciation, update=True)
            else:
                words = name.split()
            missing = [w for w in words if self._decoder.lookup_word(w) is None]
            if missing:
                unknown.append(f"{name!r} ({', '.join(missing)})")
                continue
            self._names.setdefault(cls, set()).add(" ".join(words))
        if unknown:
            logger.warning(
                "names left out of the grammar (not in the dictionary; give a pronunciation in the synonyms file): %s",
                "; ".join(unknown),
            )
        if not self._names:
            raise ValueError("no name of the synonyms file can be recognised")
        self._class_of = {name.replace("_", " "): cls for cls, names in self._names.items() for name in names}

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(sorted(self._names))

    def _search(self, classes: tuple[str, ...]) -> str:
        """The decoder's search (grammar) for one set of classes, added on first use."""
        if classes not in self._searches:
            alternatives = " | ".join(sorted({name for cls in classes for name in self._names[cls]}))
            key = f"names{len(self._searches)}"
            self._decoder.add_jsgf_string(key, f"#JSGF V1.0;\ngrammar names;\npublic <name> = ( {alternatives} );\n")
            self._searches[classes] = key
        return self._searches[classes]

    def _decode(self, search: str, pcm: bytes) -> tuple[str, float, int]:
        decoder = self._decoder
        decoder.activate_search(search)
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        segments = list(decoder.seg() or ())  # None when nothing was decoded (e.g. silence)
        log_score = sum(math.log(max(s.ascore, 1e-300)) for s in segments)
        frames = segments[-1].end_frame + 1 if segments else 0
        return ("" if hypothesis is None else hypothesis.hypstr), log_score, frames

    def recognise(self, audio_16k: np.ndarray, classes: Sequence[str] | None = None) -> tuple[str, str, float]:
        """The name said in one utterance.

        Parameters
        ----------
        audio_16k : ndarray, shape (N,)
            The utterance with some silence around it, mono, 16 kHz, floats in [-1, 1].
        classes : sequence of str, optional
            The classes whose names the grammar allows (default: every class).

        Returns
        -------
        (word, name_class, score)
            ``word`` as spoken (e.g. ``"couch"``), its class (``"sofa"``) and the score (module
            docstring); ``("", "", nan)`` when the decoder found no name.
        """
        wanted = tuple(sorted(c for c in (classes or self.classes) if c in self._names)) or self.classes
        pcm = (np.clip(audio_16k, -1, 1) * 32767).astype("<i2").tobytes()
        word, name_score, frames = self._decode(self._search(wanted), pcm)
        word = word.replace("_", " ").strip()
        if not word or frames == 0:
            return "", "", float("nan")
        _, phone_score, _ = self._decode("_phones", pcm)
        return word, self._class_of.get(word, ""), (name_score - phone_score) / frames


def recognise_names(
    utterances: pd.DataFrame,
    trials: Sequence[AudioTrial],
    *,
    classes_of: Mapping[str, Sequence[str]] | None = None,
    synonyms: pd.DataFrame | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """``utterances`` with the columns :data:`NAME_COLUMNS` added (module docstring).

    Parameters
    ----------
    utterances : DataFrame
        From :func:`~analysis.voice.recordings.detect_trials`.
    trials : sequence of AudioTrial
        The recordings the utterances came from (matched on ``file``).
    classes_of : mapping image id → classes, optional
        The classes each image shows (:func:`image_classes`); images not in it get every name.
    synonyms : DataFrame, optional
        :func:`read_synonyms` (default: :data:`DEFAULT_SYNONYMS`).
    """
    from tqdm.auto import tqdm

    out = utterances.copy()
    out["word"], out["name_class"], out["name_score"] = "", "", np.nan
    if out.empty:
        return out.astype({"word": "string", "name_class": "string"})
    recognizer = NameRecognizer(read_synonyms() if synonyms is None else synonyms)
    by_file = {str(trial.file): trial for trial in trials}
    classes_of = classes_of or {}
    results = []
    for file, rows in tqdm(
        out.groupby("file", sort=False), desc="recognising names", unit="trial", disable=not progress
    ):
        trial = by_file[file]
        samples, rate_hz = read_wav(trial.file)
        audio = _resample(samples, rate_hz)
        for index, row in rows.iterrows():
            start = int(max((row["onset_ms"] - trial.offset_ms - _PADDING_MS) * ANALYSIS_RATE_HZ / 1000, 0))
            stop = int((row["offset_ms"] - trial.offset_ms + _PADDING_MS) * ANALYSIS_RATE_HZ / 1000)
            results.append((index, *recognizer.recognise(audio[start:stop], classes_of.get(row["image"]))))
    for index, word, name_class, score in results:
        out.loc[index, ["word", "name_class", "name_score"]] = word, name_class, score
    return out.astype({"word": "string", "name_class": "string", "name_score": "float64"})
