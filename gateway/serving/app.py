"""The ASGI app: OpenAI-compatible routes over the backends the Router picks.

`create_app(config)` builds it. Its lifespan builds the ServerState (router,
key cache, request log) at startup and closes it at shutdown, writing the
request log's last rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import Route

from gateway.config import Config
from gateway.serving import (
    openapi,
    routes_adapters,
    routes_completions,
    routes_files,
    routes_health,
    routes_jobs,
    routes_models,
)
from gateway.serving.errors import EXCEPTION_HANDLERS
from gateway.serving.guards import RequestGuard
from gateway.serving.state import ServerState

# Seconds between reloads of the API keys (a revoked key stops working after this).
KEY_REFRESH = 2.0

ROUTES = [
    Route("/openapi.json", openapi.openapi, methods=["GET"]),
    Route("/health", routes_health.health, methods=["GET"]),
    Route("/ready", routes_health.ready, methods=["GET"]),
    Route("/status", routes_health.status, methods=["GET"]),
    Route("/metrics", routes_health.metrics, methods=["GET"]),
    Route("/v1/models", routes_models.list_models, methods=["GET"]),
    Route("/v1/chat/completions", routes_completions.chat_completions, methods=["POST"]),
    Route("/v1/completions", routes_completions.completions, methods=["POST"]),
    Route("/v1/load_lora_adapter", routes_adapters.load_lora_adapter, methods=["POST"]),
    Route("/v1/unload_lora_adapter", routes_adapters.unload_lora_adapter, methods=["POST"]),
    Route("/v1/files", routes_files.create_file, methods=["POST"]),
    Route("/v1/files", routes_files.list_all, methods=["GET"]),
    Route("/v1/files/{file_id}", routes_files.retrieve, methods=["GET"]),
    Route("/v1/files/{file_id}", routes_files.delete, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", routes_files.content, methods=["GET"]),
    Route("/v1/fine_tuning/jobs", routes_jobs.create, methods=["POST"]),
    Route("/v1/fine_tuning/jobs", routes_jobs.list_all, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}", routes_jobs.retrieve, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}/cancel", routes_jobs.cancel, methods=["POST"]),
    Route("/v1/fine_tuning/jobs/{job_id}/events", routes_jobs.events, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}/checkpoints", routes_jobs.checkpoints, methods=["GET"]),
]


async def _refresh_keys(state: ServerState) -> None:
    while True:
        await asyncio.sleep(KEY_REFRESH)
        await run_in_threadpool(state.keys.try_reload)


def create_app(config: Config) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = ServerState.build(config)
        await run_in_threadpool(state.start)
        app.state.gateway = state
        refresher = asyncio.create_task(_refresh_keys(state))
        preload = asyncio.create_task(state.preload())
        try:
            yield
        finally:
            refresher.cancel()
            preload.cancel()
            await state.close()

    guard = Middleware(
        RequestGuard, bind_host=config.server.host, allowed_hosts=config.server.allowed_hosts,
        allowed_origins=config.server.allowed_origins, max_body=config.server.max_body_bytes,
        max_upload=config.server.max_upload_bytes, read_timeout=config.server.read_timeout,
    )
    return Starlette(routes=ROUTES, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan,
                     middleware=[guard])
