"""Session configuration: one validated record of every setting, written next to the session's data.

:class:`SessionConfig` is what ``lookwhere run`` builds from its arguments; the runner only ever
reads it. It is saved as ``config.json`` in the session folder, so a session (and ``--resume``)
always knows exactly how it was run, including the random seed of the image order.
"""

from __future__ import annotations

import re
import secrets
import uuid
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stimuli.geometry import DisplayGeometry
from stimuli.viewing import LAB_SCREEN_WIDTH_CM, LAB_VIEWING_DISTANCE_CM, ViewingGeometry

__all__ = ["SessionConfig", "TrackerKind", "EDF_NAME_PATTERN", "trial_order"]

TrackerKind = Literal["eyelink", "eyelink-dummy", "simulated"]

#: The EyeLink host stores EDF files under DOS-style names: ≤ 8 characters of [A-Za-z0-9_].
EDF_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_]{1,8}$")


class SessionConfig(BaseModel):
    """Every setting of one session (SPEC §2 defaults).

    Attributes
    ----------
    participant : str
        Participant identifier, ``[A-Za-z0-9_-]``, e.g. ``"P07"``; names the session folder.
    stimuli : Path
        Folder of stimulus images (:class:`stimuli.sets.StimulusSet`).
    tracker : {"eyelink", "eyelink-dummy", "simulated"}
        Tracker backend (:mod:`experiment.trackers`).
    host : str
        EyeLink host PC address (``eyelink`` only).
    out : Path
        Parent folder of session folders; the session writes to ``out / participant``.
    trials : int or None
        Number of trials; None shows every image of the set once.
    duration_ms : float
        Image display time per trial (paper: 5000 ms).
    scale : float
        Requested display scale of the images (paper: 2); reduced per image to fit the screen.
    screen_width_px, screen_height_px : int
        Screen (window) size in pixels (paper: 1920×1080).
    fullscreen : bool
        Full-screen window (lab) or a window of the screen size (development, CI).
    seed : int
        Seed of the random image order; drawn once when not given and recorded here.
    sample_rate_hz : {250, 500, 1000, 2000}
        EyeLink sampling rate (paper: 250 Hz).
    edf_name : str
        EDF file name on the host PC without extension, ≤ 8 characters of ``[A-Za-z0-9_]``;
        derived from ``participant`` when not given.
    refresh_hz : float
        Nominal refresh rate, used only when the window cannot measure its own; intervals longer
        than 1.5 frame periods count as dropped frames.
    microphone : bool
        Record the microphone (one WAV per trial).
    mic_device : str, int or None
        ``sounddevice`` input device (name or index); None uses the default input.
    mic_samplerate_hz : int
        Microphone sampling rate.
    scanpaths : Path or None
        ``simulated`` only: CSV of recorded scanpaths to replay, columns ``observer, image,
        x_image_px, y_image_px, duration_ms`` (rows in viewing order); images absent from it
        get fixations from the generative model.
    auto_accept_drift_ms : float or None
        Simulated participant: accept the drift-correction screen after this many ms without a
        key press (CI, demos). None waits for the space bar.
    drift_start : {"key", "gaze"}
        How the drift-correction screen hands over to the image: ``"key"`` waits for the space
        bar; ``"gaze"`` also accepts once the live gaze has stayed within ``gaze_radius_px`` of
        the central dot for ``gaze_hold_ms`` (the tracker records during that screen).
    gaze_hold_ms : float
        ``gaze`` start: how long the gaze must stay on the dot, ms.
    gaze_radius_px : float
        ``gaze`` start: largest distance of the gaze from the dot's centre that counts as on it,
        display pixels.
    screen_width_cm, viewing_distance_cm : float
        Viewing geometry (:class:`stimuli.viewing.ViewingGeometry`): the screen's visible width and
        the eye's distance from it, cm; every degree of the quality data depends on them. Not
        given (None), they take the lab's defaults and are named in ``viewing_defaults``.
    viewing_defaults : tuple of str
        Which of the two took the lab's default (set by the model, kept in ``config.json``).
    sim_validation_deg : tuple of float
        Simulated tracker: average error of its successive validations, degrees (the last one
        repeats); e.g. ``(1.4, 0.3)``: a poor first validation, a good one after recalibrating.
    sim_drift_deg_per_trial : float
        Simulated tracker: the gaze drifts this much further (degrees, to the right) every trial
        after a calibration; drift checks measure it, a recalibration resets it.
    sim_track_loss_trials : tuple of int
        Simulated tracker: trials during which the eye is lost for a stretch of the display period
        (:data:`experiment.trackers.SIM_TRACK_LOSS_SHARE` of it).
    min_free_mb : float
        Preflight: least free space in the output folder's file system.
    session_id : str
        UUID of the session (kept across ``--resume``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    participant: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    stimuli: Path
    tracker: TrackerKind = "eyelink"
    host: str = "100.1.1.1"
    out: Path = Path("sessions")
    trials: int | None = Field(default=None, gt=0)
    duration_ms: float = Field(default=5000.0, gt=0)
    scale: float = Field(default=2.0, gt=0)
    screen_width_px: int = Field(default=1920, gt=0)
    screen_height_px: int = Field(default=1080, gt=0)
    fullscreen: bool = False
    seed: int = Field(default_factory=lambda: secrets.randbelow(2**31), ge=0)
    sample_rate_hz: Literal[250, 500, 1000, 2000] = 250
    edf_name: str = ""
    refresh_hz: float = Field(default=60.0, gt=0)
    microphone: bool = True
    mic_device: str | int | None = None
    mic_samplerate_hz: int = Field(default=44100, gt=0)
    scanpaths: Path | None = None
    auto_accept_drift_ms: float | None = Field(default=None, ge=0)
    drift_start: Literal["key", "gaze"] = "key"
    gaze_hold_ms: float = Field(default=500.0, gt=0)
    gaze_radius_px: float = Field(default=60.0, gt=0)
    screen_width_cm: float = Field(default=LAB_SCREEN_WIDTH_CM, gt=0)
    viewing_distance_cm: float = Field(default=LAB_VIEWING_DISTANCE_CM, gt=0)
    viewing_defaults: tuple[Literal["screen_width_cm", "viewing_distance_cm"], ...] = ()
    sim_validation_deg: tuple[float, ...] = Field(default=(0.3,), min_length=1)
    sim_drift_deg_per_trial: float = Field(default=0.0, ge=0)
    sim_track_loss_trials: tuple[int, ...] = ()
    min_free_mb: float = Field(default=500.0, ge=0)
    session_id: str = Field(default_factory=lambda: str(uuid.uuid4()))

    @model_validator(mode="before")
    @classmethod
    def _viewing_defaults(cls, data):
        """Fill an absent viewing geometry with the lab's defaults, flagged in ``viewing_defaults``
        (a ``config.json`` holds the flag already, and keeps it)."""
        if isinstance(data, dict) and "viewing_defaults" not in data:
            names = tuple(name for name in ("screen_width_cm", "viewing_distance_cm") if data.get(name) is None)
            data = {key: value for key, value in data.items() if key not in names}
            data["viewing_defaults"] = names
        return data

    @field_validator("sim_validation_deg")
    @classmethod
    def _errors_positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not error > 0 for error in value):
            raise ValueError(f"sim_validation_deg must all be > 0 degrees; got {list(value)}")
        return value

    @field_validator("edf_name")
    @classmethod
    def _edf_name_valid(cls, value: str) -> str:
        if value and not EDF_NAME_PATTERN.match(value):
            raise ValueError(
                f"edf_name must be 1–8 characters of [A-Za-z0-9_] (the EyeLink host's file-name "
                f"rule); got {value!r} ({len(value)} characters): choose e.g. 'P07_S1'"
            )
        return value

    @model_validator(mode="after")
    def _derive_edf_name(self) -> SessionConfig:
        if not self.edf_name:
            derived = re.sub(r"[^A-Za-z0-9_]", "_", self.participant)[:8]
            object.__setattr__(self, "edf_name", derived)
        return self

    @property
    def session_dir(self) -> Path:
        """Folder of this session's records: ``out / participant``."""
        return Path(self.out) / self.participant

    def geometry(self, image_width_px: int, image_height_px: int) -> DisplayGeometry:
        """How an image of this size is shown on this session's screen (scale, centring)."""
        return DisplayGeometry.fit(
            image_width_px,
            image_height_px,
            screen_width_px=self.screen_width_px,
            screen_height_px=self.screen_height_px,
            scale=self.scale,
        )

    def viewing(self) -> ViewingGeometry:
        """The session's viewing geometry (degrees of visual angle ↔ display pixels)."""
        return ViewingGeometry(
            screen_width_px=self.screen_width_px,
            screen_width_cm=self.screen_width_cm,
            viewing_distance_cm=self.viewing_distance_cm,
        )

    def edf_segment_name(self, segment: int) -> str:
        """Host EDF name of recording segment ``segment`` (0 = first run, 1.. = resumes).

        Segment 0 uses :attr:`edf_name`; later segments replace its tail with ``_<n>`` so that
        every segment stays within 8 characters and no resume overwrites an earlier EDF.
        """
        if segment == 0:
            return self.edf_name
        suffix = f"_{segment}"
        return self.edf_name[: 8 - len(suffix)] + suffix

    def save(self, path: Path) -> None:
        """Write the configuration as JSON (paths as strings)."""
        Path(path).write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> SessionConfig:
        """Read a configuration written by :meth:`save`."""
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def trial_order(image_ids: list[str], *, seed: int, trials: int | None = None) -> list[str]:
    """The session's image order: a seeded permutation of the sorted ids, cut to ``trials``.

    Parameters
    ----------
    image_ids : list of str
        Image identifiers of the stimulus set (any order; they are sorted first so the order
        depends on the seed and the set only).
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    trials : int or None
        Number of trials; None or more than the set shows every image once.

    Returns
    -------
    list of str
        Image id of trial 0, 1, ...
    """
    ids = sorted(image_ids)
    if not ids:
        raise ValueError("image_ids is empty; the stimulus folder holds no images")
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    return order if trials is None else order[:trials]
