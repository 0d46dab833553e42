"""Writing a job's progress: its events and checkpoints (batched), and its columns.

Events and checkpoints are buffered and written in batches: a DuckDB
connection costs ~20 ms, too much per training step. A checkpoint is written at
once, so it is on record before the process can die.
"""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.contracts import TrainingEvent
from gateway.store import Store
from gateway.util import utcnow

# Seconds between batched event writes while a job runs.
FLUSH_INTERVAL = 2.0


class EventLog:
    """Buffers a job's events and checkpoints; writes them in one transaction per flush."""

    def __init__(self, store: Store, job_id: str) -> None:
        self.store = store
        self.job_id = job_id
        self.events: list[list[Any]] = []
        self.checkpoints: list[list[Any]] = []
        self.last_flush = time.monotonic()

    def add(self, event: TrainingEvent) -> None:
        fields = dict(event.data)
        if event.total_steps is not None:
            fields.setdefault("total_steps", event.total_steps)
        data = json.dumps(fields, default=str)
        # seq is assigned at flush: another process (a cancel) may add events meanwhile.
        self.events.append([self.job_id, utcnow(), event.type, event.message, event.step, data])
        if event.type == "checkpoint" and event.data.get("path"):
            metrics = json.dumps(event.data.get("metrics", {}), default=str)
            self.checkpoints.append(
                [self.job_id, event.step or 0, str(event.data["path"]), metrics, utcnow()]
            )
            # A checkpoint must be on record before the process can die.
            self.flush()
        elif time.monotonic() - self.last_flush >= FLUSH_INTERVAL:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.events and not self.checkpoints:
            return
        with self.store.transaction() as con:
            if self.events:
                row = con.execute(
                    "SELECT coalesce(max(seq), -1) + 1 FROM job_events WHERE job_id = ?", [self.job_id]
                ).fetchone()
                first = int(row[0]) if row else 0
                con.executemany(
                    "INSERT INTO job_events (job_id, seq, created, type, message, step, data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [[e[0], first + i, *e[1:]] for i, e in enumerate(self.events)],
                )
            if self.checkpoints:
                con.executemany(
                    "INSERT OR REPLACE INTO checkpoints (job_id, step, path, metrics, created) "
                    "VALUES (?, ?, ?, ?, ?)", self.checkpoints
                )
        self.events, self.checkpoints = [], []


def update_job(store: Store, job_id: str, only_if: tuple[str, ...] | None = None, **fields: Any) -> bool:
    """Set columns of a job; with `only_if`, only while its status is one of those."""
    assignments = ", ".join(f"{name} = ?" for name in fields)
    sql = f"UPDATE jobs SET {assignments} WHERE id = ?"
    params: list[Any] = [*fields.values(), job_id]
    if only_if:
        sql += f" AND status IN ({', '.join('?' for _ in only_if)})"
        params += list(only_if)
    with store.transaction() as con:
        return bool(con.execute(sql + " RETURNING id", params).fetchall())


def record_pid(store: Store, job_id: str, pid: int) -> None:
    """Note the process that runs a job, so a dead one can be told apart."""
    update_job(store, job_id, pid=pid)
