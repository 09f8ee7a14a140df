"""The analysis server's web application: assembles the routers around one :class:`LiveHub`.

Long-lived resources — the stimulus set, the map store, the hub with its ZeroMQ receiver and
threads — are created in :func:`lifespan` and kept on ``app.state``, never at import time.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from server.config import ServeConfig
from server.routes import dashboard, health, images, live, notes, replay, review, session
from server.security import require_access

if TYPE_CHECKING:
    from server.review import ReviewConfig, ReviewLibrary

__all__ = ["create_app", "create_review_app", "open_resources", "write_server_info", "STATIC_DIR", "SERVER_INFO_FILE"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
SERVER_INFO_FILE = "server.json"


def open_resources(config: ServeConfig):
    """The stimulus set, map store (or ``None``) and CURVE keys (or ``None``) of ``config``, checked.

    Raises
    ------
    FileNotFoundError, ValueError
        An empty stimulus folder, an unreadable store, or one lacking some stimuli's maps.
    """
    from stimuli.sets import StimulusSet

    stimuli = StimulusSet(config.stimuli)
    if not stimuli.image_ids:
        raise FileNotFoundError(f"the stimulus folder {config.stimuli} holds no images (.jpg, .png, …)")
    store = None
    if config.maps is not None:
        from analysis.cnn.store import MapStore

        store = MapStore.open(config.maps)
        missing = sorted(set(stimuli.image_ids) - set(store.image_ids))
        if missing:
            raise ValueError(
                f"map store {config.maps} lacks the maps of {len(missing)} stimuli "
                f"(e.g. {missing[:3]}); run `lookwhere precompute --stimuli {config.stimuli} --out {config.maps}`"
            )
    from analysis._engine_backend import backend

    backend(config.device)  # "cuda" without a GPU: say so before anything starts
    curve = None
    if config.curve_secret is not None:
        from lookwhere.transport import CurveKeys

        curve = CurveKeys.load(config.curve_secret)
    return stimuli, store, curve


@asynccontextmanager
async def lifespan(app: FastAPI):
    from server.hub import LiveHub
    from server.review import ReviewLibrary

    config: ServeConfig = app.state.config
    stimuli, store, curve = open_resources(config)
    app.state.review = ReviewLibrary([config.sessions or config.data_dir])
    config.write(config.data_dir)
    hub = LiveHub(
        stimuli,
        config.data_dir,
        maps=store,
        host=config.bind,
        zmq_port=config.zmq_port,
        curve=curve,
        allowed_keys_dir=config.curve_allowed,
        state_options=dict(scoring=config.scoring, device=config.device, quality=config.quality),
    )
    app.state.hub = hub.start()
    ready = write_server_info(config, hub.endpoint)
    announce = getattr(app.state, "announce", None)
    if announce is not None:
        announce(
            [
                f"dashboard: {ready['url']}",
                f"review:    {_page_url(ready['url'], 'review')}",
                f"stream:    {hub.endpoint}  (lookwhere run --server {hub.endpoint})",
                f"data:      {config.data_dir}",
                "stop with Ctrl-C",
            ]
        )
    try:
        yield
    finally:
        hub.stop()
        (config.data_dir / SERVER_INFO_FILE).unlink(missing_ok=True)


def _page_url(url: str, page: str) -> str:
    """``url`` (the dashboard's, with its token if any) pointing at ``page`` instead."""
    base, _, query = url.partition("?")
    return base + page + (f"?{query}" if query else "")


def write_server_info(config: ServeConfig, zmq_endpoint: str) -> dict:
    """Write ``<data_dir>/server.json`` (dashboard URL, stream endpoint, process id) so that
    tools and the demo find a running server; removed at shutdown."""
    host = f"[{config.bind}]" if ":" in config.bind else config.bind
    url = f"http://{host}:{config.http_port}/" + (f"?token={config.token}" if config.token else "")
    info = {"url": url, "zmq_endpoint": zmq_endpoint, "pid": os.getpid()}
    path = config.data_dir / SERVER_INFO_FILE
    path.unlink(missing_ok=True)
    # created private: it holds the token
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(json.dumps(info, indent=2) + "\n")
    return info


def create_app(config: ServeConfig) -> FastAPI:
    """The dashboard and its API for ``config`` (the hub starts with the app's lifespan)."""
    app = FastAPI(title="lookwhere live analysis", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.config = config
    protected = [Depends(require_access)]
    app.include_router(dashboard.router, dependencies=protected)
    app.include_router(health.router, dependencies=protected)
    app.include_router(session.router, dependencies=protected)
    app.include_router(images.router, dependencies=protected)
    app.include_router(review.router, dependencies=protected)
    app.include_router(notes.router, dependencies=protected)
    app.include_router(replay.router, dependencies=protected)
    app.include_router(live.router)  # checks origin and token itself (no HTTP dependency on a socket)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def create_review_app(config: ReviewConfig, library: ReviewLibrary) -> FastAPI:
    """The review page and its API alone (``lookwhere review``), over ``library``'s sessions."""
    app = FastAPI(title="lookwhere review", docs_url=None, redoc_url=None)
    app.state.config, app.state.review = config, library
    app.include_router(review.router, dependencies=[Depends(require_access)])

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/review")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
