"""Liveness, readiness, status and metrics: GET /health, /ready, /status and /metrics.

- /health: a public liveness answer that says nothing else.
- /ready: 200 once the configured base models have loaded (`[server] preload`),
  503 until then, or naming the models that failed to load.
- /status: the detailed state (backends and their adapters, dtype and queues,
  auth mode, request-log queue, jobs). It needs a key when keys exist.
- /metrics: Prometheus text; it needs a key when keys exist, unless
  `[server] public_metrics = true`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from gateway.serving.errors import ApiError
from gateway.serving.state import ServerState, server_state

HEALTH_TIMEOUT = 5.0


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    state = server_state(request)
    if state.preload_errors:
        return JSONResponse({"status": "failed", "failed": sorted(state.preload_errors)}, status_code=503)
    if not state.ready:
        return JSONResponse({"status": "loading", "loading": state.preloading}, status_code=503,
                            headers={"Retry-After": "2"})
    return JSONResponse({"status": "ready"})


async def _guarded(request: Request, state: ServerState) -> Response | None:
    try:
        await state.keys.check(request, "inference")
    except ApiError as exc:
        return exc.response()
    return None


async def status(request: Request) -> Response:
    state = server_state(request)
    refused = await _guarded(request, state)
    if refused is not None:
        return refused
    backends: dict[str, Any] = {}
    for (name, base), backend in state.router.started_backends().items():
        try:
            backends[f"{name}:{base}"] = await asyncio.wait_for(backend.health(), HEALTH_TIMEOUT)
        except Exception as exc:  # an unhealthy backend is reported, not raised
            backends[f"{name}:{base}"] = {"status": "error", "error": type(exc).__name__}
    degraded = any(b.get("status") == "error" for b in backends.values())
    return JSONResponse({
        "status": "degraded" if degraded else "ok",
        "ready": state.ready,
        "backends": backends,
        "auth": "keys" if state.keys.enabled else "none",
        "request_log_queue": state.log.pending(),
        "request_log_dropped": state.log.dropped,
        "request_log_rejected": state.log.rejected,
    })


async def metrics(request: Request) -> Response:
    state = server_state(request)
    if not state.config.server.public_metrics:
        refused = await _guarded(request, state)
        if refused is not None:
            return refused
    text = state.metrics.render(state.log.pending(), state.log.dropped + state.log.rejected)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
