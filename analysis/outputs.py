"""Outputs that are whole or absent, and the provenance written beside them.

:class:`StagedOutput` checks the output folder before any work, lets the analysis write into a
temporary folder beside it, and moves that into place only at the end: a failed or interrupted run
leaves ``--out`` as it was, and a new run replaces an earlier one whole (no stale overlays).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

__all__ = ["StagedOutput", "sha256_of", "package_versions", "RESULT_MARKER"]

logger = logging.getLogger(__name__)

RESULT_MARKER = "params.json"
"""The file every analysis writes: a folder holding it is an earlier analysis, safe to replace."""

_PACKAGES = (
    "lookwhere",
    "numpy",
    "scipy",
    "pandas",
    "pydantic",
    "matplotlib",
    "pillow",
    "eyelinkio",
    "torch",
    "torchvision",
)


class StagedOutput:
    """A temporary folder beside ``out`` that becomes ``out`` on :meth:`commit`.

    Parameters
    ----------
    out : Path
        The output folder: it may be absent, empty, or hold an earlier analysis (it has
        ``marker``), which :meth:`commit` replaces whole.
    marker : str
        The file every output of this kind holds (default :data:`RESULT_MARKER`; a BIDS export's is
        ``dataset_description.json``).

    Raises
    ------
    ValueError
        When ``out`` is a file, or a folder with other content (never deleted).
    OSError
        When the folder beside ``out`` is not writable (the message names ``--out``).
    """

    def __init__(self, out: Path, *, marker: str = RESULT_MARKER) -> None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file; pass a folder (it is created, or an earlier analysis replaced)")
        if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
            raise ValueError(
                f"--out {out} holds files that are not a lookwhere analysis (no {marker}); pass a new or "
                "empty folder, or an earlier analysis's folder to replace it"
            )
        parent = out.absolute().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
        except OSError as error:
            raise OSError(f"--out {out} cannot be written: {error}") from error
        self.out = out

    def commit(self) -> Path:
        """Move the finished outputs into place (replacing an earlier analysis) and return ``out``."""
        old = None
        if self.out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old-", dir=self.path.parent))
            os.replace(self.out, old / self.out.name)
        os.replace(self.path, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("outputs moved into place: %s", self.out)
        return self.out

    def discard(self) -> None:
        """Remove the temporary folder; ``out`` stays as it was."""
        shutil.rmtree(self.path, ignore_errors=True)


def sha256_of(paths) -> dict[str, str]:
    """SHA-256 (hex) of every file, by path; a folder contributes every file under it."""
    digests = {}
    for path in map(Path, paths):
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                digest = hashlib.sha256()
                with open(file, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                digests[str(file)] = digest.hexdigest()
    return digests


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages the results depend on (None when not installed)."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
