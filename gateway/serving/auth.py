"""Bearer-key checks for the /v1 routes, from an in-memory copy of the active keys.

The copy is refreshed in the background, so a locked store never holds up a
request that carries a known key. A key the copy does not know makes the
request wait for a reload that started after it arrived (concurrent ones share
it), so a key created a moment ago works at once; a revoked key stops working
within one refresh interval.

Auth never turns itself off. Keys are required once any key has been seen
(at startup or later) and always on a bind beyond loopback; with every key
revoked, or the store replaced by an empty one, requests get 401. Only a
loopback server that has never had a key serves without one. When the store
cannot be read, the last copy of the keys is used for at most MAX_STALE
seconds; after that every keyed request gets 503 until a read succeeds, so a
revoked key cannot keep working while the store is unreadable.
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

# Seconds the last read of the keys may be used while the store cannot be read.
MAX_STALE = 30.0
# An unknown key reloads the keys at most this often (a flood of made-up keys
# costs the store four reads per second, not one per request).
MIN_RELOAD_INTERVAL = 0.25
# Failed key checks per client address and minute before it gets 429.
MAX_FAILURES = 20
FAILURE_WINDOW = 60.0
MAX_TRACKED_CLIENTS = 10_000


def client_address(request: Request, trusted_proxies: frozenset[str]) -> str:
    """The client's address; X-Forwarded-For counts only from a configured trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and peer in trusted_proxies:
        return forwarded.split(",")[-1].strip() or peer
    return peer


class KeyCache:
    def __init__(self, store: Store, required: bool = False, max_stale: float = MAX_STALE,
                 trusted_proxies: frozenset[str] = frozenset()) -> None:
        self.store = store
        self.trusted_proxies = trusted_proxies
        self._failures: dict[str, list[float]] = {}
        self._last_forced = 0.0
        self._keys: dict[str, ApiKey] = {}
        # Sticky: set by a non-loopback bind, or by the first key ever seen.
        self.required = required
        self.max_stale = max_stale
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
            self.required = self.required or bool(self._keys)

    def try_reload(self) -> bool:
        try:
            self.reload()
        except Exception:  # the store may be locked; the old copy stays in use
            return False
        return True

    @property
    def enabled(self) -> bool:
        """Whether requests must carry a key (never False again once True)."""
        return self.required or bool(self._keys)

    def lookup(self, secret: str) -> ApiKey | None:
        return self._keys.get(hash_key(secret))

    async def check(self, request: Request, scope: str) -> ApiKey | None:
        """The key that authorises `request` for `scope`; None when keys are off."""
        arrived = time.monotonic()
        if not self.enabled:
            return None
        client = client_address(request, self.trusted_proxies)
        recent = [t for t in self._failures.get(client, []) if arrived - t < FAILURE_WINDOW]
        over = len(recent) >= MAX_FAILURES
        try:
            # Past the limit a wrong key no longer makes the store reload; a valid one still works.
            return await self._check(request, scope, arrived, reload=not over)
        except ApiError as exc:
            if exc.status != 401:
                raise
            self._note_failure(client, arrived)
            if over:
                raise ApiError(429, "Too many requests with a missing or wrong API key from this "
                               "address; wait and retry.", code="too_many_failed_keys",
                               retry_after=FAILURE_WINDOW - (arrived - recent[0])) from None
            raise

    def _note_failure(self, client: str, now: float) -> None:
        times = [t for t in self._failures.pop(client, []) if now - t < FAILURE_WINDOW]
        self._failures[client] = [*times, now]
        while len(self._failures) > MAX_TRACKED_CLIENTS:
            self._failures.pop(next(iter(self._failures)))

    async def _check(self, request: Request, scope: str, arrived: float, reload: bool) -> ApiKey:
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
        if key is None and reload:
            async with self._reloading:
                if self._loaded_at < arrived:
                    # Wait out the interval instead of refusing: a new key still works
                    # within MIN_RELOAD_INTERVAL, and a flood shares one read.
                    wait = MIN_RELOAD_INTERVAL - (time.monotonic() - self._last_forced)
                    if wait > 0:
                        await asyncio.sleep(wait)
                if self._loaded_at < arrived:
                    self._last_forced = time.monotonic()
                    await run_in_threadpool(self.try_reload)
            key = self.lookup(secret)
        if time.monotonic() - self._loaded_at > self.max_stale:
            raise ApiError(503, "The server cannot verify API keys now (its store is unreadable); "
                           "retry shortly.", code="keys_unavailable", retry_after=5)
        if not self._keys:
            raise ApiError(401, "This server requires an API key and none is active: every key "
                           "was revoked. Create one with `gateway keys create`.",
                           code="invalid_api_key")
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
