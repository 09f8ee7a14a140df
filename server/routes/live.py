"""``WS /ws``: the dashboard's live feed.

On connect the client gets a snapshot of every section; afterwards, whenever the hub changes,
the sections newer than what this client was last sent — latest only, so a slow client skips
intermediate states instead of queueing them. Each message is a
:class:`server.sections.LiveMessage`: its ``v`` is :data:`server.sections.SCHEMA_VERSION`, which
the page checks before it reads anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status

from server.sections import SCHEMA_VERSION
from server.security import websocket_allowed

router = APIRouter(tags=["live"])
logger = logging.getLogger(__name__)

#: At most one message per client this often: a 250 Hz gaze stream coalesces to 100 messages a
#: second (a screen shows 60), which halves the event loop's CPU for at most 10 ms of latency.
MIN_INTERVAL_S = 0.01


@router.websocket("/ws")
async def live_feed(websocket: WebSocket) -> None:
    refusal = websocket_allowed(websocket)
    if refusal is not None:
        logger.warning("WebSocket refused: %s", refusal)
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=refusal)
        return
    await websocket.accept()
    hub = websocket.app.state.hub
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def notify() -> None:  # called from the hub's threads
        with contextlib.suppress(RuntimeError):  # the event loop may be closing
            loop.call_soon_threadsafe(wake.set)

    unsubscribe = hub.subscribe(notify)
    hub.n_clients += 1
    sent: dict[str, int] = {}
    closed = asyncio.ensure_future(_closed(websocket))
    last_s = -MIN_INTERVAL_S
    try:
        while not closed.done():
            await asyncio.sleep(max(0.0, last_s + MIN_INTERVAL_S - loop.time()))
            sections, versions = hub.sections_since(sent)
            if sections:
                # the sections are already JSON-ready: built here, not through LiveMessage, so
                # they are not validated again for every client
                message = {
                    "type": "update" if sent else "snapshot",
                    "v": SCHEMA_VERSION,
                    "server_time_s": time.time(),
                    "sections": sections,
                }
                await websocket.send_text(json.dumps(message, allow_nan=False))
                sent, last_s = versions, loop.time()
            waiter = asyncio.ensure_future(wake.wait())
            await asyncio.wait({waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            wake.clear()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        closed.cancel()
        unsubscribe()
        hub.n_clients -= 1


async def _closed(websocket: WebSocket) -> None:
    """Return when the client goes away (it sends nothing the server needs)."""
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    except (WebSocketDisconnect, RuntimeError):
        return
