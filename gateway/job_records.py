"""Reading jobs back: the Job record, its events and checkpoints, and whether its process lives.

Split from gateway.jobs, which runs jobs; everything here only reads the store.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.errors import NotFoundError
from gateway.store import Store

ACTIVE = ("validating_files", "queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Job:
    id: str
    trainer: str
    base: str
    status: str
    training_file: str
    validation_file: str | None = None
    suffix: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    output_dir: str | None = None
    error: str | None = None
    model_version_id: str | None = None
    remote_id: str | None = None
    pid: int | None = None
    trained_tokens: int | None = None
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    dataset_sha256: str | None = None
    evalsets: list[str] = field(default_factory=list)
    claim: str | None = None
    provider: str | None = None
    # The provider's id for a hosted job, stored as soon as the provider answers.
    remote_job_id: str | None = None
    # What an OpenAI-API client asked for (file ids, seed, metadata, hyperparameters).
    api: dict[str, Any] = field(default_factory=dict)

    @property
    def orphaned(self) -> bool:
        """An active job whose recorded process no longer exists (killed, crashed)."""
        return self.status in ACTIVE and self.pid is not None and not pid_alive(self.pid)

    @property
    def state(self) -> str:
        """The status as shown to people: an orphaned job says so."""
        if self.orphaned:
            return f"{self.status} (process {self.pid} is gone; `gateway jobs resume {self.id}`)"
        return self.status

    @property
    def folder(self) -> Path:
        return Path(self.output_dir or ".")

    @property
    def cancel_file(self) -> Path:
        return self.folder / "cancel"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _job_from_row(row: dict[str, Any]) -> Job:
    data = dict(row)
    data["hyperparameters"] = json.loads(data["hyperparameters"] or "{}")
    data["evalsets"] = json.loads(data["evalsets"] or "[]")
    data["api"] = json.loads(data.get("api") or "{}")
    return Job(**data)


def get_job(store: Store, job_id: str) -> Job:
    row = store.query_one("SELECT * FROM jobs WHERE id = ?", [job_id])
    if row is None:
        raise NotFoundError(f"unknown job {job_id!r} (see `gateway jobs list`)")
    return _job_from_row(row)


def list_jobs(store: Store, limit: int | None = None, after: str | None = None) -> list[Job]:
    """Jobs newest first; `after` (a job id) starts the page after that job."""
    sql, params = "SELECT * FROM jobs", []
    if after is not None:
        sql += " WHERE (created, id) < (SELECT (created, id) FROM jobs WHERE id = ?)"
        params.append(after)
    sql += " ORDER BY created DESC, id DESC"
    rows = store.query(sql + (f" LIMIT {int(limit)}" if limit else ""), params)
    return [_job_from_row(r) for r in rows]


def job_events(store: Store, job_id: str) -> list[dict[str, Any]]:
    get_job(store, job_id)
    rows = store.query(
        "SELECT seq, created, type, message, step, data FROM job_events WHERE job_id = ? ORDER BY seq",
        [job_id],
    )
    for row in rows:
        row["data"] = json.loads(row["data"] or "{}")
    return rows


def job_checkpoints(store: Store, job_id: str) -> list[dict[str, Any]]:
    return store.query(
        "SELECT step, path, metrics, created FROM checkpoints WHERE job_id = ? ORDER BY step",
        [job_id],
    )


def latest_checkpoint(store: Store, job_id: str) -> Path | None:
    """The newest checkpoint of a job that is still on disk."""
    for row in reversed(job_checkpoints(store, job_id)):
        if Path(row["path"]).exists():
            return Path(row["path"])
    return None
