"""The experiment side of the stream: non-blocking, journalled, replaying sender.

The trial loop calls :meth:`Sender.send` for every record and :meth:`Sender.service` once per
frame; between trials it calls :meth:`Sender.flush`. Nothing here ever waits for the server (see
:mod:`lookwhere.protocol` for the delivery scheme and :mod:`lookwhere.transport` for the socket).
This module never imports torch or the analysis package.
"""

from __future__ import annotations

import logging
import mmap
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import zmq

from lookwhere import protocol
from lookwhere.notes import OperatorNote
from lookwhere.protocol import TOPIC_ACK, TOPIC_HELLO, TOPIC_NOTE, TOPIC_REPLAY, Heartbeat, ProtocolError, Record
from lookwhere.transport import CurveKeys, make_socket

__all__ = ["Sender"]

logger = logging.getLogger(__name__)

R = TypeVar("R", bound=Record)


class Sender:
    """Send protocol records to the server without ever blocking the caller.

    Parameters
    ----------
    endpoint : str
        The server's ZeroMQ endpoint, e.g. ``"tcp://127.0.0.1:5570"``.
    journal_path : str or Path
        Local append-only journal (concatenated msgpack record maps, readable with
        :func:`lookwhere.protocol.read_journal`); created, or appended to. Records carry their
        session, so one file may hold several sessions. When it already holds records of
        ``session`` (a resumed session), numbering continues after them (or after what the server
        holds, when it answers with more) and they are offered to the server again, which keeps
        only what it lacks.
    session : str, optional
        Session UUID; a new random one by default.
    context : zmq.Context, optional
        Defaults to the process's shared instance.
    curve : CurveKeys, optional
        Client keys plus the server's public key, for CURVE mode.
    heartbeat_interval_s : float or None
        :meth:`service` sends a :class:`~lookwhere.protocol.Heartbeat` this often (None: never).
    resend_after_s : float
        With records unacknowledged and no acknowledgement for this long, :meth:`service` sends a
        hello so the server says what it lacks (its reply triggers the replay).
    max_sends_per_service : int
        Most messages one :meth:`service` call transmits, bounding its cost after a reconnect
        (~5 µs each: 100 is ~0.5 ms of a frame, and drains 6000 records/s at 60 Hz, twenty times
        a session's rate of ~270 records/s).
    session_clock_ms : callable, optional
        Returns milliseconds since the session started (for heartbeats); by default, since this
        sender was created.

    Notes
    -----
    Why a per-frame :meth:`service` call and not a background thread: the PsychoPy loop holds
    the GIL for its frame work, and a thread unpacking acknowledgements or resending a backlog
    would take the GIL from it for up to the interpreter's switch interval (5 ms), i.e. a
    dropped frame; the socket would also need a lock, since ZeroMQ sockets are not thread-safe.
    Called from the loop, the work happens where the task has time for it and its cost is
    bounded (``max_sends_per_service``). Every socket call is ``zmq.NOBLOCK``: when the server is
    absent (``IMMEDIATE``: no pipe) or stalled (high-water mark reached) the send fails with
    ``zmq.Again`` at once and the record waits in memory, where :meth:`service` resends it.

    Unacknowledged records are kept in memory (and all records in the journal); when the server
    acknowledges ``seq`` (cumulatively) they are dropped.

    The experimenter's notes the server sends back (``ctl.note``, see :mod:`lookwhere.protocol`) are
    kept for :meth:`take_notes` (the task writes them to its session folder between trials).

    Journal: each record is handed to the kernel (``os.write`` on an ``O_APPEND`` descriptor, no
    buffer in this process) *before* it is transmitted, so a SIGKILL of the experiment never loses
    a record the server may hold, and a resumed sender never reuses a seq; :meth:`flush` (between
    trials) fsyncs it, for a power cut.

    The server's ack carries the last seq it holds for the session (also in reply to the hello
    :meth:`handshake` sends at session start). When that is beyond this sender's last seq (its
    journal lacks records the server got: a power cut before the fsync, an older lookwhere's
    buffered journal, a replaced file), numbering jumps past it, so that new records never take a
    seq the server holds. The jump stays in the journal as a forward step of seq, which a reload
    reads as "the server held everything before it". Records this sender numbered inside the
    server's range before it learned of it (the server was absent at resume) differ from the held
    ones: the server keeps its own, counts them as conflicts and sets them aside (see
    :mod:`server.receiver`); they also stay in this journal.

    Not thread-safe: use a sender from one thread.
    """

    def __init__(
        self,
        endpoint: str,
        journal_path: str | Path,
        *,
        session: str | None = None,
        context: zmq.Context | None = None,
        curve: CurveKeys | None = None,
        heartbeat_interval_s: float | None = 1.0,
        resend_after_s: float = 0.5,
        max_sends_per_service: int = 100,
        session_clock_ms: Callable[[], float] | None = None,
    ) -> None:
        if heartbeat_interval_s is not None and not heartbeat_interval_s > 0:
            raise ValueError(f"heartbeat_interval_s must be > 0 or None; got {heartbeat_interval_s!r}")
        if not resend_after_s > 0:
            raise ValueError(f"resend_after_s must be > 0; got {resend_after_s!r}")
        if max_sends_per_service < 1:
            raise ValueError(f"max_sends_per_service must be >= 1; got {max_sends_per_service!r}")
        self.session = str(uuid.uuid4()) if session is None else session
        protocol.FIELD_RULES["session"]("session", self.session)  # fails early on a bad UUID
        self.endpoint = endpoint
        self.journal_path = Path(journal_path)
        self._heartbeat_interval_s = heartbeat_interval_s
        self._resend_after_s = resend_after_s
        self._max_sends = max_sends_per_service
        t0 = time.monotonic()
        self._session_clock_ms = session_clock_ms or (lambda: (time.monotonic() - t0) * 1000.0)

        self._socket = make_socket(context or zmq.Context.instance(), "sender", curve=curve)
        try:
            self._socket.connect(endpoint)
            self._journal_fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except BaseException:  # a bad endpoint or journal path: leave no open socket behind
            self._socket.close()
            raise

        # Topic and payload of seq acked_seq+1, acked_seq+2, ...: deques, because a dict or a list
        # this size (100k+ records while the server is away) resizes in one O(n) step, a
        # multi-ms stall; and bytes only (no tuples), which the garbage collector does not track,
        # so a backlog does not trigger full collections on the caller's thread either.
        self._pending_topics: deque[bytes] = deque()
        self._pending: deque[bytes] = deque()
        self.last_seq = 0  # last seq assigned
        self.acked_seq = 0  # every seq <= this is persisted by the server
        self._next_send = 1  # next seq to transmit
        self._last_progress = t0  # last time the acked seq advanced (or the sender started)
        self._last_hello = float("-inf")
        self._last_heartbeat = t0
        self._unreplayable = 0  # the replay start last reported as impossible
        #: counts for health displays: ``sent`` (every transmission), ``would_block`` (refused,
        #: kept for later), ``resent`` (transmissions made by :meth:`service`: records refused
        #: earlier or replayed), ``hellos``, ``acks``, ``replay_requests``, ``bad_replies``,
        #: ``server_ahead`` (the server held seqs beyond this sender's last: numbering jumped),
        #: ``notes`` (notes received, resends included)
        self.stats = dict.fromkeys(
            (
                "sent",
                "would_block",
                "resent",
                "hellos",
                "acks",
                "replay_requests",
                "bad_replies",
                "server_ahead",
                "notes",
            ),
            0,
        )
        self._notes: list[tuple[int, OperatorNote]] = []  # received, not taken yet
        self._closed = False
        try:
            self._reload_journal()
        except BaseException:
            os.close(self._journal_fd)
            self._socket.close()
            raise
        self._first_own_seq = self.last_seq + 1  # the first seq this sender numbers itself
        logger.info("sender for session %s connecting to %s, journal %s", self.session, endpoint, journal_path)

    # -- the caller's API ------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """How many records the server has not acknowledged yet."""
        return len(self._pending)

    def send(self, record: R, /) -> R:
        """Stamp, validate, journal and send one record; never blocks.

        Parameters
        ----------
        record : Record
            One of :data:`lookwhere.protocol.RECORD_TYPES`' classes, built without ``session``
            and ``seq`` (the sender stamps them).

        Returns
        -------
        Record
            The record as sent, with this sender's session and its ``seq``.

        Raises
        ------
        ValueError
            When ``record`` already carries a ``seq`` (a record is sent once; a resend is the
            sender's own business).
        lookwhere.protocol.ProtocolError
            When a field breaks the schema (e.g. NaN gaze); no seq is used up then.
        """
        if record.seq:
            raise ValueError(f"{record.kind} record already has seq {record.seq}; send records built without one")
        record, (topic, payload) = protocol.stamp(record, session=self.session, seq=self.last_seq + 1)
        self._write_journal(payload)  # in the kernel before it can reach the server
        self.last_seq = record.seq
        self._pending_topics.append(topic)
        self._pending.append(payload)
        if self._next_send == record.seq and self._transmit(topic, payload):
            self._next_send += 1
        return record

    def service(self) -> None:
        """Once per frame: take in acknowledgements, resend what is due, send a heartbeat if due.

        Non-blocking; transmits at most ``max_sends_per_service`` messages.
        """
        now = time.monotonic()
        self._deliver(now)
        if self._heartbeat_interval_s is not None and now - self._last_heartbeat >= self._heartbeat_interval_s:
            self._last_heartbeat = now
            self.send(Heartbeat(t_session_ms=self._session_clock_ms(), wall_time_s=time.time(), pending=self.pending))

    def take_notes(self) -> list[tuple[int, OperatorNote]]:
        """The notes received since the last call: ``(index, note)``, ``index`` the note's 0-based
        place among the session's notes (a note may come twice: the server sends what the last
        heartbeat said was missing)."""
        notes, self._notes = self._notes, []
        return notes

    def handshake(self, timeout_s: float = 2.0) -> bool:
        """Ask the server whether it is there and what it holds of this session; at session start
        only, before any trial (this one waits, up to ``timeout_s``).

        The answer's seq is the server's last for the session: held records are acknowledged, and
        numbering continues after it when it is beyond this sender's last seq (see the class notes).

        Returns
        -------
        bool
            True when the server answered a hello (an acknowledgement or a replay request).
            False is a warning, never a blocker: the session streams when the server comes (when it
            then holds more of a resumed session than the journal, the overlap becomes conflicts).
        """
        answered = self.stats["acks"] + self.stats["replay_requests"]
        deadline = time.monotonic() + timeout_s
        next_hello = 0.0
        while (now := time.monotonic()) < deadline:
            if now >= next_hello:  # the connection may not be up yet (IMMEDIATE refuses sends)
                self.stats["hellos"] += 1
                self._transmit(*protocol.encode_control(TOPIC_HELLO, self.session, self.acked_seq))
                next_hello = now + 0.2
            if self._socket.poll(50, zmq.POLLIN):
                self._drain_replies(time.monotonic())
            if self.stats["acks"] + self.stats["replay_requests"] > answered:
                return True
        return False

    def drain(self, timeout_s: float = 5.0) -> bool:
        """At the end of a session: wait up to ``timeout_s`` until the server has acknowledged
        every record (resending and saying hello meanwhile), e.g. while a restarted server comes
        back. Waits only if the server answered at some point: an absent one costs nothing.

        Returns
        -------
        bool
            True when nothing is left unacknowledged (what is left stays in the journal).
        """
        if self._pending and self.stats["acks"] + self.stats["replay_requests"]:
            logger.info("waiting up to %g s for the server to acknowledge %d records", timeout_s, len(self._pending))
            deadline = time.monotonic() + timeout_s
            while self._pending and (now := time.monotonic()) < deadline:
                self._deliver(now)
                self._socket.poll(20, zmq.POLLIN)
        return not self._pending

    def flush(self, *, fsync: bool = True) -> None:
        """Make the journal durable (between trials, never per record).

        Every record is in the kernel since its :meth:`send`, which a killed process cannot
        lose; the fsync makes it survive a power cut too.

        Parameters
        ----------
        fsync : bool
            ``os.fsync`` the file (default; a few ms). False does nothing.
        """
        if fsync:
            os.fsync(self._journal_fd)

    def close(self) -> None:
        """Fsync the journal and close the socket (LINGER 0: unsent messages are dropped, the
        journal has them). Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            os.close(self._journal_fd)
            self._socket.close()
        if self._pending:
            logger.warning(
                "session %s closed with %d records unacknowledged (seq %d..%d); they are in %s",
                self.session,
                len(self._pending),
                self.acked_seq + 1,
                self.last_seq,
                self.journal_path,
            )

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------

    def _reload_journal(self) -> None:
        """Continue a resumed session: its journalled records become pending, seq goes on after them.

        Records are kept as the bytes journalled (re-encoding could change them, e.g. an int given
        for a float field, and the server would take the resend for a conflict). A forward step of
        seq is a jump made when the server held more (see the class notes): everything before it
        is held by the server. A record cut short by a crash ends the file; it is cut off so new
        records follow whole ones.
        """
        size = self.journal_path.stat().st_size
        if size == 0:
            return
        start = end = 0
        with open(self.journal_path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
            for end, data in protocol.read_journal(self.journal_path):
                record = protocol.validate_map(data)
                if record.session == self.session:
                    if record.seq <= self.last_seq:
                        raise ValueError(
                            f"journal {self.journal_path} holds session {self.session} seq {record.seq} after "
                            f"{self.last_seq}; it is not this sender's journal or was edited. Use a new journal."
                        )
                    if record.seq > self.last_seq + 1:
                        self._jump_to(record.seq - 1, time.monotonic())
                    self._pending_topics.append(record.kind.encode("ascii"))
                    self._pending.append(view[start:end])
                    self.last_seq = record.seq
                start = end
        if end < size:
            logger.warning("journal %s: cut off a record truncated by a crash at byte %d", self.journal_path, end)
            os.truncate(self.journal_path, end)
        if self.last_seq:
            logger.info("resuming session %s after seq %d from %s", self.session, self.last_seq, self.journal_path)

    def _write_journal(self, payload: bytes) -> None:
        view = memoryview(payload)
        while view:  # os.write may write less than asked (e.g. interrupted by a signal)
            view = view[os.write(self._journal_fd, view) :]

    def _deliver(self, now: float) -> None:
        """Take in replies, (re)transmit what is due (bounded), say hello when acks stall."""
        self._drain_replies(now)
        for _ in range(self._max_sends):
            if self._next_send > self.last_seq:
                break
            index = self._next_send - self.acked_seq - 1
            if not self._transmit(self._pending_topics[index], self._pending[index]):
                break
            self.stats["resent"] += 1
            self._next_send += 1
        silent_s = now - max(self._last_progress, self._last_hello)
        if self._pending and silent_s > self._resend_after_s:
            self._last_hello = now
            self.stats["hellos"] += 1
            self._transmit(*protocol.encode_control(TOPIC_HELLO, self.session, self._next_send - 1))

    def _transmit(self, topic: bytes, payload: bytes) -> bool:
        try:
            self._socket.send_multipart((topic, payload), flags=zmq.NOBLOCK)
        except zmq.Again:
            self.stats["would_block"] += 1
            return False
        self.stats["sent"] += 1
        return True

    def _drain_replies(self, now: float) -> None:
        while True:
            try:
                frames = self._socket.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                if len(frames) != 2 or frames[0] not in (TOPIC_ACK, TOPIC_REPLAY, TOPIC_NOTE):
                    raise ProtocolError("bad_frames", f"{len(frames)} frames, topic {frames[0][:40]!r}")
                if frames[0] == TOPIC_NOTE:
                    session, index, note = protocol.decode_note(frames[1])
                else:
                    session, seq = protocol.decode_control(frames[0], frames[1])
            except ProtocolError as exc:
                self.stats["bad_replies"] += 1
                logger.warning("dropped a malformed reply from the server: %s", exc)
                continue
            if session != self.session:
                self.stats["bad_replies"] += 1
                logger.warning("dropped a reply for session %s: this sender streams %s", session, self.session)
                continue
            if frames[0] == TOPIC_NOTE:
                self.stats["notes"] += 1
                self._notes.append((index, note))
                continue
            replay = frames[0] == TOPIC_REPLAY
            self.stats["replay_requests" if replay else "acks"] += 1
            # An ack says the server holds 1..seq; a replay, that it holds 1..from_seq-1 and wants the rest.
            held = seq - 1 if replay else seq
            if held > self.last_seq:
                self._server_ahead(held, now)
                continue
            self._acknowledge(held, now)
            if replay:
                if seq <= self.acked_seq:
                    self._cannot_replay(seq)
                self._next_send = max(self.acked_seq + 1, min(self._next_send, seq))

    def _server_ahead(self, held: int, now: float) -> None:
        """The server holds seq 1..``held``, more than this sender has numbered: jump past it."""
        self.stats["server_ahead"] += 1
        logger.warning(
            "session %s: the server holds seq 1..%d, the journal %s only up to seq %d (records were lost from "
            "it, e.g. by a power cut before its fsync, or an older lookwhere wrote it); numbering continues at "
            "seq %d",
            self.session,
            held,
            self.journal_path,
            self.last_seq,
            held + 1,
        )
        own = max(self._next_send, self._first_own_seq)
        if own <= self.last_seq:
            # Numbered here before the server's range was known (it was away at the start): the
            # server keeps its own records and sets these aside as conflicts; let those never
            # transmitted reach it too (they also stay in the journal).
            first = own - self.acked_seq - 1
            for index in range(first, min(len(self._pending), first + self._max_sends)):
                if not self._transmit(self._pending_topics[index], self._pending[index]):
                    break
        if self._first_own_seq <= self.last_seq:
            logger.warning(
                "session %s: seq %d..%d of this sender differ from the server's: it counts them as "
                "conflicts and keeps them aside",
                self.session,
                self._first_own_seq,
                self.last_seq,
            )
        self._jump_to(held, now)

    def _jump_to(self, held: int, now: float) -> None:
        """Number on after ``held``; the server holds every seq up to it."""
        self._pending_topics.clear()
        self._pending.clear()
        self.acked_seq = self.last_seq = held
        self._next_send = held + 1
        self._last_progress = now

    def _cannot_replay(self, from_seq: int) -> None:
        if from_seq == self._unreplayable:
            return
        self._unreplayable = from_seq
        logger.warning(
            "session %s: the server asks for seq %d onwards, but it acknowledged seq 1..%d, which this sender "
            "dropped from memory (did its data folder change?). They are in %s: run the session with --resume "
            "to offer them again",
            self.session,
            from_seq,
            self.acked_seq,
            self.journal_path,
        )

    def _acknowledge(self, seq: int, now: float) -> None:
        if seq <= self.acked_seq:
            return
        for _ in range(seq - self.acked_seq):
            self._pending_topics.popleft()
            self._pending.popleft()
        self.acked_seq = seq
        self._next_send = max(self._next_send, seq + 1)
        self._last_progress = now
