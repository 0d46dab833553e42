"""The request log, written off the request path.

Handlers only append to an in-memory queue. A background thread writes what
has queued up every `interval` seconds in one transaction. When the store is
locked by another process the write waits (or fails and is retried at the
next tick) while requests keep being answered; rows are kept until written.
`close()` writes what is left.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from dataclasses import astuple, dataclass, field
from datetime import datetime

from gateway.errors import GatewayError
from gateway.store import Store
from gateway.util import new_id, utcnow

# Beyond this many unwritten rows the oldest are dropped (and counted), so a
# store that stays unavailable cannot exhaust the server's memory.
MAX_QUEUED = 100_000

INSERT = (
    "INSERT INTO request_log (id, created, key_id, route, model, model_version_id, backend, "
    "adapter, stream, status, error, prompt_tokens, completion_tokens, latency_ms, ttft_ms, cost) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


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


class RequestLog:
    def __init__(self, store: Store, interval: float) -> None:
        self.store = store
        self.interval = max(interval, 0.01)
        self.dropped = 0
        self._queue: deque[LogRow] = deque()
        self._lock = threading.Lock()
        # One writer at a time: the thread's tick and close() never overlap.
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False
        # Rows taken from the queue by a write that has not finished yet.
        self._writing = 0

    def add(self, row: LogRow) -> None:
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                self._queue.popleft()
                self.dropped += 1
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
            self.flush()

    def flush(self) -> int:
        """Write every queued row in one transaction. Returns the number written."""
        with self._write_lock:
            with self._lock:
                rows = list(self._queue)
                self._queue.clear()
                self._writing = len(rows)
            if not rows:
                return 0
            try:
                self.store.executemany(INSERT, [astuple(r) for r in rows])
            except GatewayError as exc:
                with self._lock:
                    # Put them back in front, in order, to retry at the next tick.
                    self._queue.extendleft(reversed(rows))
                    self._writing = 0
                if not self._warned:
                    print(f"gateway serve: request log not written yet, will retry: {exc}", file=sys.stderr)
                    self._warned = True
                return 0
            except Exception as exc:  # a row the store refuses must not stop the thread
                self.dropped += len(rows)
                print(f"gateway serve: dropped {len(rows)} request-log rows: {exc}", file=sys.stderr)
                return 0
            finally:
                with self._lock:
                    self._writing = 0
            self._warned = False
            return len(rows)

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()
