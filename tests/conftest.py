"""Shared fixtures: the real data in ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data; tests that need it skip when a user cloned only the project."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (clone the project beside shared/)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def osie_fixations_path(shared_data: Path) -> Path:
    return shared_data / "osie" / "eye" / "fixations.mat"


@pytest.fixture(scope="session")
def osie_stimuli(shared_data: Path) -> Path:
    return shared_data / "osie" / "stimuli"


@pytest.fixture(scope="session")
def eyelink_dir(shared_data: Path) -> Path:
    return shared_data / "eyelink"
