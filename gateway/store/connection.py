"""Connections to the DuckDB file.

DuckDB lets one process hold a file at a time, so every connection here is
short: open, do the work, close. When another process holds the lock we retry
with backoff for a bounded time, then fail with a message that names the file.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from gateway.errors import StoreError

# How long a caller waits for another process to release the file.
DEFAULT_LOCK_TIMEOUT = 60.0

_migrated: set[Path] = set()
_migrate_lock = threading.Lock()
# One write lock per database file for the whole process: several Store objects
# (the server builds a few) writing the same rows at once would otherwise
# conflict inside DuckDB ("Conflict on tuple deletion", constraint errors).
_write_locks: dict[Path, threading.RLock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(path: Path) -> threading.RLock:
    key = path.expanduser().resolve()
    with _write_locks_guard:
        return _write_locks.setdefault(key, threading.RLock())


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


class Store:
    """Opens short connections to one DuckDB file, retrying while it is locked."""

    def __init__(self, path: Path, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        # Connections from threads of this process are serialised: DuckDB's
        # file lock is per process, and one open connection at a time keeps
        # the file free for other processes between calls.
        self._local_lock = threading.RLock()

    def _open(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.01
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as exc:
                if _is_lock_error(exc):
                    if time.monotonic() >= deadline:
                        raise StoreError(
                            f"{self.path} is locked by another process and stayed locked "
                            f"for {self.lock_timeout:.0f}s: {exc}"
                        ) from exc
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.25)
                    continue
                raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
            except duckdb.Error as exc:
                raise StoreError(
                    f"{self.path} is not a usable DuckDB database ({exc}). "
                    "Move it away or point GATEWAY_HOME elsewhere; the gateway will not replace it."
                ) from exc

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A migrated connection, closed on exit. Commits unless an error escapes."""
        with self._local_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = self._open()
            try:
                self._ensure_migrated(con)
                yield con
            finally:
                con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside BEGIN ... COMMIT; rolled back on error. Writers to one
        file are serialised across the Store objects of this process."""
        with _write_lock(self.path), self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _ensure_migrated(self, con: duckdb.DuckDBPyConnection) -> None:
        key = self.path.resolve()
        if key in _migrated:
            return
        from gateway.store.migrations import migrate

        with _migrate_lock:
            migrate(con, self.path)
            _migrated.add(key)

    # Small helpers for the common one-statement cases.
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with _write_lock(self.path), self.connect() as con:
            con.execute(sql, params or [])

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self.transaction() as con:
            con.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts."""
        with self.connect() as con:
            return rows_as_dicts(con, sql, params)

    def query_one(self, sql: str, params: Sequence[Any] | None = None) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None


def rows_as_dicts(con: Any, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Run `sql` on an open connection and return its rows as dicts."""
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def open_store(path: Path | None = None) -> Store:
    """The store at `path`, or the configured one under GATEWAY_HOME."""
    if path is None:
        from gateway.config import load_config

        path = load_config().db_path
    return Store(path)


def forget_migrations() -> None:
    """Make the next connection check migrations again (tests use this)."""
    _migrated.clear()
