"""Who runs a job, and when: atomic claims and the limit on jobs running at once.

A job is claimed by one process before it runs: the claim is written in one
transaction that first checks no one else holds it, and DuckDB lets one process
hold the file at a time, so two workers started on one job cannot both win.
A claim is released only by `prepare_resume` (after a failure, a cancel, or a
dead process).

At most `[jobs] max_running` jobs (default 1) that use this machine's compute
train at once, counted across every process on the same home: `gateway train`,
`--detach` workers and the jobs `gateway serve` runs. The others wait in
`queued` and take a slot in the order they were created.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable

from gateway.errors import GatewayError
from gateway.job_records import pid_alive
from gateway.store import Store
from gateway.util import utcnow

# Seconds between looks for a free slot while a job waits in `queued`.
SLOT_POLL = 1.0


class JobClaimed(GatewayError):
    """Another process already runs (or ran) this job."""


def claim_job(store: Store, job_id: str) -> str:
    """Take the job for this process; JobClaimed when another process holds it."""
    token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    with store.transaction() as con:
        row = con.execute("SELECT claim, pid FROM jobs WHERE id = ?", [job_id]).fetchone()
        if row is None:
            raise GatewayError(f"unknown job {job_id!r}")
        if row[0] is not None:
            raise JobClaimed(
                f"job {job_id} is already claimed by process {row[1]}; a job runs in one "
                f"process only (after a crash: `gateway jobs resume {job_id}`)"
            )
        con.execute("UPDATE jobs SET claim = ?, pid = ? WHERE id = ?", [token, os.getpid(), job_id])
    return token


def release_claim(store: Store, job_id: str) -> None:
    store.execute("UPDATE jobs SET claim = NULL WHERE id = ?", [job_id])


def running_local_jobs(rows: list[tuple[str, int | None, str]], uses_slot: Callable[[str], bool]) -> int:
    """How many of (id, pid, trainer) rows of running jobs hold a compute slot now."""
    return sum(1 for _, pid, trainer in rows if pid is not None and pid_alive(pid) and uses_slot(trainer))


def take_slot(
    store: Store, job_id: str, limit: int, uses_slot: Callable[[str], bool],
    cancelled: Callable[[], bool], on_wait: Callable[[int], None] | None = None,
) -> bool:
    """Move the job from queued to running once fewer than `limit` jobs run.

    Waits as long as it takes; False when the job was cancelled meanwhile.
    `on_wait(busy)` is called once, when the job first has to wait.
    """
    waited = False
    while True:
        if cancelled():
            return False
        with store.transaction() as con:
            rows = con.execute(
                "SELECT id, pid, trainer FROM jobs WHERE status = 'running' AND id != ?", [job_id]
            ).fetchall()
            busy = running_local_jobs([(r[0], r[1], r[2]) for r in rows], uses_slot)
            # Jobs that queued before this one go first (a fair queue).
            earlier = con.execute(
                "SELECT id, pid, trainer FROM jobs WHERE status = 'queued' AND claim IS NOT NULL "
                "AND id != ? AND created < (SELECT created FROM jobs WHERE id = ?)",
                [job_id, job_id],
            ).fetchall()
            ahead = running_local_jobs([(r[0], r[1], r[2]) for r in earlier], uses_slot)
            if busy + ahead < limit:
                con.execute(
                    "UPDATE jobs SET status = 'running', started = coalesce(started, ?) "
                    "WHERE id = ? AND status = 'queued'", [utcnow(), job_id],
                )
                return True
        if not waited and on_wait is not None:
            on_wait(busy)
        waited = True
        time.sleep(SLOT_POLL)
