"""The one ZeroMQ socket factory, and CURVE key handling.

Every lookwhere socket is made by :func:`make_socket`, which sets LINGER, high-water marks,
``MAXMSGSIZE``, timeouts, reconnection and (optionally) CURVE *before* ``bind``/``connect``, as
options set afterwards do not apply to connections already made. Two roles exist:

``"sender"`` (experiment, DEALER)
    LINGER 0: at exit nothing may hold the experiment up; every record is in the local journal
    anyway. ``IMMEDIATE``: no queueing towards a server that is not connected, so a send then fails
    at once with ``zmq.Again`` and the record waits in the sender's replay buffer instead of a
    stale pipe. Send and receive timeouts 0: the sender only uses non-blocking calls.
``"receiver"`` (server, ROUTER)
    LINGER 500 ms: the last acknowledgements get a chance to leave on shutdown.
    ``ROUTER_MANDATORY``: a reply to a peer that has gone raises instead of vanishing silently.

CURVE (:class:`CurveKeys`, :func:`create_keys`, :func:`start_authenticator`): the server has a key
pair; clients have theirs and know the server's public key; the server admits only client public
keys found in an allow-list folder, checked by pyzmq's thread authenticator (``zmq.auth``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from lookwhere.protocol import MAX_MESSAGE_BYTES

__all__ = [
    "ROLES",
    "DEFAULT_HOST",
    "LOOPBACK_HOSTS",
    "is_loopback",
    "CurveKeys",
    "make_socket",
    "create_keys",
    "start_authenticator",
]

logger = logging.getLogger(__name__)

#: Loopback by default; binding elsewhere is an explicit choice (and should use CURVE).
DEFAULT_HOST = "127.0.0.1"
#: The names of the loopback interface: the only hosts served without a token or CURVE.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an interface or a ``Host`` header's name, IPv6 with or without brackets)
    names the loopback interface."""
    return host.removeprefix("[").removesuffix("]") in LOOPBACK_HOSTS


@dataclass(frozen=True)
class _Role:
    socket_type: int
    linger_ms: int
    sndhwm: int
    rcvhwm: int
    extra: tuple[tuple[int, int], ...]


ROLES: dict[str, _Role] = {
    "sender": _Role(zmq.DEALER, linger_ms=0, sndhwm=10_000, rcvhwm=10_000, extra=((zmq.IMMEDIATE, 1),)),
    "receiver": _Role(zmq.ROUTER, linger_ms=500, sndhwm=10_000, rcvhwm=100_000, extra=((zmq.ROUTER_MANDATORY, 1),)),
}


@dataclass(frozen=True)
class CurveKeys:
    """A CURVE key pair (Z85 ``bytes``), with the server's public key for a client.

    Attributes
    ----------
    public, secret : bytes
        This side's key pair.
    server_public : bytes or None
        For a client: the server's public key. ``None`` for the server.
    """

    public: bytes
    secret: bytes
    server_public: bytes | None = None

    @classmethod
    def load(cls, secret_file: str | Path, *, server_public_file: str | Path | None = None) -> CurveKeys:
        """Read a ``.key_secret`` file written by :func:`create_keys` (and the server's ``.key``)."""
        public, secret = zmq.auth.load_certificate(str(secret_file))
        if secret is None:
            raise ValueError(f"secret_file {secret_file} holds no secret key; pass the '.key_secret' file")
        server_public = None
        if server_public_file is not None:
            server_public, _ = zmq.auth.load_certificate(str(server_public_file))
        return cls(public, secret, server_public)


def create_keys(folder: str | Path, *, name: str = "server") -> tuple[Path, Path]:
    """Create a CURVE key pair in ``folder`` (created if needed).

    Parameters
    ----------
    folder : str or Path
        Where to write ``<name>.key`` (public; copy it to the other side or the allow-list) and
        ``<name>.key_secret`` (keep it private).
    name : str
        File stem, e.g. ``"server"`` or ``"rig1"``.

    Returns
    -------
    public_file, secret_file : Path
    """
    if not zmq.has("curve"):
        raise RuntimeError("this libzmq was built without CURVE support; install pyzmq's bundled wheel")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(str(folder), name)
    logger.info("created CURVE key pair %s / %s", public_file, secret_file)
    return Path(public_file), Path(secret_file)


def start_authenticator(context: zmq.Context, allowed_keys_dir: str | Path) -> ThreadAuthenticator:
    """Start pyzmq's thread authenticator admitting only the public keys in ``allowed_keys_dir``.

    The caller stops it (``.stop()``) when it closes its sockets. Must run before the server socket
    binds.
    """
    allowed_keys_dir = Path(allowed_keys_dir)
    if not allowed_keys_dir.is_dir():
        raise ValueError(f"allowed_keys_dir {allowed_keys_dir} is not a folder of client '.key' files")
    auth = ThreadAuthenticator(context, log=logging.getLogger(f"{__name__}.auth"))
    auth.start()
    auth.configure_curve(domain="*", location=str(allowed_keys_dir))
    return auth


def make_socket(context: zmq.Context, role: str, *, curve: CurveKeys | None = None) -> zmq.Socket:
    """Create a socket for ``role`` with every option set; the caller binds or connects it.

    Parameters
    ----------
    context : zmq.Context
    role : {"sender", "receiver"}
        See the module docstring for what each sets.
    curve : CurveKeys, optional
        Enables CURVE. For the receiver (server), ``curve.server_public`` must be ``None``; for the
        sender (client) it must be the server's public key.

    Returns
    -------
    zmq.Socket
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}; got {role!r}")
    if curve is not None and (role == "receiver") != (curve.server_public is None):
        raise ValueError(
            "the receiver's CurveKeys must have server_public=None (it is the server)"
            if role == "receiver"
            else "the sender's CurveKeys need server_public, the server's public key"
        )
    spec = ROLES[role]
    sock = context.socket(spec.socket_type)
    sock.setsockopt(zmq.LINGER, spec.linger_ms)
    sock.setsockopt(zmq.SNDHWM, spec.sndhwm)
    sock.setsockopt(zmq.RCVHWM, spec.rcvhwm)
    # Slightly above the payload limit, so the protocol's "oversize" check sees what libzmq lets
    # through; anything larger makes libzmq drop the connection, which it survives.
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES + 1024)
    sock.setsockopt(zmq.SNDTIMEO, 0)
    sock.setsockopt(zmq.RCVTIMEO, 0)
    # Back off to 0.5 s at most: a restarted server is found again within half a second (one
    # attempt per 0.5 s costs nothing), and the replay it asks for follows at once.
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
    for option, value in spec.extra:
        sock.setsockopt(option, value)
    if curve is not None:
        sock.curve_publickey = curve.public
        sock.curve_secretkey = curve.secret
        if role == "receiver":
            sock.curve_server = True
        else:
            sock.curve_serverkey = curve.server_public
    return sock
