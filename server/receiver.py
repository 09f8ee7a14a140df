"""The server side of the stream: validate, persist, acknowledge, de-duplicate, ask for replays.

:class:`Receiver` owns a ROUTER socket (made by :func:`lookwhere.transport.make_socket`) and the
session journals (:mod:`server.journal`). One call to :meth:`Receiver.poll` waits up to a timeout
for messages, handles the batch that arrived and returns the records it accepted:

1. every message is validated (:func:`lookwhere.protocol.decode`); a malformed one is counted by
   reason, logged and dropped, so it never reaches the caller;
2. a record is accepted only if its ``seq`` is the session's next one: it is appended to the
   session's journal; an older ``seq`` is compared with the record held at that ``seq``: the same
   record is a duplicate (counted, acknowledged again), a different one a *conflict* (below); a
   newer one reveals a gap (counted, dropped, and a replay from the first missing ``seq`` is
   requested);
3. after the batch the touched journals are fsynced (policy ``fsync=True``), and only then is each
   session's cumulative ack sent;
4. the accepted records are returned, in ``seq`` order within each session.

At start the journals are reloaded, so the last contiguous ``seq`` of every session survives a
restart (even after SIGKILL) and a sender's replay fills exactly what is missing. Every ack
carries the session's last held ``seq``, the reply to a hello included: a resumed sender numbers
on after it (see :class:`experiment.sender.Sender`).

Conflicts: a record whose ``seq`` is held with *different content* (same bytes, or the same
validated record, is a duplicate) comes from a sender that numbered it without knowing what the
server held (its journal lost records the server had got, and the server was absent when it
resumed). The held record stays, so the persisted stream and the live state do not change; the
received one is counted (:attr:`Receiver.counters` ``conflicts``, and per session
:attr:`SessionStatus.conflicts`, for the dashboard to show in red), logged with its session and
``seq``, and appended to ``<data_dir>/stream/conflicts/<session>.msgpack`` (the same format as a
journal, :func:`lookwhere.protocol.read_journal`; in arrival order, each distinct record once), so
nothing a sender sent is lost. The files are reloaded at start, so the counts survive a restart.
Liveness: a session is alive while it sent anything (records, heartbeats, hellos) within
``liveness_timeout_s``.

Replies (acks, replay requests, and the notes the hub sends with :meth:`Receiver.reply`) go to the
peer that last sent a valid message for the session.
A peer that sends records of someone else's session (possible on an open loopback port, or with
an allowed CURVE key) diverts them until the real sender's next message; the real sender then
recovers through its hello, and nothing is stored twice because of (session, seq) de-duplication.
Whether an image id belongs to the stimulus set is for the live state to check, not the stream.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import msgpack
import zmq
from zmq.utils.monitor import recv_monitor_message

from lookwhere import protocol
from lookwhere.protocol import TOPIC_ACK, TOPIC_HELLO, TOPIC_REPLAY, ProtocolError, Record
from lookwhere.transport import DEFAULT_HOST, CurveKeys, is_loopback, make_socket, start_authenticator
from server.journal import JournalStore

__all__ = ["Receiver", "SessionStatus", "CONFLICTS_FOLDER"]

logger = logging.getLogger(__name__)

#: Where records conflicting with held ones are kept, under ``<data_dir>/stream``.
CONFLICTS_FOLDER = "conflicts"


def _same_record(held: bytes, payload: bytes, record: Record) -> bool:
    """Whether ``payload`` (decoded: ``record``) is the record ``held`` at its seq: the same bytes
    (a resend), or the same validated record (encoded afresh, e.g. an int given for a float field
    turned into a float)."""
    if held == payload:
        return True
    return protocol.encode(protocol.validate_map(msgpack.unpackb(held)))[1] == protocol.encode(record)[1]


class Counters(TypedDict):
    """:attr:`Receiver.counters`."""

    accepted: int
    duplicates: int
    gaps: int
    replays: int
    hellos: int
    acks: int
    reply_failures: int
    conflicts: int
    malformed: dict[str, int]


@dataclass(frozen=True)
class SessionStatus:
    """Stream health of one session, for the dashboard.

    Attributes
    ----------
    session : str
    last_seq : int
        Last contiguous persisted ``seq``.
    silent_s : float
        Seconds since the sender was last heard (inf when not heard since this server started).
    alive : bool
        ``silent_s <= liveness_timeout_s``.
    ended : bool
        A ``session_end`` record was accepted.
    conflicts : int
        Distinct records received with a held ``seq`` but different content (kept aside, never
        applied; see the module notes). Anything above 0 needs the experimenter's attention.
    missing : int
        Records known to be missing now: the highest ``seq`` seen past a hole minus ``last_seq``
        (0 once the replay filled every gap: the gaps counted so far are recovered).
    """

    session: str
    last_seq: int
    silent_s: float
    alive: bool
    ended: bool
    conflicts: int = 0
    missing: int = 0


@dataclass
class _Session:
    last_seq: int = 0
    last_seen: float = float("-inf")
    peer: bytes | None = None
    ended: bool = False
    alive: bool = False
    replay_asked_for: int = 0  # the seq last asked for, and when
    replay_asked_at: float = float("-inf")
    conflicts: set[tuple[int, bytes]] = field(default_factory=set)  # (seq, payload) kept aside
    highest_seen: int = 0  # the largest seq received, held or not


class Receiver:
    """Receive, validate and persist protocol records from experiment senders.

    Parameters
    ----------
    data_dir : str or Path
        Where the session journals live (``<data_dir>/stream``); reloaded at start.
    host : str
        Interface to bind; loopback by default. Binding another interface exposes the stream
        to the network: use ``curve`` then.
    port : int
        TCP port; 0 picks a free one (see :attr:`endpoint`).
    context : zmq.Context, optional
        Defaults to the process's shared instance.
    curve : CurveKeys, optional
        The server key pair; requires ``allowed_keys_dir``.
    allowed_keys_dir : str or Path, optional
        Folder of client public ``.key`` files allowed in CURVE mode.
    fsync : bool
        fsync the touched journals once per batch before acknowledging (default). Without it a
        record survives a server crash but not a power cut.
    liveness_timeout_s : float
        A session is reported dead after this long without any message (3 heartbeats).
    replay_interval_s : float
        Do not repeat the same replay request more often than this.
    max_batch : int
        Most messages handled per :meth:`poll` before acknowledging.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        context: zmq.Context | None = None,
        curve: CurveKeys | None = None,
        allowed_keys_dir: str | Path | None = None,
        fsync: bool = True,
        liveness_timeout_s: float = 3.0,
        replay_interval_s: float = 0.2,
        max_batch: int = 1000,
    ) -> None:
        if (curve is None) != (allowed_keys_dir is None):
            raise ValueError(
                "CURVE needs both curve (the server keys) and allowed_keys_dir (client keys); "
                f"got curve={'set' if curve else None}, allowed_keys_dir={allowed_keys_dir!r}"
            )
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535 (0: any free port); got {port!r}")
        self._fsync = fsync
        self._liveness_timeout_s = liveness_timeout_s
        self._replay_interval_s = replay_interval_s
        self._max_batch = max_batch
        self.store = JournalStore(data_dir)
        self._sessions: dict[str, _Session] = {
            name: _Session(last_seq=journal.last_seq, ended=journal.last_kind == "session_end")
            for name, journal in self.store.journals.items()
        }
        context = context or zmq.Context.instance()
        self._auth = (
            start_authenticator(context, allowed_keys_dir)
            if curve is not None and allowed_keys_dir is not None  # both or neither, checked above
            else None
        )
        self._socket = make_socket(context, "receiver", curve=curve)
        # Connection events tell at once that a sender's connection closed (the experiment exited
        # or crashed, the network went down), where silence would take the liveness timeout.
        self._monitor = self._socket.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self._n_connections = 0
        if curve is None and not is_loopback(host):
            logger.warning("receiver bound to %s without CURVE: anyone on the network can stream to it", host)
        try:
            self._socket.bind(f"tcp://{host}:{port if port else '*'}")
        except zmq.ZMQError:  # e.g. the port is taken: release what was opened, then say so
            self.close()
            raise
        #: the bound endpoint, e.g. ``"tcp://127.0.0.1:43517"``
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._counters: Counter[str] = Counter()
        self._malformed: Counter[str] = Counter()
        self._conflicts_dir = self.store.folder / CONFLICTS_FOLDER
        self._reload_conflicts()
        logger.info("receiver bound to %s%s, data in %s", self.endpoint, " (CURVE)" if curve else "", self.store.folder)

    # -- consumer API ----------------------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        """A snapshot: ``accepted``, ``duplicates``, ``conflicts`` (distinct records whose seq was
        held with other content, every session, persisted ones included; per session in
        :meth:`sessions`), ``gaps`` (records arriving past a hole), ``replays`` (replay requests
        sent), ``hellos``, ``acks``, ``reply_failures`` and ``malformed`` (reason → count, reasons
        from :data:`lookwhere.protocol.REJECT_REASONS`)."""
        counts = self._counters
        return Counters(
            accepted=counts["accepted"],
            duplicates=counts["duplicates"],
            gaps=counts["gaps"],
            replays=counts["replays"],
            hellos=counts["hellos"],
            acks=counts["acks"],
            reply_failures=counts["reply_failures"],
            conflicts=sum(len(s.conflicts) for s in self._sessions.values()),
            malformed=dict(self._malformed),
        )

    def sessions(self) -> dict[str, SessionStatus]:
        """Stream health of every known session (persisted ones included)."""
        now = time.monotonic()
        return {
            name: SessionStatus(
                name,
                s.last_seq,
                now - s.last_seen,
                now - s.last_seen <= self._liveness_timeout_s,
                s.ended,
                len(s.conflicts),
                max(0, s.highest_seen - s.last_seq),
            )
            for name, s in self._sessions.items()
        }

    @property
    def n_connections(self) -> int:
        """Senders connected now (TCP connections accepted and not yet closed): 0 while a session
        is running means its experiment process is gone or its network is down."""
        return self._n_connections

    def persisted(self, session: str) -> Iterator[Record]:
        """The persisted records of ``session`` in ``seq`` order (e.g. to rebuild state at start)."""
        if session not in self.store.journals:
            raise KeyError(f"session {session!r} has no journal in {self.store.folder}")
        return self.store.journals[session].records()

    def poll(self, timeout_ms: int = 100) -> list[Record]:
        """Wait up to ``timeout_ms`` for messages, handle them, return the records accepted.

        Returns
        -------
        list of Record
            Newly persisted records, in ``seq`` order within each session; empty on timeout.
        """
        accepted: list[Record] = []
        ready = dict(self._poller.poll(timeout_ms))
        if self._monitor in ready:
            self._take_connection_events()
        if self._socket in ready:
            to_ack: set[str] = set()
            for _ in range(self._max_batch):
                try:
                    frames = self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    break
                self._handle(frames, accepted, to_ack)
            self._acknowledge(to_ack)
        self._update_liveness()
        return accepted

    def serve(
        self, on_records: Callable[[list[Record]], None], *, stop: threading.Event, timeout_ms: int = 100
    ) -> None:
        """Call :meth:`poll` until ``stop`` is set, passing each non-empty batch to ``on_records``.

        Run it in one thread (e.g. a server's background thread): the receiver, like its socket,
        is not thread-safe; hand the records to other threads through ``on_records``.
        """
        while not stop.is_set():
            records = self.poll(timeout_ms)
            if records:
                on_records(records)

    def reply(self, session: str, frames: tuple[bytes, bytes]) -> bool:
        """Send a control message (e.g. :func:`lookwhere.protocol.encode_note`) to the sender of
        ``session``, without waiting; from the receiver's thread (the socket is not thread-safe).

        Returns
        -------
        bool
            False when the session's sender was not heard since the start or the send failed
            (counted in ``reply_failures``): send it again later.
        """
        state = self._sessions.get(session)
        return self._reply(None if state is None else state.peer, frames)

    def close(self) -> None:
        """Close the socket, the journals and the authenticator."""
        self._socket.disable_monitor()
        self._monitor.close()
        self._socket.close()
        self.store.close()
        if self._auth is not None:
            self._auth.stop()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------

    def _take_connection_events(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self._monitor, flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._n_connections += 1
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self._n_connections = max(0, self._n_connections - 1)
                logger.info("a sender's connection closed (%d open)", self._n_connections)

    def _reject(self, exc: ProtocolError) -> None:
        self._malformed[exc.reason] += 1
        n = self._malformed[exc.reason]
        # One warning per reason, then one per 1000: a flood must not flood the log too.
        log = logger.warning if n == 1 or n % 1000 == 0 else logger.debug
        log("dropped malformed message (%s, %d so far): %s", exc.reason, n, exc.detail)

    def _handle(self, frames: list[bytes], accepted: list[Record], to_ack: set[str]) -> None:
        try:
            if len(frames) != 3:  # ROUTER prepends the peer's routing id
                raise ProtocolError("bad_frames", f"expected [topic, payload]; got {len(frames) - 1} frames")
            peer, topic, payload = frames
            if topic == TOPIC_HELLO:
                session, last_seq = protocol.decode_control(topic, payload)
                record = None
            else:
                record = protocol.decode(topic, payload)
                session = record.session
        except ProtocolError as exc:
            self._reject(exc)
            return
        state = self._sessions.get(session)
        if state is None:
            state = self._sessions[session] = _Session()
        state.last_seen = time.monotonic()
        state.peer = peer
        if record is not None:
            state.highest_seen = max(state.highest_seen, record.seq)
        if record is None:
            self._counters["hellos"] += 1
            to_ack.add(session)
            if last_seq > state.last_seq:
                self._request_replay(session, state, force=True)
        elif record.seq == state.last_seq + 1:
            self.store.open(session).append(record.seq, payload)
            state.last_seq = record.seq
            state.ended = state.ended or record.kind == "session_end"
            self._counters["accepted"] += 1
            accepted.append(record)
            to_ack.add(session)
        elif record.seq <= state.last_seq:
            held = self.store.open(session).payload(record.seq)
            if _same_record(held, payload, record):
                self._counters["duplicates"] += 1
            else:
                self._keep_conflict(state, record, payload, held)
            to_ack.add(session)
        else:
            self._counters["gaps"] += 1
            self._request_replay(session, state, force=False)

    def _keep_conflict(self, state: _Session, record: Record, payload: bytes, held: bytes) -> None:
        """Count, log and set aside a record whose seq is held with other content."""
        if (record.seq, payload) in state.conflicts:
            return  # a resend of one already kept
        state.conflicts.add((record.seq, payload))
        self._conflicts_dir.mkdir(exist_ok=True)
        path = self._conflicts_dir / f"{record.session}.msgpack"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)  # before the ack that tells the sender its record is taken care of
        finally:
            os.close(fd)
        n = len(state.conflicts)
        log = logger.warning if n <= 10 or n % 100 == 0 else logger.debug
        log(
            "session %s seq %d: CONFLICT, a %s record differing from the %s held at this seq (%d in this "
            "session); the held one stays, the received one is kept aside in %s",
            record.session,
            record.seq,
            record.kind,
            msgpack.unpackb(held)["kind"],
            n,
            path,
        )

    def _reload_conflicts(self) -> None:
        for path in sorted(self._conflicts_dir.glob("*.msgpack")):
            data = path.read_bytes()
            start = 0
            for end, entry in protocol.read_journal(path):
                state = self._sessions.setdefault(path.stem, _Session())
                state.conflicts.add((protocol.validate_map(entry).seq, data[start:end]))
                start = end
        total = sum(len(s.conflicts) for s in self._sessions.values())
        if total:
            logger.warning(
                "%d conflicting records kept aside in %s (see the receiver's notes)", total, self._conflicts_dir
            )

    def _request_replay(self, session: str, state: _Session, *, force: bool) -> None:
        wanted = state.last_seq + 1
        now = time.monotonic()
        if not force and state.replay_asked_for == wanted and now - state.replay_asked_at < self._replay_interval_s:
            return
        state.replay_asked_for, state.replay_asked_at = wanted, now
        self._counters["replays"] += 1
        logger.debug("session %s: asking for replay from seq %d", session, wanted)
        self._reply(state.peer, protocol.encode_control(TOPIC_REPLAY, session, wanted))

    def _acknowledge(self, sessions: set[str]) -> None:
        if self._fsync:
            for session in sessions:
                journal = self.store.journals.get(session)
                if journal is not None:
                    journal.sync()
        for session in sessions:
            state = self._sessions[session]
            self._counters["acks"] += 1
            self._reply(state.peer, protocol.encode_control(TOPIC_ACK, session, state.last_seq))

    def _reply(self, peer: bytes | None, frames: tuple[bytes, bytes]) -> bool:
        if peer is None:  # never heard from this session's sender since the start: it will say hello
            self._counters["reply_failures"] += 1
            return False
        try:
            self._socket.send_multipart((peer, *frames), flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # peer gone (EHOSTUNREACH) or stalled (EAGAIN): it will say hello
            self._counters["reply_failures"] += 1
            logger.debug("reply to a sender failed: %s", exc)
            return False
        return True

    def _update_liveness(self) -> None:
        now = time.monotonic()
        for name, state in self._sessions.items():
            alive = now - state.last_seen <= self._liveness_timeout_s
            if alive != state.alive:
                state.alive = alive
                if alive:
                    logger.info("session %s: sender is streaming (last seq %d)", name, state.last_seq)
                elif not state.ended:
                    logger.warning(
                        "session %s: no message for %.1f s (last seq %d)",
                        name,
                        self._liveness_timeout_s,
                        state.last_seq,
                    )
