"""What every frame loop of the session does: service the live stream and read the operator's keys.

Every loop that shows something — the image, the drift-correction dot, a pause or a question —
calls :meth:`FrameServices.service` once per frame (the stream's I/O and heartbeats, which say
what the task waits for) and reads keys with :meth:`FrameServices.read_keys` (recording which
screen they are read on, so a scripted key source can press each key on the intended screen).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from lookwhere.notes import OperatorNote
from lookwhere.protocol import Record

__all__ = ["RecordSink", "NullSink", "FrameServices"]


class RecordSink(Protocol):
    """Where the session's live records go (:class:`experiment.stream.StreamSink`).

    Each record is a :mod:`lookwhere.protocol` record (:class:`~lookwhere.protocol.SessionStart`,
    :class:`~lookwhere.protocol.TrialStart`, :class:`~lookwhere.protocol.FixationRecord`,
    :class:`~lookwhere.protocol.GazeSample`, :class:`~lookwhere.protocol.MicLevel`,
    :class:`~lookwhere.protocol.MicAudio`,
    :class:`~lookwhere.protocol.TrialEnd`, :class:`~lookwhere.protocol.SessionEnd`) built without
    ``session`` and ``seq``, which the sender stamps (:meth:`experiment.sender.Sender.send`).

    ``send`` must never block (it is called inside the frame loop); ``service`` is called once per
    frame, also while the task waits for a person, to do a bounded amount of I/O and send the
    heartbeats: ``waiting`` names what the task waits for (one of
    :data:`lookwhere.protocol.WAITING_FOR`, None while it shows an image); ``flush`` between
    trials; ``close`` at shutdown. ``wants_gaze``: whether to send a ``gaze`` record every frame
    of an image (a live cursor); ``wants_audio``: whether to send the trial's recording as
    ``mic_audio`` records (the server's live voice detection). ``on_note``, when set, is called
    with each of the experimenter's notes that comes back from the server, as it arrives (in
    ``service``; it must not block).
    """

    wants_gaze: bool
    wants_audio: bool
    on_note: Callable[[OperatorNote], None] | None

    def send(self, record: Record) -> None: ...

    def service(self, *, waiting: str | None = None) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class NullSink:
    """A :class:`RecordSink` that drops everything (no live stream)."""

    wants_gaze = False
    wants_audio = False
    on_note: Callable[[OperatorNote], None] | None = None  # no stream, no notes

    def send(self, record: Record) -> None:
        pass

    def service(self, *, waiting: str | None = None) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _psychopy_keys() -> list[str]:
    from psychopy import event

    return event.getKeys()


class FrameServices:
    """The live stream and the operator's keyboard, as every frame loop of the session uses them.

    Parameters
    ----------
    sink : RecordSink
        The live stream (:class:`NullSink`: none).
    keys : callable or None
        Returns the names of the keys pressed since the last call (PsychoPy names: ``"space"``,
        ``"escape"``); default ``psychopy.event.getKeys``. Tests inject scripted keys here.

    Attributes
    ----------
    screen : str or None
        What the window shows while keys are read: ``"drift"``, ``"image"``, ``"paused"``,
        ``"confirm"``.
    waiting : str or None
        What the task waits for, in its heartbeats (see :meth:`waiting_for`).
    """

    def __init__(self, sink: RecordSink, *, keys: Callable[[], list[str]] | None = None) -> None:
        self.sink = sink
        self._keys = keys if keys is not None else _psychopy_keys
        self.screen: str | None = None
        self.waiting: str | None = None

    def send(self, record: Record) -> None:
        """Hand one record to the stream (never blocks)."""
        self.sink.send(record)

    def service(self) -> None:
        """The stream's per-frame I/O and heartbeat (also called by the tracker's setup screens)."""
        self.sink.service(waiting=self.waiting)

    @contextmanager
    def waiting_for(self, what: str) -> Iterator[None]:
        """Name what the task waits for in the heartbeats while the block runs (nestable)."""
        previous, self.waiting = self.waiting, what
        try:
            yield
        finally:
            self.waiting = previous

    def read_keys(self) -> list[str]:
        """The keys pressed since the last call."""
        return self._keys()
