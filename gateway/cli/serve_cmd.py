"""`gateway serve`: the OpenAI-compatible server under uvicorn."""

from __future__ import annotations

import signal
import sys

import click

from gateway.cli.context import AppContext, pass_app
from gateway.errors import GatewayError
from gateway.util import is_loopback


@click.command()
@click.option("--host", default=None, help="Address to bind (default: [server] host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: [server] port, 8000).")
@click.option("--preload/--no-preload", default=None,
              help="Load the [backends] base models at startup; /ready is 503 until then "
              "(default: [server] preload, on).")
@pass_app
def serve(app: AppContext, host: str | None, port: int | None, preload: bool | None) -> None:
    """Serve every registered model through one OpenAI-compatible endpoint.

    \b
    Routes: /v1/models, /v1/chat/completions, /v1/completions,
    /v1/load_lora_adapter, /v1/unload_lora_adapter, /v1/files,
    /v1/fine_tuning/jobs (and its cancel, events, checkpoints), /health, /ready,
    /status, /metrics.

    With no API key configured the server binds only to loopback; create one
    with `gateway keys create` before serving on another address. A server that
    started with keys, or binds beyond loopback, never serves without one: with
    every key revoked it answers 401. It also runs the fine-tuning jobs created
    through the API, in worker processes.
    """
    from gateway.keys import active_keys_by_hash

    config = app.config
    host = host or config.server.host
    port = config.server.port if port is None else port
    if not is_loopback(host) and not active_keys_by_hash(app.store):
        raise GatewayError(
            f"refusing to serve on {host}: no API key exists, so anyone who can reach it could "
            "use it. Create one with `gateway keys create --scope admin`, or bind 127.0.0.1."
        )
    try:
        import uvicorn

        from gateway.serving.app import create_app
    except ImportError as exc:
        raise GatewayError(
            f"serving needs the serve extra ({exc.name} is missing): "
            "pip install 'finetune-gateway[serve]'"
        ) from exc
    config.server.host, config.server.port = host, port  # the app checks keys by the bind
    if preload is not None:
        config.server.preload = preload
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Serving on http://{shown}:{port}/v1 (store: {config.db_path})", err=True)
    # uvicorn shuts down gracefully on SIGTERM and then raises the signal again with the
    # handler that was there before: this one, so a clean shutdown exits 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # uvicorn's access log shows paths and statuses only, never headers (keys).
    uvicorn.run(create_app(config), host=host, port=port, log_level="info", lifespan="on",
                limit_concurrency=config.server.max_connections, timeout_keep_alive=5,
                # SIGTERM: stop accepting, let requests in flight finish (bounded), then the
                # lifespan flushes the request log and the process exits 0.
                timeout_graceful_shutdown=round(config.server.shutdown_timeout),
                h11_max_incomplete_event_size=64 * 1024)


commands = [serve]
