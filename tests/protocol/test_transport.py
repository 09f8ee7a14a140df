"""lookwhere.transport: the factory sets every option before use; CURVE keys are created.

Oracle: the values read back from libzmq with ``getsockopt``.
"""

from __future__ import annotations

import pytest
import zmq
import zmq.auth

from lookwhere import protocol
from lookwhere.transport import ROLES, CurveKeys, create_keys, make_socket


@pytest.mark.parametrize("role", sorted(ROLES))
def test_factory_sets_limits_and_timeouts(role):
    context = zmq.Context()
    sock = make_socket(context, role)
    try:
        spec = ROLES[role]
        assert sock.type == spec.socket_type
        assert sock.getsockopt(zmq.LINGER) == spec.linger_ms
        assert sock.getsockopt(zmq.SNDHWM) == spec.sndhwm and sock.getsockopt(zmq.RCVHWM) == spec.rcvhwm
        assert sock.getsockopt(zmq.MAXMSGSIZE) == protocol.MAX_MESSAGE_BYTES + 1024
        assert sock.getsockopt(zmq.SNDTIMEO) == 0 and sock.getsockopt(zmq.RCVTIMEO) == 0
    finally:
        sock.close()
        context.term()


def test_factory_rejects_unknown_roles_and_half_curve_configs(tmp_path):
    context = zmq.Context()
    try:
        with pytest.raises(ValueError, match="role must be one of"):
            make_socket(context, "publisher")
        public, secret = zmq.curve_keypair()
        with pytest.raises(ValueError, match="need server_public"):
            make_socket(context, "sender", curve=CurveKeys(public, secret))
    finally:
        context.term()


def test_create_keys_writes_a_loadable_pair(tmp_path):
    public_file, secret_file = create_keys(tmp_path / "keys", name="rig1")
    assert (public_file.name, secret_file.name) == ("rig1.key", "rig1.key_secret")
    keys = CurveKeys.load(secret_file, server_public_file=public_file)
    assert len(keys.public) == len(keys.secret) == 40  # Z85 of 32 bytes
    assert zmq.auth.load_certificate(str(public_file)) == (keys.public, None)
