"""Frame-timing arithmetic of the task: refresh period, dropped frames, overruns (pure functions).

The task measures the display's refresh period once, when its window opens, from the intervals
between flips of a blank screen (:func:`estimate_refresh`). A display that paces flips (vsync)
gives intervals that cluster tightly around one plausible period; a display without vsync (Xvfb,
a driver with sync off) returns from each flip as soon as the frame is rendered, so the intervals
are short or scattered and measure rendering cost, not a refresh. There, dropped frames are not
measurable and are reported as None ("not measurable (no vsync)"), never as a count.

All times are in ms; ``intervals_ms`` are flip-to-flip intervals, shape ``(N,)``, float.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "MIN_REFRESH_PERIOD_MS",
    "MAX_REFRESH_PERIOD_MS",
    "REFRESH_TOLERANCE_MS",
    "MIN_STABLE_FRACTION",
    "NO_VSYNC",
    "Refresh",
    "estimate_refresh",
    "dropped_frames",
    "offset_is_due",
    "is_overrun",
    "frame_summary",
    "session_frame_timing",
    "streamed_frame_timing",
]

#: Shortest plausible refresh period (250 Hz). Lab displays run at 60–240 Hz; Xvfb's software
#: flips of a blank screen take ~2 ms.
MIN_REFRESH_PERIOD_MS = 4.0
#: Longest plausible refresh period (20 Hz).
MAX_REFRESH_PERIOD_MS = 50.0
#: Largest distance from the median interval that counts as "the same period" (PsychoPy's
#: ``getActualFrameRate`` threshold).
REFRESH_TOLERANCE_MS = 1.0
#: Least fraction of intervals within :data:`REFRESH_TOLERANCE_MS` of the median for a stable
#: refresh; below it the flips are not paced by a display. A real display that drops a few frames
#: while being measured stays above it.
MIN_STABLE_FRACTION = 0.75
#: What the records say instead of a dropped-frame count when there is no vsync.
NO_VSYNC = "not measurable (no vsync)"
#: Without vsync the next flip interval is predicted as the median of this many recent ones.
RECENT_INTERVALS = 5


@dataclass(frozen=True, slots=True)
class Refresh:
    """The refresh period measured when the window opened.

    Attributes
    ----------
    period_ms : float
        Median flip interval of the measurement, ms (NaN without intervals).
    stable_fraction : float
        Fraction of intervals within :data:`REFRESH_TOLERANCE_MS` of the median.
    intervals : int
        Number of intervals measured.
    vsync : bool
        Whether the flips are paced by a display: ``period_ms`` is plausible and stable.
    reason : str or None
        Why ``vsync`` is False, for the manifest and the log; None when it is True.
    """

    period_ms: float
    stable_fraction: float
    intervals: int
    vsync: bool
    reason: str | None

    def to_dict(self) -> dict:
        """JSON-ready fields (NaN as None)."""
        out = asdict(self)
        if out["period_ms"] != out["period_ms"]:
            out["period_ms"] = None
        return out


def estimate_refresh(intervals_ms: np.ndarray) -> Refresh:
    """Refresh period and vsync verdict from the flip intervals of a blank screen.

    Parameters
    ----------
    intervals_ms : ndarray, shape (N,)
        Consecutive flip-to-flip intervals, ms (warm-up flips excluded).

    Returns
    -------
    Refresh
        ``vsync`` is True when the median lies in [:data:`MIN_REFRESH_PERIOD_MS`,
        :data:`MAX_REFRESH_PERIOD_MS`] and at least :data:`MIN_STABLE_FRACTION` of the intervals
        lie within :data:`REFRESH_TOLERANCE_MS` of it.
    """
    intervals_ms = np.asarray(intervals_ms, dtype=float)
    if intervals_ms.size == 0:
        return Refresh(float("nan"), 0.0, 0, False, "no flip intervals measured")
    period_ms = float(np.median(intervals_ms))
    stable = float(np.mean(np.abs(intervals_ms - period_ms) <= REFRESH_TOLERANCE_MS))
    reason = None
    if not MIN_REFRESH_PERIOD_MS <= period_ms <= MAX_REFRESH_PERIOD_MS:
        reason = (
            f"median flip interval {period_ms:.2f} ms is outside "
            f"[{MIN_REFRESH_PERIOD_MS:g}, {MAX_REFRESH_PERIOD_MS:g}] ms"
        )
    elif stable < MIN_STABLE_FRACTION:
        reason = (
            f"only {stable:.0%} of flip intervals lie within {REFRESH_TOLERANCE_MS:g} ms of the "
            f"median {period_ms:.2f} ms"
        )
    return Refresh(period_ms, stable, int(intervals_ms.size), reason is None, reason)


def dropped_frames(intervals_ms: np.ndarray, *, period_ms: float) -> int:
    """Refreshes missed between consecutive flips.

    An interval of ``k`` periods (rounded to the nearest whole period) means ``k - 1`` refreshes
    passed without a new frame: a 3.7 s freeze at 60 Hz is 221 dropped frames, not 1; an
    interval up to 1.5 periods (timing jitter) drops none.

    Parameters
    ----------
    intervals_ms : ndarray, shape (N,)
        Flip-to-flip intervals, ms.
    period_ms : float
        The measured refresh period, ms (> 0).

    Returns
    -------
    int
        ``sum(max(floor(interval / period + 0.5) - 1, 0))``.
    """
    if not period_ms > 0:
        raise ValueError(f"period_ms must be positive; got {period_ms!r}")
    periods = np.floor(np.asarray(intervals_ms, dtype=float) / period_ms + 0.5)
    return int(np.maximum(periods - 1, 0).sum())


def offset_is_due(flips_s: list[float], deadline_s: float, *, refresh: Refresh) -> bool:
    """Whether the next flip should take the image off rather than show it one frame more.

    The offset (a blank screen) would land ``b`` after the last flip; one more image frame
    postpones it by ``p``. The offset is due when it lands closer to the deadline now than one
    frame later: ``last + b >= deadline - p / 2``. With vsync ``b = p`` = the refresh period (the
    offset is the first flip within half a frame of the deadline). Without vsync a flip returns
    once its frame is rendered: ``b`` is the blank screen's flip time measured at start and ``p``
    the median of the last :data:`RECENT_INTERVALS` image intervals (robust to one stall).

    Parameters
    ----------
    flips_s : list of float
        Times of the image's flips so far (``time.perf_counter()`` s), ascending, onset first.
        Called once per frame, so plain Python (a few µs).
    deadline_s : float
        Onset plus the requested duration, s.
    refresh : Refresh
        The session's measured refresh.
    """
    blank_s = refresh.period_ms / 1000.0
    frame_s = blank_s
    if not refresh.vsync and len(flips_s) > 1:
        last = flips_s[-RECENT_INTERVALS - 1 :]
        recent = sorted(b - a for a, b in zip(last, last[1:]))
        frame_s = recent[len(recent) // 2]
    return flips_s[-1] + blank_s >= deadline_s - frame_s / 2


def is_overrun(display_duration_ms: float, *, requested_ms: float, period_ms: float) -> bool:
    """Whether an image stayed on screen longer than requested by more than one frame period."""
    return bool(display_duration_ms > requested_ms + period_ms)


def frame_summary(intervals_ms: np.ndarray, *, refresh: Refresh) -> dict:
    """Summary of one trial's flip intervals for its row.

    Parameters
    ----------
    intervals_ms : ndarray, shape (N,)
        Time between consecutive flips of the image period (onset flip to offset flip), ms.
    refresh : Refresh
        The session's measured refresh.

    Returns
    -------
    dict
        ``frames``, ``interval_mean_ms``, ``interval_p50_ms``, ``interval_p99_ms``,
        ``interval_max_ms`` and ``dropped_frames`` (:func:`dropped_frames` against the measured
        period; None without vsync).
    """
    intervals_ms = np.asarray(intervals_ms, dtype=float)
    dropped = dropped_frames(intervals_ms, period_ms=refresh.period_ms) if refresh.vsync else None
    if intervals_ms.size == 0:
        return {"frames": 0, "dropped_frames": dropped}
    return {
        "frames": int(intervals_ms.size + 1),
        "interval_mean_ms": float(intervals_ms.mean()),
        "interval_p50_ms": float(np.percentile(intervals_ms, 50)),
        "interval_p99_ms": float(np.percentile(intervals_ms, 99)),
        "interval_max_ms": float(intervals_ms.max()),
        "dropped_frames": dropped,
    }


def session_frame_timing(rows: Iterable[dict], *, refresh: Refresh | None) -> dict:
    """A session's frame-timing totals over its trial rows, for the manifest and ``session_end``.

    Parameters
    ----------
    rows : iterable of dict
        The session's ``trials.jsonl`` rows (every segment); skipped trials are ignored.
    refresh : Refresh or None
        The current segment's measurement (None: the window never opened).

    Returns
    -------
    dict
        ``frame_timing`` (``"vsync"`` or ``"no_vsync"``), ``dropped_frames`` (the sum over the
        trials, or None when this segment or an earlier one had no vsync),
        ``dropped_frames_note`` (:data:`NO_VSYNC` or None) and ``overruns`` (trials flagged
        ``overrun``).
    """
    shown = [row for row in rows if not row.get("skipped")]
    counts: list[int | None] = [row.get("dropped_frames") for row in shown]
    measurable = refresh is not None and refresh.vsync and None not in counts
    return {
        "frame_timing": "vsync" if measurable else "no_vsync",
        "dropped_frames": sum(count for count in counts if count is not None) if measurable else None,
        "dropped_frames_note": None if measurable else NO_VSYNC,
        "overruns": sum(bool(row.get("overrun")) for row in shown),
    }


def streamed_frame_timing(dropped_frames: int | None) -> dict[str, Any]:
    """``dropped_frames`` and ``frame_timing`` of a ``trial_end`` or ``session_end`` record.

    The files say "not measurable" with None; the stream says it with ``frame_timing`` =
    ``"no_vsync"`` and a placeholder 0 (see :data:`lookwhere.protocol.FRAME_TIMINGS`), since
    servers that predate the field add the counts up.
    """
    if dropped_frames is None:
        return {"dropped_frames": 0, "frame_timing": "no_vsync"}
    return {"dropped_frames": dropped_frames, "frame_timing": "vsync"}
