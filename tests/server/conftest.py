"""Fixtures of the server tests: a map store covering every OSIE stimulus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.cnn.store import MapStoreWriter
from stimuli.sets import StimulusSet

UNTRAINED_MAPS = ("cam_a", "cam_b")


@pytest.fixture(scope="session")
def untrained_store(osie_stimuli: Path, tmp_path_factory) -> Path:
    """A map store labelled untrained with two maps per stimulus (``lookwhere serve`` requires
    every stimulus to have maps): one smooth random blob each, 16×16, upsampled by the store."""
    path = tmp_path_factory.mktemp("untrained") / "maps"
    rng = np.random.default_rng(11)
    rows, columns = np.mgrid[0:16, 0:16]
    writer = MapStoreWriter(
        path,
        {
            "map_names": list(UNTRAINED_MAPS),
            "model": {"architecture": "test"},
            "weights": {"label": "untrained", "untrained": True, "seed": 11},
            "input": {"size": [16, 16]},
            "parameters": {},
        },
    )
    stimuli = StimulusSet(osie_stimuli)
    for image in stimuli.image_ids:
        maps = {}
        for name in UNTRAINED_MAPS:
            row, column = rng.uniform(3, 13, size=2)
            maps[name] = np.exp(-((rows - row) ** 2 + (columns - column) ** 2) / (2 * 3.0**2))
        writer.write_image(image, maps, record={"original_shape": list(stimuli.shape(image))})
    return path
