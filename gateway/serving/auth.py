"""Bearer-key checks for the /v1 routes, from an in-memory copy of the active keys.

The copy is refreshed in the background, so a locked store never holds up a
request that carries a known key. A key the copy does not know makes the
request wait for a reload that started after it arrived (concurrent ones share
it), so a key created a moment ago works at once; a revoked key stops working
within one refresh interval.
"""

from __future__ import annotations

import asyncio
import threading
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gateway.keys import ApiKey, active_keys_by_hash, hash_key, scope_allows
from gateway.serving.errors import ApiError
from gateway.store import Store


class KeyCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._keys: dict[str, ApiKey] = {}
        # When the read behind the current copy started.
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self._reloading = asyncio.Lock()

    def reload(self) -> None:
        """Read the active keys; on failure keep the previous copy."""
        with self._lock:
            started = time.monotonic()
            self._keys = active_keys_by_hash(self.store)
            self._loaded_at = started

    def try_reload(self) -> bool:
        try:
            self.reload()
        except Exception:  # the store may be locked; the old copy stays in use
            return False
        return True

    @property
    def enabled(self) -> bool:
        """Whether any active key exists, so that requests must carry one."""
        return bool(self._keys)

    def lookup(self, secret: str) -> ApiKey | None:
        return self._keys.get(hash_key(secret))

    async def check(self, request: Request, scope: str) -> ApiKey | None:
        """The key that authorises `request` for `scope`; None when keys are off."""
        arrived = time.monotonic()
        if not self.enabled:
            return None
        header = request.headers.get("authorization", "")
        kind, _, secret = header.partition(" ")
        secret = secret.strip()
        if kind.lower() != "bearer" or not secret:
            raise ApiError(
                401,
                "Missing API key. Send it as 'Authorization: Bearer <key>' "
                "(create one with `gateway keys create`).",
                code="invalid_api_key",
            )
        key = self.lookup(secret)
        if key is None:
            async with self._reloading:
                if self._loaded_at < arrived:
                    await run_in_threadpool(self.try_reload)
            key = self.lookup(secret)
        if key is None:
            # Never echo the key; its first characters are enough to recognise it.
            raise ApiError(
                401, f"Incorrect API key provided: {secret[:6]}...", code="invalid_api_key"
            )
        if not scope_allows(key.scope, scope):
            raise ApiError(
                403,
                f"This API key has scope '{key.scope}'; this route needs scope '{scope}'.",
                code="insufficient_scope",
            )
        return key
