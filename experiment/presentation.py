"""One trial's image period: onset flip → frame loop → offset flip → the trial's row (SPEC §2, §4).

:class:`ImagePeriod` shows the image, scaled and centred by
:class:`stimuli.geometry.DisplayGeometry`, for the configured duration. ``IMAGE_ONSET`` and
``IMAGE_OFFSET`` are sent from ``win.callOnFlip``, so their times are those of the flips, and
every clock is read back to back there (:class:`FlipTimes`). Each frame drains the tracker's
events (streamed as they come), sends the live gaze, the microphone level and the recording so far
(``mic_audio``: the WAV's samples, for the server's live voice detection), services the stream and
reads the operator's keys; the offset is the flip nearest the deadline
(:func:`experiment.timing.offset_is_due`). Nothing is written to the records here: the caller
appends the :class:`TrialRow` after the stream's ``trial_end``.

``q`` or Esc while the image is shown ends the image at the next flip and raises
:class:`TrialAborted` (``!V TRIAL_VAR aborted 1``, ``TRIAL_RESULT 2``; nothing of that run is
kept), after the stream got the run's ``trial_end`` with ``aborted=True``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from experiment.config import SessionConfig
from experiment.lifecycle import Devices, SessionClock
from experiment.microphone import pcm16
from experiment.quality import trial_quality_of
from experiment.services import FrameServices
from experiment.timing import frame_summary, is_overrun, offset_is_due, streamed_frame_timing
from experiment.trackers import TrackerFixation
from lookwhere.protocol import MAX_MESSAGE_BYTES, FixationRecord, GazeSample, MicAudio, MicLevel, TrialEnd, TrialStart
from lookwhere.records import Fixation
from stimuli.geometry import DisplayGeometry

__all__ = [
    "TRIAL_DONE",
    "TRIAL_SKIPPED",
    "TRIAL_ABORTED",
    "FlipTimes",
    "TrialRow",
    "SkippedRow",
    "TrialAborted",
    "ImagePeriod",
    "flip_marked",
]

#: ``TRIAL_RESULT`` codes in the EDF.
TRIAL_DONE, TRIAL_SKIPPED, TRIAL_ABORTED = 0, 1, 2
#: EyeLink examples wait this long after startRecording so the first samples reach the link.
RECORDING_LEAD_S = 0.1
#: How often the frame loop streams the microphone level.
MIC_LEVEL_INTERVAL_S = 0.25
#: How often the frame loop streams the recording captured since its last look (``mic_audio``):
#: the live voice onsets come this much later at most. ~10 µs of the frame per record.
MIC_AUDIO_INTERVAL_S = 0.1
#: Most samples in one ``mic_audio`` record (16-bit): a record stays within the message limit.
MIC_AUDIO_MAX_SAMPLES = (MAX_MESSAGE_BYTES - 1024) // 2


class TrialAborted(Exception):
    """The operator pressed q or Esc during the image period; that run of the trial is void."""


@dataclass(frozen=True, slots=True)
class FlipTimes:
    """Every clock, read back to back right after a flip returned.

    Attributes
    ----------
    perf_s : float
        ``time.perf_counter()``, s (the session clock's base).
    tracker_ms : float
        The tracker's clock, ms.
    psychopy_s : float
        PsychoPy's ``logging.defaultClock``, s.
    unix_s : float
        Wall time, s.
    """

    perf_s: float
    tracker_ms: float
    psychopy_s: float
    unix_s: float


def flip_marked(devices: Devices, message: str, draw: Callable[[], None] | None = None) -> FlipTimes:
    """Draw (``draw``, or a blank screen), flip, and send ``message`` to the tracker from the flip's
    callback; return the clocks read there."""
    from psychopy.logging import defaultClock as psychopy_clock

    tracker = devices.tracker
    times: dict[str, float] = {}

    def mark() -> None:  # runs right after the flip returns: every clock is read back to back
        times["perf_s"] = time.perf_counter()
        times["tracker_ms"] = tracker.tracker_time_ms()
        tracker.send_message(message)
        times["psychopy_s"] = psychopy_clock.getTime()
        times["unix_s"] = time.time()

    devices.window.callOnFlip(mark)
    if draw is not None:
        draw()
    devices.window.flip()
    return FlipTimes(**times)


@dataclass(frozen=True, slots=True)
class TrialRow:
    """The ``trials.jsonl`` row of a shown trial (times: ``*_session_s`` since this run started,
    ``*_tracker_ms`` the tracker's clock; durations in ms).

    ``stimulus_duration_ms`` is the measured display time (onset flip to offset flip);
    ``overrun``: longer than requested by more than ``frame_period_ms``; the frame fields are
    :func:`experiment.timing.frame_summary`'s (``dropped_frames`` None without vsync); ``mic_*``
    are None without a microphone; ``aborted_runs`` counts the runs of this trial the operator
    ended early before this one.
    """

    trial: int
    image: str
    segment: int
    onset_session_s: float
    onset_tracker_ms: float
    onset_psychopy_s: float
    onset_unix_s: float
    offset_session_s: float
    offset_tracker_ms: float
    stimulus_duration_ms: float
    requested_duration_ms: float
    overrun: bool
    frame_period_ms: float
    frames: int
    interval_mean_ms: float
    interval_p50_ms: float
    interval_p99_ms: float
    interval_max_ms: float
    dropped_frames: int | None
    loop_overhead_p50_us: float
    loop_overhead_p99_us: float
    frame_intervals_ms: list[float]
    drift_correction: dict[str, Any]
    mic_file: str | None
    mic_offset_ms: float | None
    mic_frames: int | None
    mic_level_dbfs: float | None
    mic_overruns: int | None
    fixations: int
    skipped: bool
    geometry: dict[str, int]
    aborted_runs: int = 0
    quality: dict[str, Any] | None = None  # lookwhere.quality.TrialQuality of the display period

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready row."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """The ``trials.jsonl`` row of a trial the operator skipped: done, without data."""

    trial: int
    image: str
    segment: int
    skipped: bool = True
    fixations: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready row."""
        return asdict(self)


#: Recording goes on this long past the image offset, so that the fixation under way at the offset
#: ends after it (and the within-display rule leaves it out) instead of being cut short by the stop.
POST_OFFSET_RECORDING_S = 0.3


def _ends_at_stop(event: TrackerFixation, stop_tracker_ms: float) -> bool:
    """Whether a fixation ended with the recording: its last sample is the last one before the
    stop (the tracker closes the fixation under way when recording stops). One sample interval is
    ``duration - (end - start)`` (EyeLink's ``EFIX`` convention)."""
    sample_ms = event.duration_ms - (event.end_tracker_ms - event.start_tracker_ms)
    return event.end_tracker_ms + sample_ms >= stop_tracker_ms


def to_fixation(
    event: TrackerFixation,
    *,
    config: SessionConfig,
    trial: int,
    image: str,
    geometry: DisplayGeometry,
    onset_tracker_ms: float,
    stimulus_duration_ms: float,
) -> Fixation:
    """The fixation record of a tracker event: image pixels, times relative to the image onset."""
    x_image, y_image = geometry.display_to_image(event.x_display_px, event.y_display_px)
    return Fixation(
        participant=config.participant,
        session=config.session_id,
        trial=trial,
        image=image,
        eye=event.eye,
        start_ms=event.start_tracker_ms - onset_tracker_ms,
        end_ms=event.end_tracker_ms - onset_tracker_ms,
        duration_ms=event.duration_ms,
        x_display_px=event.x_display_px,
        y_display_px=event.y_display_px,
        x_image_px=float(x_image),
        y_image_px=float(y_image),
        stimulus_duration_ms=stimulus_duration_ms,
        pupil=event.pupil,
    )


class ImagePeriod:
    """One run of trial ``trial``'s image period; :meth:`run` once.

    Parameters
    ----------
    devices : Devices
        The open window, visual stimuli, tracker and microphone.
    services : FrameServices
        The live stream and the operator's keys.
    clock : SessionClock
        The session clock (``*_session_*`` times).
    config : SessionConfig
    trial : int
        Index in the session's order.
    image : str
        The image's id.
    next_image : str or None
        The next trial's image (announced in ``trial_start`` so the server prepares its maps).
    path : Path
        Its file (named in the EDF's ``!V IMGLOAD``).
    geometry : DisplayGeometry
        Where the image is drawn (the image stimulus already holds it).
    segment : int
        The recording segment this run belongs to.
    audio_dir : Path
        Where the trial's WAV goes (with a microphone).
    """

    def __init__(
        self,
        devices: Devices,
        services: FrameServices,
        clock: SessionClock,
        config: SessionConfig,
        *,
        trial: int,
        image: str,
        next_image: str | None,
        path: Path,
        geometry: DisplayGeometry,
        segment: int,
        audio_dir: Path,
    ) -> None:
        self.devices, self.services, self.clock, self.config = devices, services, clock, config
        self.trial, self.image, self.path, self.geometry = trial, image, path, geometry
        self.next_image = next_image
        self.segment, self.audio_dir = segment, audio_dir
        self._events: list[TrackerFixation] = []  # this run's tracker fixations, converted at the end
        self._stop_tracker_ms = float("inf")  # when recording stopped (tracker clock)
        self._flips: list[float] = []  # perf_counter times of the image's flips, onset first
        self._overhead_s: list[float] = []  # per-frame work of the loop
        self._onset_frame = 0.0  # the microphone's stream frame at the onset flip (fractional)
        self._audio_sent = 0  # next stream frame of the recording to stream

    def run(self, drift_correction: dict[str, Any]) -> tuple[TrialRow, list[Fixation], TrialEnd]:
        """Show the image and take it off; return the trial's row, its fixations (with the
        measured display time) and the stream's ``trial_end`` (for the caller to send before it
        writes the row).

        Raises
        ------
        TrialAborted
            q or Esc pressed while the image was shown; recording is stopped, the run's fixations
            and audio are dropped, its ``trial_end`` (``aborted``) was sent.
        """
        devices = self.devices
        if not devices.recording:
            devices.start_recording()
            time.sleep(RECORDING_LEAD_S)
        onset = self._show()
        self._frame_loop(onset)
        offset = self._take_off(onset)
        quality, record = trial_quality_of(
            devices.tracker.take_samples(),
            self.trial,
            onset_tracker_ms=onset.tracker_ms,
            offset_tracker_ms=offset.tracker_ms,
        )
        self.services.send(record)
        audio = self._save_audio(onset, offset)
        if audio is not None and self.services.sink.wants_audio:
            self._stream_audio(until_frame=math.ceil(self._onset_frame) + audio["frames"])
        devices.tracker.send_message(f"TRIAL_RESULT {TRIAL_DONE}")
        shown_ms = (offset.perf_s - onset.perf_s) * 1000.0
        fixations = [replace(self._fixation(event, onset), stimulus_duration_ms=shown_ms) for event in self._events]
        row = self._row(onset, offset, drift_correction, audio, n_fixations=len(fixations))
        return replace(row, quality=quality.to_dict()), fixations, self._trial_end(onset, offset, aborted=False)

    # -- the stages --------------------------------------------------------------------------------

    def _show(self) -> FlipTimes:
        """The onset flip; the EDF's ``!V IMGLOAD`` and the stream's ``trial_start`` follow it."""
        config, geometry = self.config, self.geometry
        onset = flip_marked(self.devices, "IMAGE_ONSET", self.devices.visuals.image.draw)
        self._flips.append(onset.perf_s)
        self.devices.tracker.send_message(
            f"!V IMGLOAD CENTER {self.path.name} "
            f"{config.screen_width_px // 2} {config.screen_height_px // 2} "
            f"{geometry.display_width_px} {geometry.display_height_px}"
        )
        self.services.send(
            TrialStart(
                trial=self.trial,
                image=self.image,
                onset_tracker_ms=onset.tracker_ms,
                onset_session_ms=self.clock.session_ms(onset.perf_s),
                stimulus_duration_ms=config.duration_ms,
                image_width_px=geometry.image_width_px,
                image_height_px=geometry.image_height_px,
                display_width_px=geometry.display_width_px,
                display_height_px=geometry.display_height_px,
                screen_width_px=geometry.screen_width_px,
                screen_height_px=geometry.screen_height_px,
                next_image=self.next_image,
            )
        )
        return onset

    def _frame_loop(self, onset: FlipTimes) -> None:
        """Frames until the offset is due: events, gaze, microphone level, stream, keys."""
        devices, services = self.devices, self.services
        stimulus, window = devices.visuals.image, devices.window
        deadline_s = onset.perf_s + self.config.duration_ms / 1000.0
        next_level_s = next_audio_s = onset.perf_s
        if devices.microphone is not None:
            self._onset_frame = devices.microphone.frame_at(onset.perf_s)
            self._audio_sent = math.ceil(self._onset_frame)  # the WAV's first sample
        stream_audio = devices.microphone is not None and services.sink.wants_audio
        services.screen = "image"
        while True:
            busy = time.perf_counter()
            self._stream_events(devices.tracker.drain(), onset)
            if services.sink.wants_gaze:  # the dashboard's live cursor, once per frame
                self._send_gaze(busy)
            if devices.microphone is not None and busy >= next_level_s:
                next_level_s = busy + MIC_LEVEL_INTERVAL_S
                level = devices.microphone.level()
                services.send(MicLevel(trial=self.trial, t_session_ms=self.clock.session_ms(busy), **level))
            if stream_audio and busy >= next_audio_s:
                next_audio_s = busy + MIC_AUDIO_INTERVAL_S
                self._stream_audio()
            services.service()
            if {"q", "escape"} & set(services.read_keys()):
                self._abort(onset)
            self._overhead_s.append(time.perf_counter() - busy)
            if offset_is_due(self._flips, deadline_s, refresh=devices.refresh):
                return
            stimulus.draw()
            window.flip()
            self._flips.append(time.perf_counter())

    def _take_off(self, onset: FlipTimes) -> FlipTimes:
        """The offset flip (a blank screen); recording goes on for ``POST_OFFSET_RECORDING_S``,
        so that the fixation under way at the offset ends after it (the within-display rule leaves
        it out) rather than cut short by the stop; the one the stop cuts is flagged ``truncated``."""
        offset = flip_marked(self.devices, "IMAGE_OFFSET")
        self._flips.append(offset.perf_s)
        time.sleep(max(0.0, offset.perf_s + POST_OFFSET_RECORDING_S - time.perf_counter()))
        self._stop_tracker_ms = self.devices.tracker.tracker_time_ms()
        self.devices.stop_recording()
        self._stream_events(self.devices.tracker.drain(), onset)
        return offset

    def _abort(self, onset: FlipTimes) -> None:
        """End the image period at the next flip and raise :class:`TrialAborted`.

        The stream gets the ``trial_end`` of the aborted run (its ``trial_start`` and fixations
        were already sent); the EDF gets ``IMAGE_OFFSET``, ``!V TRIAL_VAR aborted 1`` and
        ``TRIAL_RESULT 2``.
        """
        devices = self.devices
        offset = flip_marked(devices, "IMAGE_OFFSET")
        self._flips.append(offset.perf_s)
        devices.stop_recording()
        devices.tracker.drain()  # the aborted run's last events: not kept
        devices.tracker.take_samples()  # nor its samples
        devices.tracker.send_message("!V TRIAL_VAR aborted 1")
        devices.tracker.send_message(f"TRIAL_RESULT {TRIAL_ABORTED}")
        self.services.send(self._trial_end(onset, offset, aborted=True))
        self.services.sink.flush()
        raise TrialAborted

    # -- records -------------------------------------------------------------------------------------

    def _stream_events(self, events: list[TrackerFixation], onset: FlipTimes) -> None:
        """Keep the tracker's fixations and stream each (with the nominal display time; the file
        holds the measured one) with its start and end on the tracker and session clocks."""
        for event in events:
            self._events.append(event)
            self.services.send(
                FixationRecord.of(
                    self._fixation(event, onset),
                    start_tracker_ms=event.start_tracker_ms,
                    end_tracker_ms=event.end_tracker_ms,
                    onset_session_ms=self.clock.session_ms(onset.perf_s),
                )
            )

    def _fixation(self, event: TrackerFixation, onset: FlipTimes) -> Fixation:
        fixation = to_fixation(
            event,
            config=self.config,
            trial=self.trial,
            image=self.image,
            geometry=self.geometry,
            onset_tracker_ms=onset.tracker_ms,
            stimulus_duration_ms=self.config.duration_ms,
        )
        return replace(fixation, truncated=_ends_at_stop(event, self._stop_tracker_ms))

    def _send_gaze(self, now_s: float) -> None:
        tracker = self.devices.tracker
        gaze = tracker.gaze_position()
        if gaze is not None:
            self.services.send(
                GazeSample(
                    trial=self.trial,
                    t_tracker_ms=tracker.tracker_time_ms(),
                    t_session_ms=self.clock.session_ms(now_s),
                    eye="",
                    x_display_px=gaze[0],
                    y_display_px=gaze[1],
                    pupil=float("nan"),
                )
            )

    def _trial_end(self, onset: FlipTimes, offset: FlipTimes, *, aborted: bool) -> TrialEnd:
        """The stream's ``trial_end`` of this run (the only place one is built)."""
        shown_ms = (offset.perf_s - onset.perf_s) * 1000.0
        summary = frame_summary(np.diff(self._flips) * 1000.0, refresh=self.devices.refresh)
        return TrialEnd(
            trial=self.trial,
            image=self.image,
            offset_tracker_ms=offset.tracker_ms,
            offset_session_ms=self.clock.session_ms(offset.perf_s),
            n_fixations=len(self._events),
            **streamed_frame_timing(summary["dropped_frames"]),
            aborted=aborted,
            display_duration_ms=shown_ms,
            overrun=is_overrun(shown_ms, requested_ms=self.config.duration_ms, period_ms=self.devices.frame_period_ms),
        )

    def _stream_audio(self, until_frame: int | None = None) -> None:
        """Stream the recording captured since the last call (up to ``until_frame``: the WAV's
        end, after the offset) as ``mic_audio`` records; never waits for the microphone."""
        microphone = self.devices.microphone
        assert microphone is not None  # the caller checked
        first = math.ceil(self._onset_frame)
        stop = microphone.captured if until_frame is None else until_frame
        while self._audio_sent < stop:
            samples = microphone.read(self._audio_sent, min(stop, self._audio_sent + MIC_AUDIO_MAX_SAMPLES))
            if not samples.size:
                return
            self.services.send(
                MicAudio(
                    trial=self.trial,
                    mic_offset_ms=(first - self._onset_frame) / microphone.samplerate_hz * 1000.0,
                    first_sample=self._audio_sent - first,
                    rate_hz=microphone.samplerate_hz,
                    pcm=pcm16(samples),
                )
            )
            self._audio_sent += samples.size

    def _save_audio(self, onset: FlipTimes, offset: FlipTimes) -> dict[str, Any] | None:
        """The trial's WAV (from the onset flip's stream frame, for the display time); None without
        a microphone."""
        microphone = self.devices.microphone
        if microphone is None:
            return None
        path = self.audio_dir / f"trial{self.trial:03d}_{self.image}.wav"
        audio = microphone.save(path, start_frame=self._onset_frame, duration_s=offset.perf_s - onset.perf_s)
        self.devices.tracker.send_message(f"!V TRIAL_VAR mic_file {path.name}")
        return audio

    def _row(
        self,
        onset: FlipTimes,
        offset: FlipTimes,
        drift_correction: dict[str, Any],
        audio: dict[str, Any] | None,
        *,
        n_fixations: int,
    ) -> TrialRow:
        config, clock, period_ms = self.config, self.clock, self.devices.frame_period_ms
        shown_ms = (offset.perf_s - onset.perf_s) * 1000.0
        overhead_us = np.asarray(self._overhead_s) * 1e6
        intervals_ms = np.diff(self._flips) * 1000.0
        return TrialRow(
            trial=self.trial,
            image=self.image,
            segment=self.segment,
            onset_session_s=clock.session_s(onset.perf_s),
            onset_tracker_ms=onset.tracker_ms,
            onset_psychopy_s=onset.psychopy_s,
            onset_unix_s=onset.unix_s,
            offset_session_s=clock.session_s(offset.perf_s),
            offset_tracker_ms=offset.tracker_ms,
            stimulus_duration_ms=shown_ms,
            requested_duration_ms=config.duration_ms,
            overrun=is_overrun(shown_ms, requested_ms=config.duration_ms, period_ms=period_ms),
            frame_period_ms=period_ms,
            **frame_summary(intervals_ms, refresh=self.devices.refresh),
            loop_overhead_p50_us=float(np.percentile(overhead_us, 50)),
            loop_overhead_p99_us=float(np.percentile(overhead_us, 99)),
            frame_intervals_ms=np.round(intervals_ms, 3).tolist(),
            drift_correction=drift_correction,
            mic_file=None if audio is None else f"audio/{audio['file']}",
            mic_offset_ms=None if audio is None else audio["offset_ms"],
            mic_frames=None if audio is None else audio["frames"],
            mic_level_dbfs=None if audio is None else audio["level_dbfs"],
            mic_overruns=None if audio is None else audio["overruns"],
            fixations=n_fixations,
            skipped=False,
            geometry=self.geometry.to_dict(),
        )
