"""The request log, written off the request path.

Handlers only append to an in-memory queue. A background thread writes what
has queued up every `interval` seconds in one transaction. When the store is
locked by another process, or a write fails (a full disk, a read-only file),
the rows stay queued and the write is retried with backoff (up to
MAX_BACKOFF seconds) while requests keep being answered. Rows are dropped only
past MAX_QUEUED, and then counted (`dropped`, the dropped-rows metric) and
logged. A row that can never be stored (text that is not valid UTF-8) is set
aside and counted (`rejected`); the rest of its batch is still written.
`close()` writes what is left.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import astuple, dataclass, field
from datetime import datetime
from typing import Any

from gateway.errors import StoreError
from gateway.store import Store
from gateway.util import new_id, utcnow

# Beyond this many unwritten rows the oldest are dropped (and counted), so a
# store that stays unavailable cannot exhaust the server's memory.
MAX_QUEUED = 100_000
# The longest wait between retries of a failing write, in seconds.
MAX_BACKOFF = 30.0

INSERT = (
    "INSERT INTO request_log (id, created, key_id, route, model, model_version_id, backend, "
    "adapter, stream, status, error, prompt_tokens, completion_tokens, latency_ms, ttft_ms, cost, "
    '"user", metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'
)


def _locked(exc: Exception) -> bool:
    return isinstance(exc, StoreError) and "locked by another process" in str(exc)


@dataclass
class LogRow:
    # Field order is the column order of INSERT.
    id: str = field(default_factory=lambda: new_id("req", 10))
    created: datetime = field(default_factory=utcnow)
    key_id: str | None = None
    route: str = ""
    model: str | None = None
    model_version_id: str | None = None
    backend: str | None = None
    adapter: str | None = None
    stream: bool = False
    status: int = 200
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    cost: float | None = None  # in the provider's currency (USD for litellm's prices)
    user: str | None = None  # OpenAI's `user` field, as sent
    metadata: str | None = None  # OpenAI's `metadata` field, as JSON


# Seconds between deletions of request-log rows past the retention.
RETENTION_INTERVAL = 3600.0


class RequestLog:
    def __init__(self, store: Store, interval: float, retention_days: float = 0.0) -> None:
        self.store = store
        self.retention_days = retention_days
        self._next_retention = 0.0
        self.interval = max(interval, 0.01)
        self.dropped = 0
        self._queue: deque[LogRow] = deque()
        self._lock = threading.Lock()
        # One writer at a time: the thread's tick and close() never overlap.
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False
        # Rows that can never be stored (set aside, counted, never retried).
        self.rejected = 0
        # Rows taken from the queue by a write that has not finished yet.
        self._writing = 0
        self._backoff = 0.0
        self._retry_at = 0.0

    def add(self, row: LogRow) -> None:
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                self._queue.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    print(f"gateway serve: request log full ({MAX_QUEUED} unwritten rows); "
                          f"{self.dropped} oldest rows dropped so far", file=sys.stderr)
            self._queue.append(row)

    def pending(self) -> int:
        """Rows not yet in the store: queued, or in a write still waiting on the file."""
        with self._lock:
            return len(self._queue) + self._writing

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gateway-request-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if time.monotonic() >= self._retry_at:
                self.flush()
            if self.retention_days and time.monotonic() >= self._next_retention:
                self.expire()

    def expire(self) -> int:
        """Delete rows older than the retention ([server] request_log_days). Returns how many."""
        from datetime import timedelta

        self._next_retention = time.monotonic() + RETENTION_INTERVAL
        cutoff = utcnow() - timedelta(days=self.retention_days)
        try:
            with self.store.transaction() as con:
                rows = con.execute("DELETE FROM request_log WHERE created < ? RETURNING id",
                                   [cutoff]).fetchall()
        except Exception as exc:  # a busy store: the next hour tries again
            print(f"gateway serve: request-log retention skipped: {type(exc).__name__}", file=sys.stderr)
            return 0
        return len(rows)

    def flush(self) -> int:
        """Write every queued row in one transaction. Returns the number written."""
        with self._write_lock:
            with self._lock:
                rows = list(self._queue)
                self._queue.clear()
                self._writing = len(rows)
            try:
                if not rows:
                    return 0
                values = self._set_aside(rows)
                try:
                    self.store.executemany(INSERT, [v for _, v in values])
                except Exception as exc:  # locked, full, read-only: keep every row, retry later
                    with self._lock:
                        # Put them back in front, in order, to retry after the backoff.
                        self._queue.extendleft(reversed([row for row, _ in values]))
                    if not _locked(exc):  # a lock clears soon: retry it at the next tick
                        self._backoff = min(max(self._backoff * 2, self.interval), MAX_BACKOFF)
                        self._retry_at = time.monotonic() + self._backoff
                    if not self._warned:
                        print(f"gateway serve: request log not written ({type(exc).__name__}: {exc}); "
                              f"{len(values)} rows kept, retrying with backoff", file=sys.stderr)
                        self._warned = True
                    return 0
                if self._warned:
                    print(f"gateway serve: request log written again ({len(values)} rows)", file=sys.stderr)
                self._warned, self._backoff, self._retry_at = False, 0.0, 0.0
                return len(values)
            finally:
                with self._lock:
                    self._writing = 0

    def _set_aside(self, rows: list[LogRow]) -> list[tuple[LogRow, tuple[Any, ...]]]:
        """The rows that can be stored, with their values; the others are counted and logged."""
        kept = []
        for row in rows:
            values = astuple(row)
            try:
                for value in values:
                    if isinstance(value, str):
                        value.encode("utf-8")
            except UnicodeEncodeError as exc:
                self.rejected += 1
                print(f"gateway serve: request-log row {row.id} set aside ({exc.reason}); "
                      f"{self.rejected} so far", file=sys.stderr)
                continue
            kept.append((row, values))
        return kept

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()
