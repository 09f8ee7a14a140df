"""Per-image resources: scores, the stimulus, heatmaps and model maps as PNG.

Image ids and map names are looked up in the stimulus set and the map store; a path is never
built from what a client sends, so no route can reach a file outside them.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from server.render import map_png
from server.sections import HistoryEntry, ImageList, ImageSummary

router = APIRouter(prefix="/api/images", tags=["images"])

_NO_CACHE = {"Cache-Control": "no-store"}


def _not_found(error: KeyError) -> HTTPException:
    return HTTPException(404, detail=str(error.args[0]) if error.args else "not found")


@router.get("", response_model=ImageList)
def list_images(request: Request) -> ImageList:
    """Every stimulus with its pooled fixation and participant counts (the history browser), plus
    ``applied_seq`` and ``settled`` (:meth:`server.hub.LiveHub.progress`)."""
    hub = request.app.state.hub
    progress = hub.progress()  # first: "settled" then holds for the counts read after it
    counts = {row["image"]: row for row in hub.sections_since({})[0]["history"]["images"]}
    images = [
        HistoryEntry.model_validate(counts.get(image, {"image": image, "n_fixations": 0, "n_participants": 0}))
        for image in hub.stimuli.image_ids
    ]
    return ImageList(images=images, **progress)


@router.get("/{image_id}", response_model=ImageSummary)
async def get_image(request: Request, image_id: str) -> ImageSummary:
    """Heatmap parameters, fixation counts and every map's score under every metric."""
    try:
        return await run_in_threadpool(request.app.state.hub.image_summary, image_id)
    except KeyError as error:
        raise _not_found(error) from None


@router.get("/{image_id}/stimulus")
def get_stimulus(request: Request, image_id: str) -> FileResponse:
    try:
        return FileResponse(request.app.state.hub.stimuli.path(image_id))
    except KeyError as error:
        raise _not_found(error) from None


@router.get("/{image_id}/heatmap.png")
async def get_heatmap(request: Request, image_id: str, participant: str | None = None) -> Response:
    """The pooled heatmap (or ``?participant=`` one's); 204 while it has no fixation."""
    hub = request.app.state.hub
    try:
        values = await run_in_threadpool(hub.heatmap, image_id, participant=participant)
    except KeyError as error:
        raise _not_found(error) from None
    if values is None:
        return Response(status_code=204, headers=_NO_CACHE)
    return Response(await run_in_threadpool(map_png, values), media_type="image/png", headers=_NO_CACHE)


@router.get("/{image_id}/thumbnails/{name}.png")
def get_thumbnail(request: Request, image_id: str, name: str, store: str | None = None) -> Response:
    """A model map's thumbnail, rendered once per store and cached on disk
    (:class:`server.thumbnails.ThumbnailCache`). With ``?store=`` naming the current store (the
    dashboard's links do) it is cached by the browser for good: another store has another key."""
    thumbnails = request.app.state.hub.thumbnails
    if thumbnails is None:
        raise HTTPException(404, detail="the server runs without a map store (start it with --maps STORE)")
    try:
        path = thumbnails.path(image_id, name)
    except KeyError as error:
        raise _not_found(error) from None
    etag = thumbnails.etag(image_id, name)
    cache = "public, max-age=31536000, immutable" if store == thumbnails.key else "no-cache"
    headers = {"ETag": etag, "Cache-Control": cache}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type="image/png", headers=headers)


@router.get("/{image_id}/maps/{name}.png")
async def get_model_map(request: Request, image_id: str, name: str) -> Response:
    """One model map of the store at the image's size, full resolution (the dashboard shows
    :func:`get_thumbnail`; untrained stores are labelled on the page)."""
    hub = request.app.state.hub
    try:
        values = await run_in_threadpool(hub.model_map, image_id, name)
    except KeyError as error:
        raise _not_found(error) from None
    return Response(await run_in_threadpool(map_png, values, alpha_from_value=False), media_type="image/png")
