"""``GET /api/health``: stream, tracker and microphone health."""

from __future__ import annotations

from fastapi import APIRouter, Request

from server.sections import HealthSection

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health", response_model=HealthSection)
def get_health(request: Request) -> HealthSection:
    """Message rates, receiver counters (accepted, duplicates, gaps, replays, malformed by reason),
    sender→server latency from heartbeats, apply and scoring times (ms, p50/p99/max), ignored
    records, dropped frames, connected dashboard clients, the map store's label."""
    return request.app.state.hub.health()
