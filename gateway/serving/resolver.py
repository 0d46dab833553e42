"""Model resolution for the request path, cached so the store is rarely touched.

A name resolved less than `ttl` seconds ago is answered from memory. An older
entry is still answered from memory while a background refresh checks the
registry (an alias may have moved), so a locked store never holds up a model
the server has already seen. Only a name never seen before waits on the store.

Both caches are bounded (MAX_ENTRIES, oldest dropped first), and an unknown
name is remembered as unknown for `ttl` seconds (negative caching), so a
stream of made-up names costs the store one lookup per name and period.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.concurrency import run_in_threadpool

from gateway.contracts import ModelTarget
from gateway.errors import NotFoundError
from gateway.router import Router

DEFAULT_TTL = 2.0
MAX_ENTRIES = 4096


def _bounded_put(cache: dict[str, Any], key: str, value: Any) -> None:
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > MAX_ENTRIES:
        cache.pop(next(iter(cache)))


class ResolveCache:
    def __init__(self, router: Router, ttl: float = DEFAULT_TTL) -> None:
        self.router = router
        self.ttl = ttl
        self._entries: dict[str, tuple[float, ModelTarget]] = {}
        # Names found unknown, with when and the registry's message.
        self._unknown: dict[str, tuple[float, str]] = {}
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def resolve(self, model: str) -> ModelTarget:
        """The target for `model`; raises NotFoundError for an unknown name."""
        entry = self._entries.get(model)
        if entry is None:
            miss = self._unknown.get(model)
            if miss is not None and time.monotonic() - miss[0] <= self.ttl:
                raise NotFoundError(miss[1])
            try:
                return await self._load(model)
            except NotFoundError as exc:
                _bounded_put(self._unknown, model, (time.monotonic(), str(exc)))
                raise
        loaded_at, target = entry
        if time.monotonic() - loaded_at > self.ttl and model not in self._refreshing:
            self._refreshing.add(model)
            task = asyncio.create_task(self._refresh(model))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return target

    async def _load(self, model: str) -> ModelTarget:
        target = await run_in_threadpool(self.router.resolve, model)
        _bounded_put(self._entries, model, (time.monotonic(), target))
        self._unknown.pop(model, None)
        return target

    async def _refresh(self, model: str) -> None:
        try:
            await self._load(model)
        except NotFoundError:
            self._entries.pop(model, None)
        except Exception:  # the store is busy: keep serving what we know
            pass
        finally:
            self._refreshing.discard(model)

    def forget(self, model: str) -> None:
        """Drop a cached name (an adapter loaded or unloaded at runtime)."""
        self._entries.pop(model, None)
        self._unknown.pop(model, None)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
