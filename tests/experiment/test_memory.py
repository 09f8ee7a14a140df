"""The experiment's memory stays flat over a session (issue 10: it grew ~1.6 MB per trial).

The full 200-trial figure is ``bench/bench_memory.py``; this guard runs 40 short trials with the
garbage collector off from trial 5 on (see ``_memory_probe``), so that anything a trial leaves in
reference cycles shows at once instead of whenever a full collection happens to run.
"""

from __future__ import annotations

import pytest

from tests.conftest import SHARED_DATA
from tests.experiment.conftest import run_probe

OSIE_STIMULI = SHARED_DATA / "osie" / "stimuli"  # 200 photographs: 40 trials of distinct images

#: Allowed RSS growth from trial 5 to 40. The old per-trial ImageStim (a 1440×1080 RGB texture in
#: Mesa's software renderer, ~1.6 MB per trial) grew 56 MB here; what remains is small Python
#: garbage of PsychoPy's drawing (~30 KB per trial without collections).
MAX_GROWTH_MB = 8.0


def test_trials_leave_no_stimuli_and_no_memory_behind(session_env, tmp_path):
    if not OSIE_STIMULI.is_dir():
        pytest.skip(f"real data folder {OSIE_STIMULI} is absent (clone the project beside shared/)")
    observed = run_probe(session_env, "_memory_probe", str(OSIE_STIMULI), str(tmp_path), timeout_s=120)
    after_5, after_40 = observed["5"], observed["40"]
    # Oracle: the stimuli made once per window (image, drift dot and its centre, message) are
    # all there are; none is made per trial.
    assert after_40["visual_stimuli"] == after_5["visual_stimuli"]
    assert after_40["rss_mb"] - after_5["rss_mb"] < MAX_GROWTH_MB, observed
