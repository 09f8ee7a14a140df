"""Preflight: every check that can fail before the participant sees anything (SPEC §4).

:func:`preflight` collects all problems and raises one :class:`PreflightError` listing each with
what to do, so the operator fixes everything in one go.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from stimuli.sets import StimulusSet

__all__ = ["PreflightError", "preflight"]

logger = logging.getLogger(__name__)


class PreflightError(RuntimeError):
    """One or more preflight checks failed; the message lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("preflight failed:\n" + "\n".join(f"  - {p}" for p in problems))


def _check_output(folder: Path, min_free_mb: float) -> list[str]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        return [f"output folder {folder} is not writable ({error}); pass a writable --out"]
    free_mb = shutil.disk_usage(folder).free / 2**20
    if free_mb < min_free_mb:
        return [
            f"output folder {folder} has {free_mb:.0f} MB free, less than {min_free_mb:.0f} MB; "
            "free space or use another --out"
        ]
    return []


def _check_images(stimuli: StimulusSet, image_ids: list[str], config) -> list[str]:
    from PIL import Image

    problems = []
    reduced: dict[str, float] = {}
    for image_id in image_ids:
        try:
            path = stimuli.path(image_id)
            with Image.open(path) as image:
                image.load()  # decode fully: a truncated file fails here, not mid-session
                width, height = image.size
        except (OSError, KeyError) as error:
            problems.append(f"image {image_id!r} cannot be read ({error}); replace or remove it")
            continue
        geometry = config.geometry(width, height)
        if geometry.scale_x < config.scale - 1e-9:
            reduced[image_id] = geometry.scale_x
    if reduced:
        logger.warning(
            "%d of %d images do not fit the screen at scale %g and are shown smaller (scale %.3f–%.3f)",
            len(reduced),
            len(image_ids),
            config.scale,
            min(reduced.values()),
            max(reduced.values()),
        )
    return problems


def _check_pylink() -> list[str]:
    try:
        import pylink
    except ImportError:
        return ["pylink is not installed; pip install sr-research-pylink"]
    if not hasattr(pylink, "EyeLinkCustomDisplay"):
        return [
            f"the imported pylink ({getattr(pylink, '__file__', '?')}) is not SR Research's; "
            "pip uninstall pylink && pip install sr-research-pylink"
        ]
    return []


def _check_pylsl() -> list[str]:
    from experiment.lsl import import_pylsl  # not at the top: experiment.lsl imports the task

    try:
        import_pylsl()
    except ModuleNotFoundError as error:
        return [str(error)]
    return []


def preflight(config, stimuli: StimulusSet, image_ids: list[str], *, lsl: bool = False):
    """Run every check; return the open :class:`~experiment.microphone.Microphone` (or None).

    Parameters
    ----------
    config : SessionConfig
        The session's configuration.
    stimuli : StimulusSet
        Its stimulus set.
    image_ids : list of str
        The images the session will show.
    lsl : bool
        The session opens Lab Streaming Layer outlets (pylsl must load).

    Raises
    ------
    PreflightError
        Listing every problem found.
    """
    problems = _check_output(config.session_dir, config.min_free_mb)
    problems += _check_images(stimuli, image_ids, config)
    if config.tracker != "simulated":
        problems += _check_pylink()
    if lsl:
        problems += _check_pylsl()
    microphone = None
    if config.microphone:
        from experiment.microphone import Microphone, MicrophoneError

        try:
            microphone = Microphone(config.mic_device, samplerate_hz=config.mic_samplerate_hz)
        except MicrophoneError as error:
            problems.append(str(error))
    if problems:
        if microphone is not None:
            microphone.close()
        raise PreflightError(problems)
    return microphone
