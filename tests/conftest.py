"""Shared fixtures: the real data in ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CHROMIUM = Path("/usr/bin/chromium")


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


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (no browser download: the machines are offline)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium package to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def artifacts(tmp_path) -> Path:
    """Where screenshots go: $LOOKWHERE_TEST_ARTIFACTS (kept by CI), else the test's tmp_path."""
    folder = Path(os.environ.get("LOOKWHERE_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
