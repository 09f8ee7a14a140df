"""The experiment process never imports torch or the analysis package; its CLI module is cheap."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.experiment.conftest import REPO

PROBE = """
import json, sys
import {modules}
heavy = {{'torch', 'analysis', 'psychopy', 'pylink', 'sounddevice'}}
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & heavy)))
"""


def _top_level_imports(modules: str, env: dict | None = None) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(modules=modules)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_cli_module_imports_no_heavy_library():
    assert _top_level_imports("experiment.cli") == []


def test_every_experiment_module_stays_clear_of_torch_and_analysis(session_env):
    # psychopy.visual connects to the X display on import: it needs the private Xvfb.
    modules = (
        "experiment.cli, experiment.config, experiment.trackers, experiment.records, "
        "experiment.task, "
        "experiment.microphone, experiment.preflight, experiment.calibration, psychopy.visual"
    )
    imported = _top_level_imports(modules, session_env)
    assert "torch" not in imported and "analysis" not in imported
    assert {"psychopy", "pylink"} <= set(imported)
