"""Eye-tracker backends behind one interface (SPEC §4).

``eyelink``
    Real hardware through SR Research's ``pylink`` (PyPI ``sr-research-pylink``), following the
    call sequence of SR Research's PsychoPy examples.
``eyelink-dummy``
    pylink's own dummy connection (``pylink.EyeLink(None)``): every call succeeds, no data
    arrive. As in SR Research's examples, calibration and drift correction are skipped (SPEC §10).
``simulated``
    A simulated participant with EyeLink-like timing: fixations on a tracker clock (ms, arbitrary
    origin) that become available only once they have ended, as ``ENDFIX`` events do over the
    link. Fixations replay recorded scanpaths when given, or come from a generative model.

Every backend reports fixations as :class:`TrackerFixation` in display pixels and tracker ms; the
task converts them to image coordinates and onset-relative times.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lookwhere.quality import EyeValidation, eyelink_grade, parse_drift_check, parse_validation
from stimuli.geometry import DisplayGeometry
from stimuli.sets import StimulusSet
from stimuli.viewing import LAB_SCREEN_WIDTH_CM, LAB_VIEWING_DISTANCE_CM, ViewingGeometry

__all__ = [
    "TrackerFixation",
    "CalibrationResult",
    "DriftResult",
    "SampleBlock",
    "GazeBlock",
    "EdfTransfer",
    "Tracker",
    "SimulatedTracker",
    "EyeLinkTracker",
    "make_tracker",
    "read_scanpaths",
]

logger = logging.getLogger(__name__)

#: ``getEye()`` of a pylink event: 0 left, 1 right (pylink documents but does not export these).
_PYLINK_LEFT_EYE = 0
#: ``eyeAvailable()`` when both eyes are recorded.
_PYLINK_BINOCULAR = 2
#: Simulated participant: time from the drift-correction dot's appearance to the first fixation
#: on it (a saccade's latency plus its duration), ms, drawn uniformly per trial.
DOT_LATENCY_MS = (150.0, 400.0)
#: Simulated participant: standard deviation of the sample-to-sample gaze jitter around the
#: fixated position (fixational eye movements plus tracker noise), display px per axis.
FIXATIONAL_NOISE_PX = 4.0
#: Simulated tracker: share of a track-loss trial's display period during which the eye is lost.
SIM_TRACK_LOSS_SHARE = 0.4
#: Simulated participant: blinks per second, and their duration range in ms.
SIM_BLINK_RATE_HZ = 0.25
SIM_BLINK_MS = (80.0, 200.0)
#: Simulated validation: the 9 targets of ``HV9`` as fractions of the screen (EyeLink's layout).
_HV9 = tuple((x, y) for y in (0.1, 0.5, 0.9) for x in (0.1, 0.5, 0.9))


@dataclass(frozen=True, slots=True)
class TrackerFixation:
    """One ended fixation as the tracker reports it.

    Attributes
    ----------
    eye : str
        ``"L"`` or ``"R"``.
    start_tracker_ms, end_tracker_ms : float
        First and last sample of the fixation on the tracker clock, in ms.
    duration_ms : float
        ``end - start`` plus one sample interval (EyeLink's ``EFIX`` convention).
    x_display_px, y_display_px : float
        Average gaze on the screen, display pixels, origin top-left.
    pupil : float
        Average pupil size in tracker units (NaN when unknown).
    """

    eye: str
    start_tracker_ms: float
    end_tracker_ms: float
    duration_ms: float
    x_display_px: float
    y_display_px: float
    pupil: float


def _without_none(result: Any) -> dict[str, Any]:
    """A result's JSON-ready fields; those that do not apply (None) are left out."""
    return {name: value for name, value in asdict(result).items() if value is not None}


@dataclass(frozen=True, slots=True)
class CalibrationResult:
    """What :meth:`Tracker.calibrate` did, for the manifest.

    Attributes
    ----------
    skipped : bool
        No calibration ran (a backend without one, or pylink's dummy connection); ``reason`` says why.
    result : int or None
        pylink's ``getCalibrationResult()`` (0: accepted).
    message : str or None
        pylink's ``getCalibrationMessage()``: the validation's summary.
    validations : tuple of EyeValidation
        Per eye, the validation's result (empty when none ran or the message held none).
    """

    skipped: bool = False
    reason: str | None = None
    result: int | None = None
    message: str | None = None
    validations: tuple[EyeValidation, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (those that do not apply left out)."""
        return _without_none(self)


@dataclass(frozen=True, slots=True)
class DriftResult:
    """What :meth:`Tracker.drift_correct` did, for the trial row: ``performed`` (False where the
    backend has no drift correction of its own), pylink's ``error`` code (27, ``ESC_KEY``: the
    operator pressed Esc) and calibration ``message``; the measured gaze offset at the target
    (``eye``, display px, degrees) where the backend measures one (None otherwise)."""

    performed: bool
    error: int | None = None
    message: str | None = None
    eye: str | None = None
    offset_x_px: float | None = None
    offset_y_px: float | None = None
    offset_deg: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (those that do not apply left out)."""
        return _without_none(self)


@dataclass(frozen=True, slots=True)
class SampleBlock:
    """The samples and blinks a tracker recorded since the last :meth:`Tracker.take_samples`.

    Attributes
    ----------
    t_ms : ndarray, shape (N,), float
        Sample times, tracker clock (ms).
    pupil : ndarray, shape (N,), float
        Pupil size of the recorded eye, tracker units; NaN or 0 where the eye was lost.
    blinks_ms : ndarray, shape (B, 2), float
        Blink start and end, tracker clock (ms).
    """

    t_ms: np.ndarray
    pupil: np.ndarray
    blinks_ms: np.ndarray


@dataclass(frozen=True, slots=True)
class GazeBlock:
    """The gaze samples a tracker delivered since the last :meth:`Tracker.drain_samples`.

    Attributes
    ----------
    t_ms : ndarray, shape (N,), float
        Sample times, tracker clock (ms), ascending.
    x_display_px, y_display_px : ndarray, shape (N,), float
        Gaze of the recorded eye, display pixels, origin top-left; NaN where the eye was lost.
    pupil : ndarray, shape (N,), float
        Pupil size of the recorded eye, tracker units; NaN where the tracker gives none.
    """

    t_ms: np.ndarray
    x_display_px: np.ndarray
    y_display_px: np.ndarray
    pupil: np.ndarray

    @classmethod
    def of_rows(cls, rows: list[tuple[float, float, float, float]]) -> GazeBlock:
        """A block of ``(t_ms, x_display_px, y_display_px, pupil)`` rows."""
        table = np.asarray(rows, dtype=float).reshape(-1, 4)
        return cls(t_ms=table[:, 0], x_display_px=table[:, 1], y_display_px=table[:, 2], pupil=table[:, 3])


@dataclass(frozen=True, slots=True)
class EdfTransfer:
    """The outcome of :meth:`Tracker.receive_edf`, for the manifest: whether the EDF reached
    ``path`` (``bytes`` long), the file's name on the host, and otherwise why not."""

    transferred: bool
    host_file: str | None = None
    path: str | None = None
    bytes: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (those that do not apply left out)."""
        return _without_none(self)


class Tracker(ABC):
    """The interface the task drives, in SPEC §4 order.

    ``connect → open_edf → configure → calibrate → (per trial: drift_correct →
    start_recording → send_message/drain each frame → stop_recording) → receive_edf → close``;
    :meth:`receive_edf` closes the data file and transfers it, :meth:`close` disconnects. A
    gaze-contingent start records during the drift-correction screen (``start_recording`` before
    it, then :meth:`drain` and :meth:`gaze_position` each frame) and keeps recording through the
    image.
    """

    #: whether :meth:`drift_correct` runs the tracker's own drift correction; when False the task
    #: shows its own drift-correction screen only.
    has_drift_correction: bool = False

    def connect(self) -> str:
        """Connect; return a description of the tracker (version) for the manifest."""
        return type(self).__name__

    def open_edf(self, name: str) -> None:
        """Open the host-side data file ``name`` (≤ 8 characters, no extension)."""

    def configure(self, *, screen_width_px: int, screen_height_px: int, sample_rate_hz: int) -> None:
        """Send the configuration (sampling rate, calibration type, coordinates, filters)."""

    def calibrate(self) -> CalibrationResult:
        """Calibrate and validate; return the results for the manifest."""
        return CalibrationResult(skipped=True, reason=f"{type(self).__name__} has no calibration")

    def drift_correct(self, x_display_px: float, y_display_px: float) -> DriftResult:
        """Drift-correct at a screen position; return the result for the trial row."""
        return DriftResult(performed=False)

    @abstractmethod
    def tracker_time_ms(self) -> float:
        """Current time on the tracker clock, in ms."""

    def start_recording(self) -> None:
        """Start recording samples and events."""

    def stop_recording(self) -> None:
        """Stop recording."""

    def send_message(self, text: str) -> None:
        """Write a message into the tracker's data file (time-stamped by the tracker)."""

    def status_message(self, text: str) -> None:
        """Show a line on the tracker's own screen (the host PC's record_status_message)."""

    @abstractmethod
    def drain(self) -> list[TrackerFixation]:
        """Every fixation that ended since the last call; never blocks."""

    def take_samples(self) -> SampleBlock | None:
        """The samples and blinks recorded since the last call (the task calls it once a trial,
        after recording stopped); None where the backend delivers none."""
        return None

    def drain_samples(self) -> GazeBlock | None:
        """Every gaze sample recorded since the last call (at most one recording's worth: a
        backend forgets the samples nobody drained when the next recording starts); never blocks.
        None where the backend delivers none."""
        return None

    def gaze_position(self) -> tuple[float, float] | None:
        """The newest gaze sample while recording; never blocks.

        Returns
        -------
        tuple of float or None
            ``(x_display_px, y_display_px)``, display pixels, origin top-left; None when not
            recording, before the first sample, or when the sample is missing (blink, lost eye).
        """
        return None

    def receive_edf(self, destination: Path) -> EdfTransfer:
        """Close the data file and copy it to ``destination``; return the transfer's outcome."""
        return EdfTransfer(transferred=False, reason=f"{type(self).__name__} writes no EDF")

    def close(self) -> None:
        """Disconnect (idempotent)."""


def read_scanpaths(path: Path) -> dict[str, list[np.ndarray]]:
    """Read recorded scanpaths for :class:`SimulatedTracker`.

    Parameters
    ----------
    path : Path
        CSV with columns ``observer, image, x_image_px, y_image_px, duration_ms``; rows of one
        observer and image are in viewing order. A tidy fixation table
        (:data:`lookwhere.records.FIXATION_COLUMNS`, e.g. OSIE through
        ``analysis.readers.osie.read_osie(...).to_csv(...)`` or a session's ``fixations.csv``)
        works as it is: its ``participant`` column stands for ``observer``.

    Returns
    -------
    dict
        image id → list (one per observer) of ``(N, 3)`` float arrays ``(x_image_px,
        y_image_px, duration_ms)``, original-image pixels.
    """
    import pandas as pd

    table = pd.read_csv(path, dtype={"image": str, "observer": str, "participant": str})
    if "observer" not in table.columns and "participant" in table.columns:
        table = table.rename(columns={"participant": "observer"})
    missing = {"observer", "image", "x_image_px", "y_image_px", "duration_ms"} - set(table.columns)
    if missing:
        raise ValueError(f"scanpath table {path} lacks the columns {sorted(missing)}; it has {list(table.columns)}")
    scanpaths: dict[str, list[np.ndarray]] = {}
    for (image, _), rows in table.groupby(["image", "observer"], sort=False):
        values = rows[["x_image_px", "y_image_px", "duration_ms"]].to_numpy(dtype=float)
        scanpaths.setdefault(str(image), []).append(values)
    return scanpaths


class SimulatedTracker(Tracker):
    """A simulated participant with EyeLink-like event timing.

    At each ``TRIALID`` message the drift-correction dot appears and the participant moves from
    where they were looking to it after a latency drawn from :data:`DOT_LATENCY_MS`; they look
    at the screen centre until ``IMAGE_ONSET`` is sent, then explore the image announced by the
    last ``!V TRIAL_VAR image <id>`` message; at ``IMAGE_OFFSET`` the fixation under way runs its
    course, the next ones go to the blank screen's centre. Fixation durations follow a
    gamma distribution (shape 4, mean 250 ms) and saccades take a gamma-distributed 20–60 ms; the
    fixation positions come from a replayed observer's scanpath when ``scanpaths`` holds the image,
    otherwise from a density proportional to the image's local contrast times a centre-bias
    Gaussian (σ = ¼ of the displayed image size), as viewers of natural images do.
    :meth:`gaze_position` reports the current fixation's position plus Gaussian jitter of
    :data:`FIXATIONAL_NOISE_PX`; during a saccade, the previous fixation's.

    Data quality, drawn from a stream of its own (so it never changes the fixations): each
    :meth:`calibrate` simulates an HV9 validation whose average error is the next of
    ``validation_deg`` (the last repeats), graded as the EyeLink host grades; the gaze drifts
    ``drift_deg_per_trial`` further to the right at every ``TRIALID`` since the last calibration
    (fixations and gaze are reported shifted by it), which :meth:`drift_correct` measures (plus
    0.05° noise per axis) and a calibration resets; :meth:`take_samples` gives 250 Hz-style samples
    with blinks (:data:`SIM_BLINK_RATE_HZ`) and, in ``track_loss_trials``, the eye lost for
    :data:`SIM_TRACK_LOSS_SHARE` of the display period. :meth:`drain_samples` gives the gaze on
    the same sample grid as it is recorded: each sample at the fixation under way (during a
    saccade, the previous one, as :meth:`gaze_position`) plus the jitter, and that fixation's pupil
    ± 15 units; its blinks and track loss are those of :meth:`take_samples` only (the gaze stream
    shows none).

    Parameters
    ----------
    stimuli : StimulusSet
        The set whose images are shown (to find the image's content and size).
    screen_width_px, screen_height_px : int
        Screen size.
    scale : float
        Requested display scale (as :meth:`DisplayGeometry.fit`).
    sample_rate_hz : int
        Sample rate whose interval quantises the event times.
    seed : int
        Seed of the simulated participant.
    scanpaths : dict or None
        From :func:`read_scanpaths`.
    viewing : ViewingGeometry or None
        Degrees ↔ pixels of the simulated validation and drift (None: the lab's defaults).
    validation_deg : tuple of float
        Average errors of the successive validations, degrees.
    drift_deg_per_trial : float
        Drift growth per trial since the last calibration, degrees.
    track_loss_trials : tuple of int
        Trials (``TRIALID`` numbers) with a track-loss episode.
    """

    def __init__(
        self,
        stimuli: StimulusSet,
        *,
        screen_width_px: int,
        screen_height_px: int,
        scale: float,
        sample_rate_hz: int = 250,
        seed: int = 0,
        scanpaths: dict[str, list[np.ndarray]] | None = None,
        viewing: ViewingGeometry | None = None,
        validation_deg: tuple[float, ...] = (0.3,),
        drift_deg_per_trial: float = 0.0,
        track_loss_trials: tuple[int, ...] = (),
    ) -> None:
        self._stimuli = stimuli
        self._screen = (screen_width_px, screen_height_px)
        self._scale = scale
        self._sample_ms = 1000.0 / sample_rate_hz
        self._rng = np.random.default_rng(seed)
        # Gaze jitter draws from its own stream, so how often the gaze is read (every frame when
        # streamed live, never otherwise) does not change the participant's fixations.
        self._jitter_rng = np.random.default_rng([seed, 1])
        # and the sampled gaze (drain_samples) from one more, drawn only when someone drains it
        self._sample_rng = np.random.default_rng([seed, 3])
        self._scanpaths = scanpaths or {}
        # EyeLink's clock starts at the host's boot, not at 0: an arbitrary origin catches code
        # that forgets to subtract the onset.
        self._origin_ms = float(self._rng.integers(1_000_000, 9_000_000))
        self._t0 = time.perf_counter()
        self._recording = False
        self._stop_ms = 0.0  # when recording last stopped (tracker clock)
        self._density: tuple[DisplayGeometry, np.ndarray, tuple[int, int]] | None = None
        self._replay: list[np.ndarray] = []
        self._pending: list[TrackerFixation] = []  # planned, not yet drained
        self._plan_until_ms = 0.0
        self._looking = False
        # Before the first trial the participant looks anywhere on the screen.
        self._gaze_px = (
            float(self._rng.uniform(0, screen_width_px)),
            float(self._rng.uniform(0, screen_height_px)),
        )
        self._on_dot_from_ms = 0.0  # no fixation on the dot starts before this tracker time
        # data quality: a stream of its own, so the participant's fixations stay those of the seed
        self._quality_rng = np.random.default_rng([seed, 2])
        self._viewing = viewing or ViewingGeometry(screen_width_px, LAB_SCREEN_WIDTH_CM, LAB_VIEWING_DISTANCE_CM)
        self._validation_deg = tuple(validation_deg)
        self._drift_deg_per_trial = drift_deg_per_trial
        self._track_loss_trials = frozenset(track_loss_trials)
        self._n_calibrations = 0
        self._trial = -1
        self._trials_since_calibration = 0
        self._drift_px = 0.0  # the gaze's current drift to the right, display px
        self._record_start_ms: float | None = None  # samples not yet taken start here
        self._display_ms = (float("nan"), float("nan"))  # this recording's image onset and offset
        # drain_samples: the next sample's index on the grid (None: no recording yet), the gaze
        # before the recording's first fixation, and its fixations drained since (their samples
        # may be due still)
        self._next_sample: int | None = None
        self._gaze_at_start_px = self._gaze_px
        self._drained: list[TrackerFixation] = []

    def tracker_time_ms(self) -> float:
        return self._origin_ms + (time.perf_counter() - self._t0) * 1000.0

    def _grid_index(self, t_ms: float) -> int:
        """Index of the last sample at or before ``t_ms`` (tracker clock) on the sample grid."""
        return int(np.floor((t_ms - self._origin_ms) / self._sample_ms))

    def _quantise(self, t_ms: float) -> float:
        return self._origin_ms + float(np.floor((t_ms - self._origin_ms) / self._sample_ms)) * self._sample_ms

    def send_message(self, text: str) -> None:
        if text.startswith("TRIALID"):
            self._on_dot_from_ms = self.tracker_time_ms() + float(self._rng.uniform(*DOT_LATENCY_MS))
            self._trial = int(text.split()[1])
            self._trials_since_calibration += 1
            self._drift_px = self._viewing.deg_to_px(self._drift_deg_per_trial * self._trials_since_calibration)
        elif text.startswith("!V TRIAL_VAR image "):
            self._prepare_image(text.split(" ", 3)[3])
        elif text == "IMAGE_ONSET":
            self._display_ms = (self.tracker_time_ms(), float("nan"))
            self._replan(looking_at_image=True)
        elif text == "IMAGE_OFFSET":  # the fixation under way runs its course (no instant saccade)
            self._display_ms = (self._display_ms[0], self.tracker_time_ms())
            self._replan(looking_at_image=False, keep_current=True)

    # -- data quality ----------------------------------------------------------------------------

    def calibrate(self) -> CalibrationResult:
        """A simulated HV9 validation of the right eye (see the class docstring); resets the drift."""
        error_deg = self._validation_deg[min(self._n_calibrations, len(self._validation_deg) - 1)]
        self._n_calibrations += 1
        self._trials_since_calibration, self._drift_px = 0, 0.0
        rng, viewing = self._quality_rng, self._viewing
        errors_deg = rng.gamma(4.0, 0.25, len(_HV9))
        errors_deg *= error_deg / errors_deg.mean()
        angles = rng.uniform(0.0, 2 * np.pi, errors_deg.size)
        errors_px = viewing.deg_to_px(errors_deg)
        offset_x, offset_y = float(np.mean(errors_px * np.cos(angles))), float(np.mean(errors_px * np.sin(angles)))
        validation = EyeValidation(
            eye="R",
            grade=eyelink_grade(float(errors_deg.mean()), float(errors_deg.max())),
            points=len(_HV9),
            avg_error_deg=float(errors_deg.mean()),
            max_error_deg=float(errors_deg.max()),
            offset_deg=viewing.px_to_deg(float(np.hypot(offset_x, offset_y))),
            offset_x_px=offset_x,
            offset_y_px=offset_y,
            point_errors_deg=np.round(errors_deg, 3).tolist(),
        )
        message = (  # the host's wording (lookwhere.quality.parse_validation reads it)
            f"!CAL VALIDATION HV9 R RIGHT {validation.grade} ERROR {validation.avg_error_deg:.2f} avg. "
            f"{validation.max_error_deg:.2f} max  OFFSET {validation.offset_deg:.2f} deg. "
            f"{offset_x:.1f},{offset_y:.1f} pix."
        )
        return CalibrationResult(result=int(validation.grade == "POOR"), message=message, validations=(validation,))

    def drift_correct(self, x_display_px: float, y_display_px: float) -> DriftResult:
        """The drift measured at the target: the simulated drift plus 0.05° noise per axis (no
        correction is applied, as an EyeLink 1000's drift check)."""
        noise_x, noise_y = self._quality_rng.normal(0.0, self._viewing.deg_to_px(0.05), 2)
        offset_x, offset_y = float(self._drift_px + noise_x), float(noise_y)
        return DriftResult(
            performed=False,
            eye="R",
            offset_x_px=offset_x,
            offset_y_px=offset_y,
            offset_deg=self._viewing.px_to_deg(float(np.hypot(offset_x, offset_y))),
        )

    def take_samples(self) -> SampleBlock | None:
        """Samples on the sample grid since recording started (or the last call), pupil ~900 ± 15
        units, with blinks and, in a track-loss trial, the eye lost mid-display."""
        if self._record_start_ms is None:
            return None
        now = self.tracker_time_ms()
        start, stop = self._record_start_ms, (now if self._recording else self._stop_ms)
        self._record_start_ms = now if self._recording else None
        rng = self._quality_rng
        t_ms = np.arange(self._quantise(start) + self._sample_ms, stop, self._sample_ms)
        pupil = rng.normal(900.0, 15.0, t_ms.size)
        n_blinks = int(rng.poisson(SIM_BLINK_RATE_HZ * (stop - start) / 1000.0))
        blink_starts = np.sort(rng.uniform(start, stop, n_blinks))
        blinks_ms = np.column_stack([blink_starts, blink_starts + rng.uniform(*SIM_BLINK_MS, n_blinks)])
        for blink_start, blink_end in blinks_ms:
            pupil[(t_ms >= blink_start) & (t_ms <= blink_end)] = np.nan
        onset, offset = self._display_ms
        if self._trial in self._track_loss_trials and np.isfinite(onset) and np.isfinite(offset):
            lost_from = onset + (1.0 - SIM_TRACK_LOSS_SHARE) / 2.0 * (offset - onset)
            pupil[(t_ms >= lost_from) & (t_ms < lost_from + SIM_TRACK_LOSS_SHARE * (offset - onset))] = np.nan
        return SampleBlock(t_ms=t_ms, pupil=pupil, blinks_ms=blinks_ms)

    def _prepare_image(self, image_id: str) -> None:
        """Load the content density of the next image (between trials, never in a frame)."""
        from PIL import Image

        self._replay = []
        if image_id in self._scanpaths:
            observers = self._scanpaths[image_id]
            self._replay = list(observers[int(self._rng.integers(len(observers)))])
        width, height = self._stimuli.size(image_id)
        geometry = DisplayGeometry.fit(
            width,
            height,
            screen_width_px=self._screen[0],
            screen_height_px=self._screen[1],
            scale=self._scale,
        )
        # Local contrast on an 8× smaller grey image: cheap and content-driven enough.
        small = (max(width // 8, 1), max(height // 8, 1))
        with Image.open(self._stimuli.path(image_id)) as image:
            grey = np.asarray(image.convert("L").resize(small), dtype=float)
        gy, gx = np.gradient(grey)
        rows, cols = np.mgrid[0 : small[1], 0 : small[0]]
        centre = np.exp(
            -(((cols - small[0] / 2) / (small[0] / 4)) ** 2 + ((rows - small[1] / 2) / (small[1] / 4)) ** 2) / 2
        )
        density = ((np.hypot(gx, gy) + 1e-3) * centre).ravel()
        # The cumulative density, so that drawing a position in the frame loop is one bisection.
        self._density = (geometry, np.cumsum(density) / density.sum(), small)

    def _next_position(self, looking_at_image: bool) -> tuple[float, float, float | None]:
        """Display position of the next fixation and, when replaying, its recorded duration."""
        cx, cy = self._screen[0] / 2, self._screen[1] / 2
        if not looking_at_image or self._density is None:
            return cx + self._rng.normal(0, 8), cy + self._rng.normal(0, 8), None
        geometry, cdf, (small_w, small_h) = self._density
        if self._replay:
            x_img, y_img, duration = self._replay.pop(0)
        else:
            cell = min(int(np.searchsorted(cdf, self._rng.random())), cdf.size - 1)
            x_img = (cell % small_w + self._rng.random()) * geometry.image_width_px / small_w
            y_img = (cell // small_w + self._rng.random()) * geometry.image_height_px / small_h
            duration = None
        # Python min/max: np.clip on scalars costs ~5 µs each, and this runs inside a frame.
        x_img = min(max(float(x_img), 0.0), geometry.image_width_px - 1e-3)
        y_img = min(max(float(y_img), 0.0), geometry.image_height_px - 1e-3)
        x, y = geometry.image_to_display(x_img, y_img)
        return float(x), float(y), duration

    def _replan(self, *, looking_at_image: bool, keep_current: bool = False) -> None:
        """Cut the current fixation at now (or, with ``keep_current``, let it end as planned) and
        plan the next ones for the new screen content."""
        now = self.tracker_time_ms()
        current = [f for f in self._pending if f.start_tracker_ms <= now]
        if keep_current:
            self._pending = current
            self._plan_until_ms = max([now, *(f.end_tracker_ms for f in current)])
        else:
            self._pending = [self._end_at(f, min(f.end_tracker_ms, now)) for f in current]
            self._plan_until_ms = now
        self._looking = looking_at_image

    def _end_at(self, fixation: TrackerFixation, end_ms: float) -> TrackerFixation:
        end = max(self._quantise(end_ms), fixation.start_tracker_ms)
        return TrackerFixation(
            fixation.eye,
            fixation.start_tracker_ms,
            end,
            end - fixation.start_tracker_ms + self._sample_ms,
            fixation.x_display_px,
            fixation.y_display_px,
            fixation.pupil,
        )

    def _plan(self, until_ms: float) -> None:
        while self._plan_until_ms <= until_ms:
            saccade_ms = min(max(float(self._rng.gamma(4.0, 10.0)), 20.0), 60.0)
            x, y, duration = self._next_position(self._looking)
            if duration is None:
                duration = float(self._rng.gamma(4.0, 62.5))
            start = self._plan_until_ms + saccade_ms
            if not self._looking:
                start = max(start, self._on_dot_from_ms)
            start = self._quantise(start)
            end = self._quantise(start + max(duration, 2 * self._sample_ms))
            self._pending.append(
                TrackerFixation(
                    "R",
                    start,
                    end,
                    end - start + self._sample_ms,
                    x + self._drift_px,  # the tracker reports the gaze drifted
                    y,
                    float(self._rng.normal(900, 40)),
                )
            )
            self._plan_until_ms = end

    def start_recording(self) -> None:
        self._recording = True
        self._pending = []
        self._plan_until_ms = self._record_start_ms = self.tracker_time_ms()
        self._display_ms = (float("nan"), float("nan"))
        self._looking = False
        self._next_sample = self._grid_index(self._record_start_ms) + 1
        self._gaze_at_start_px = self._gaze_px
        self._drained = []

    def stop_recording(self) -> None:
        # EyeLink ends the current fixation when recording stops: its ENDFIX is the last event.
        self._plan(self.tracker_time_ms())  # the fixations since the last drain were recorded too
        self._replan(looking_at_image=False)
        self._recording = False
        self._stop_ms = self.tracker_time_ms()

    def drain(self) -> list[TrackerFixation]:
        if not self._recording and not self._pending:
            return []
        now = self.tracker_time_ms()
        if self._recording:
            self._plan(now)
        ended = [f for f in self._pending if f.end_tracker_ms <= now or not self._recording]
        self._pending = [f for f in self._pending if f not in ended] if self._recording else []
        if ended:
            self._gaze_px = (ended[-1].x_display_px, ended[-1].y_display_px)
            self._drained.extend(ended)
        return ended

    def drain_samples(self) -> GazeBlock:
        """The samples on the grid since the last call or the recording's start, up to now (or
        the stop); see the class docstring for their values. Empty before any recording."""
        if self._next_sample is None:
            return GazeBlock.of_rows([])
        if self._recording:
            stop_ms = self.tracker_time_ms()
            self._plan(stop_ms)
        else:
            stop_ms = self._stop_ms
        index = np.arange(self._next_sample, self._grid_index(stop_ms) + 1)
        if not index.size:
            return GazeBlock.of_rows([])
        self._next_sample = int(index[-1]) + 1
        t_ms = self._origin_ms + index * self._sample_ms
        # Fixations in time order (drained ones end before any pending one begins); each sample
        # takes the last one begun by its time, before the first one the gaze at the start.
        timeline = self._drained + self._pending
        starts = np.array([f.start_tracker_ms for f in timeline])
        at = np.searchsorted(starts, t_ms, side="right") - 1
        x0, y0 = self._gaze_at_start_px
        fixated = np.array([(x0, y0, np.nan)] + [(f.x_display_px, f.y_display_px, f.pupil) for f in timeline])
        x, y, pupil = fixated[at + 1].T
        noise = self._sample_rng.normal(0.0, FIXATIONAL_NOISE_PX, (2, t_ms.size))
        pupil = pupil + self._sample_rng.normal(0.0, 15.0, t_ms.size)
        # Samples to come never fall before the fixation of the last one.
        keep_from = min(int(at[-1]), len(self._drained))
        if keep_from > 0:
            last_dropped = self._drained[keep_from - 1]
            self._gaze_at_start_px = (last_dropped.x_display_px, last_dropped.y_display_px)
            del self._drained[:keep_from]
        return GazeBlock(t_ms=t_ms, x_display_px=x + noise[0], y_display_px=y + noise[1], pupil=pupil)

    def gaze_position(self) -> tuple[float, float] | None:
        if not self._recording:
            return None
        now = self.tracker_time_ms()
        self._plan(now)
        # Pending fixations are in time order: the last one begun is the current (or, during a
        # saccade, the previous) fixation; with none begun, the last one drained.
        begun = [f for f in self._pending if f.start_tracker_ms <= now]
        if begun:
            self._gaze_px = (begun[-1].x_display_px, begun[-1].y_display_px)
        x, y = self._gaze_px
        return (
            x + float(self._jitter_rng.normal(0, FIXATIONAL_NOISE_PX)),
            y + float(self._jitter_rng.normal(0, FIXATIONAL_NOISE_PX)),
        )


class EyeLinkTracker(Tracker):
    """SR Research EyeLink through ``pylink`` (real or dummy connection).

    Parameters
    ----------
    host : str or None
        Host PC address; None opens pylink's dummy connection.
    window : psychopy.visual.Window or None
        Window for the calibration graphics (real tracker only).
    idle : callable or None
        Called once per poll of the calibration graphics while pylink's setup or drift
        correction waits for the operator (the task services its stream there).
    """

    def __init__(self, host: str | None, *, window=None, idle: Callable[[], None] | None = None) -> None:
        import pylink

        self._pylink = pylink
        self._host = host
        self._window = window
        self._idle = idle
        self._el: Any = None  # the pylink.EyeLink connection, from connect() to close()
        self._edf_name: str | None = None
        self._sample_ms = 4.0
        self._eye_used: int | None = None  # eyeAvailable() of the current recording
        # samples (time, pupil of the eye used) and blinks (start, end) since take_samples
        self._samples: list[tuple[float, float]] = []
        self._blinks: list[tuple[float, float]] = []
        # the same samples' (time, gaze x, gaze y, pupil), NaN where missing, since drain_samples
        self._gaze: list[tuple[float, float, float, float]] = []
        self.has_drift_correction = host is not None

    @property
    def dummy(self) -> bool:
        return self._host is None

    @property
    def _link(self) -> Any:
        """The connection; an error that says so when :meth:`connect` has not run."""
        if self._el is None:
            raise RuntimeError("the EyeLink is not connected: call connect() first (or it was closed)")
        return self._el

    def connect(self) -> str:
        try:
            self._el = self._pylink.EyeLink(self._host)
        except RuntimeError as error:
            # ConnectionError (an OSError): the CLI reports it as one line, not a traceback.
            raise ConnectionError(
                f"cannot connect to the EyeLink host at {self._host}: {error}; check the cable and "
                "the host PC's address (--host), or run with --tracker eyelink-dummy"
            ) from error
        if self.dummy:
            return "pylink dummy connection"
        return f"EyeLink {self._link.getTrackerVersion()} ({self._link.getTrackerVersionString()})"

    def open_edf(self, name: str) -> None:
        self._edf_name = name
        self._link.openDataFile(f"{name}.EDF")
        self._link.sendCommand("add_file_preamble_text 'lookwhere session'")

    def configure(self, *, screen_width_px: int, screen_height_px: int, sample_rate_hz: int) -> None:
        el = self._link
        self._sample_ms = 1000.0 / sample_rate_hz
        el.setOfflineMode()
        el.sendCommand(f"sample_rate {sample_rate_hz}")
        el.sendCommand("calibration_type = HV9")
        el.sendCommand(f"screen_pixel_coords = 0 0 {screen_width_px - 1} {screen_height_px - 1}")
        el.sendMessage(f"DISPLAY_COORDS 0 0 {screen_width_px - 1} {screen_height_px - 1}")
        el.sendCommand("file_event_filter = LEFT,RIGHT,FIXATION,SACCADE,BLINK,MESSAGE,BUTTON,INPUT")
        el.sendCommand("file_sample_data = LEFT,RIGHT,GAZE,HREF,RAW,AREA,HTARGET,GAZERES,BUTTON,STATUS,INPUT")
        el.sendCommand("link_event_filter = LEFT,RIGHT,FIXATION,FIXUPDATE,SACCADE,BLINK,BUTTON,INPUT")
        el.sendCommand("link_sample_data = LEFT,RIGHT,GAZE,GAZERES,AREA,HTARGET,STATUS,INPUT")
        if not self.dummy and self._window is not None:
            from experiment.calibration import CalibrationGraphics

            self._pylink.openGraphicsEx(CalibrationGraphics(self._link, self._window, idle=self._idle))

    def calibrate(self) -> CalibrationResult:
        if self.dummy:
            # doTrackerSetup never returns in dummy mode (SPEC §10); SR Research's examples
            # skip it.
            return CalibrationResult(skipped=True, reason="dummy connection")
        self._link.doTrackerSetup()
        message = self._link.getCalibrationMessage()
        validations = tuple(parse_validation(message or ""))
        if not validations:
            logger.warning("the tracker's calibration message holds no validation result: %r", message)
        return CalibrationResult(result=self._link.getCalibrationResult(), message=message, validations=validations)

    def drift_correct(self, x_display_px: float, y_display_px: float) -> DriftResult:
        if self.dummy:
            return DriftResult(performed=False)
        # draw=1: the calibration graphics draw the target; allow_setup=1: Esc enters setup.
        error = self._link.doDriftCorrect(int(x_display_px), int(y_display_px), 1, 1)
        message = self._link.getCalibrationMessage()
        offsets = parse_drift_check(message or "")
        if not offsets:
            return DriftResult(performed=True, error=int(error), message=message)
        offset = offsets[-1]
        return DriftResult(
            performed=True,
            error=int(error),
            message=message,
            eye=offset.eye,
            offset_x_px=offset.offset_x_px,
            offset_y_px=offset.offset_y_px,
            offset_deg=offset.offset_deg,
        )

    def tracker_time_ms(self) -> float:
        # The dummy connection's trackerTime() is meaningless (2**32 - 1): use the local clock.
        return float(self._pylink.currentTime() if self.dummy else self._link.trackerTime())

    def start_recording(self) -> None:
        self._link.setOfflineMode()
        error = self._link.startRecording(1, 1, 1, 1)
        if error:
            raise RuntimeError(f"EyeLink startRecording failed with error {error}")
        self._eye_used = self._link.eyeAvailable()
        self._gaze = []  # what nobody drained of the last recording

    def stop_recording(self) -> None:
        self._link.stopRecording()
        self._eye_used = None

    def gaze_position(self) -> tuple[float, float] | None:
        if self._eye_used is None:
            return None
        sample = self._link.getNewestSample()  # None on the dummy connection
        if sample is None:
            return None
        eye = self._used_eye(sample)
        if eye is None:
            return None
        x, y = eye.getGaze()
        if x == self._pylink.MISSING_DATA or y == self._pylink.MISSING_DATA:
            return None
        return float(x), float(y)

    def send_message(self, text: str) -> None:
        self._link.sendMessage(text)

    def status_message(self, text: str) -> None:
        self._link.sendCommand(f"record_status_message '{text}'")

    def take_samples(self) -> SampleBlock | None:
        samples, blinks = self._samples, self._blinks
        self._samples, self._blinks = [], []
        table = np.asarray(samples, dtype=float).reshape(-1, 2)
        return SampleBlock(
            t_ms=table[:, 0], pupil=table[:, 1], blinks_ms=np.asarray(blinks, dtype=float).reshape(-1, 2)
        )

    def _used_eye(self, sample: Any) -> Any:
        """The sample's data of the recorded eye (None when it has none)."""
        # Binocular recordings use the left eye, as SR Research's gaze-contingent examples do.
        if self._eye_used == _PYLINK_LEFT_EYE or self._eye_used == _PYLINK_BINOCULAR:
            return sample.getLeftEye() if sample.isLeftSample() else None
        return sample.getRightEye() if sample.isRightSample() else None

    def drain_samples(self) -> GazeBlock:
        """The link samples :meth:`drain` took in since the last call (gaze and pupil of the eye
        used; NaN where it was lost, or where the pupil is 0)."""
        gaze, self._gaze = self._gaze, []
        return GazeBlock.of_rows(gaze)

    def _keep_sample(self, sample: Any) -> None:
        """Note a link sample's time, gaze and pupil of the eye used (0: lost), for take_samples
        and drain_samples."""
        if sample is None or self._eye_used is None:
            return
        eye = self._used_eye(sample)
        t_ms, pupil = float(sample.getTime()), 0.0 if eye is None else float(eye.getPupilSize())
        self._samples.append((t_ms, pupil))
        x = y = float("nan")
        if eye is not None:
            x, y = eye.getGaze()
            missing = self._pylink.MISSING_DATA
            x, y = (float("nan"), float("nan")) if missing in (x, y) else (float(x), float(y))
        self._gaze.append((t_ms, x, y, pupil if pupil > 0 else float("nan")))

    def drain(self) -> list[TrackerFixation]:
        pylink, link = self._pylink, self._link
        fixations: list[TrackerFixation] = []
        while True:
            kind = link.getNextData()
            if not kind:
                return fixations
            if kind == pylink.SAMPLE_TYPE:
                self._keep_sample(link.getFloatData())
                continue
            if kind == pylink.ENDBLINK:
                blink = link.getFloatData()
                if blink is not None:
                    self._blinks.append((float(blink.getStartTime()), float(blink.getEndTime())))
                continue
            if kind != pylink.ENDFIX:
                continue
            event = link.getFloatData()
            x, y = event.getAverageGaze()
            start, end = float(event.getStartTime()), float(event.getEndTime())
            fixations.append(
                TrackerFixation(
                    "L" if event.getEye() == _PYLINK_LEFT_EYE else "R",
                    start,
                    end,
                    end - start + self._sample_ms,
                    float(x),
                    float(y),
                    float(event.getAveragePupilSize()),
                )
            )

    def receive_edf(self, destination: Path, *, retries: int = 3) -> EdfTransfer:
        if self._el is None or self._edf_name is None:
            return EdfTransfer(transferred=False, reason="no EDF was opened")
        host_name = f"{self._edf_name}.EDF"
        self._link.setOfflineMode()
        self._link.closeDataFile()
        if self.dummy:
            return EdfTransfer(transferred=False, host_file=host_name, reason="dummy connection")
        for attempt in range(1, retries + 1):
            try:
                size = self._link.receiveDataFile(host_name, str(destination))
            except RuntimeError as error:
                logger.warning("EDF transfer attempt %d/%d failed: %s", attempt, retries, error)
                continue
            on_disk = Path(destination).stat().st_size if Path(destination).exists() else -1
            if size > 0 and on_disk == size:
                return EdfTransfer(transferred=True, host_file=host_name, path=str(destination), bytes=size)
            logger.warning(
                "EDF transfer attempt %d/%d: %d bytes sent, %d on disk",
                attempt,
                retries,
                size,
                on_disk,
            )
        return EdfTransfer(transferred=False, host_file=host_name, reason=f"{retries} attempts failed")

    def close(self) -> None:
        if self._el is not None:
            self._el.close()
            self._el = None


def make_tracker(config, stimuli: StimulusSet, *, window=None, idle: Callable[[], None] | None = None) -> Tracker:
    """The backend named by ``config.tracker`` (a :class:`experiment.config.SessionConfig`);
    ``window`` and ``idle`` go to :class:`EyeLinkTracker`'s calibration graphics."""
    if config.tracker == "simulated":
        return SimulatedTracker(
            stimuli,
            screen_width_px=config.screen_width_px,
            screen_height_px=config.screen_height_px,
            scale=config.scale,
            sample_rate_hz=config.sample_rate_hz,
            seed=config.seed,
            scanpaths=read_scanpaths(config.scanpaths) if config.scanpaths else None,
            viewing=config.viewing(),
            validation_deg=config.sim_validation_deg,
            drift_deg_per_trial=config.sim_drift_deg_per_trial,
            track_loss_trials=config.sim_track_loss_trials,
        )
    return EyeLinkTracker(None if config.tracker == "eyelink-dummy" else config.host, window=window, idle=idle)
