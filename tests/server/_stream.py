"""Helpers for the stream tests: real sockets on 127.0.0.1, bounded waits."""

from __future__ import annotations

import time
from collections.abc import Callable

from experiment.sender import Sender
from lookwhere import protocol
from server.receiver import Receiver
from tests.protocol._samples import FIELDS

KINDS = sorted(protocol.RECORD_TYPES)


def send_sample(sender: Sender, kind: str) -> protocol.Record:
    """Send the sample record of ``kind``."""
    return sender.send(protocol.RECORD_TYPES[kind](**FIELDS[kind]))


def pump(
    receiver: Receiver | None,
    senders: list[Sender],
    until: Callable[[], bool],
    *,
    timeout_s: float = 10.0,
    sink: list | None = None,
) -> None:
    """Alternate receiver polls and sender services until ``until()``; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        if receiver is not None:
            accepted = receiver.poll(5)
            if sink is not None:
                sink.extend(accepted)
        else:
            time.sleep(0.005)
        for sender in senders:
            sender.service()
