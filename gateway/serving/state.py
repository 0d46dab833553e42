"""What the running server holds: config, router, caches, request log, metrics.

Built at startup (the app's lifespan) and closed at shutdown. Handlers reach it
with `server_state(request)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from gateway.config import Config
from gateway.router import Router
from gateway.serving.auth import KeyCache
from gateway.serving.metrics import Metrics
from gateway.serving.request_log import RequestLog
from gateway.serving.resolver import ResolveCache
from gateway.serving.supervisor import JobSupervisor
from gateway.store import Store
from gateway.util import is_loopback

# Request-path reads give up on a locked store sooner than the CLI does.
READ_LOCK_TIMEOUT = 5.0


@dataclass
class ServerState:
    config: Config
    store: Store
    router: Router
    keys: KeyCache
    resolver: ResolveCache
    log: RequestLog
    jobs: JobSupervisor
    metrics: Metrics = field(default_factory=Metrics)
    # Readiness: the configured base models load at startup ([server] preload).
    ready: bool = False
    preloading: list[str] = field(default_factory=list)
    preload_errors: dict[str, str] = field(default_factory=dict)
    # Adapter names a path load has reserved and not finished (two loads of one name race).
    loading_adapters: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, config: Config) -> ServerState:
        # Separate Store objects: each serialises its own connections, so a
        # log write waiting on a locked file never queues up the reads.
        reads = Store(config.db_path, lock_timeout=READ_LOCK_TIMEOUT)
        router = Router(config, reads, serving=True)
        return cls(
            config=config,
            store=reads,
            router=router,
            keys=KeyCache(Store(config.db_path, lock_timeout=READ_LOCK_TIMEOUT),
                          required=not is_loopback(config.server.host),
                          trusted_proxies=frozenset(config.server.trusted_proxies)),
            resolver=ResolveCache(router),
            log=RequestLog(Store(config.db_path), config.server.log_flush_interval,
                           retention_days=config.server.request_log_days),
            jobs=JobSupervisor(config, reads),
        )

    def start(self) -> None:
        self.keys.reload()
        self.log.start()
        self.jobs.start()

    async def preload(self) -> None:
        """Start the backend of every base model named under [backends], then be ready."""
        import sys

        names = list(self.config.backends) if self.config.server.preload else []
        self.preloading = list(names)
        for name in names:
            try:
                target = self.router.resolve(name)
                await self.router.backend_for(target)
            except Exception as exc:  # the server still serves the others; /ready says which failed
                self.preload_errors[name] = type(exc).__name__
                print(f"gateway serve: could not load {name}: {exc}", file=sys.stderr, flush=True)
            self.preloading.remove(name)
        self.ready = True

    async def close(self) -> None:
        self.jobs.close()
        await self.resolver.close()
        try:
            await self.router.close()
        finally:
            self.log.close()


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.gateway
    return state
