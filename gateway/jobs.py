"""The trainer-agnostic job lifecycle, after OpenAI's fine-tuning jobs.

validating_files -> queued -> running -> succeeded | failed | cancelled

A job copies its data files into its own folder (config.jobs_dir/<id>), so a
resume trains on exactly what was validated. Events and checkpoints are
buffered and written in batches: a DuckDB connection costs ~20 ms, too much
per training step. Cancelling writes a `cancel` file in the job folder that the
running trainer polls through JobControl, and marks the row at once.

A trainer class may offer `resolve_hyperparameters(dict) -> dict`: it rejects
unknown or bad values before the job exists and fills in defaults, so the
stored hyperparameters are the ones the run used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.contracts import TrainingEvent, TrainingResult, TrainingSpec
from gateway.errors import GatewayError, NotFoundError
from gateway.job_records import ACTIVE, TERMINAL, Job, get_job, latest_checkpoint
from gateway.store import Store
from gateway.util import new_id, sha256_file, utcnow

# Seconds between batched event writes while a job runs.
FLUSH_INTERVAL = 2.0
# How many data errors a failed job's message lists before "and N more".
MAX_LISTED_ERRORS = 20

Progress = Callable[[TrainingEvent], None]


def _default_name(base: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", base.rsplit("/", 1)[-1]).strip("-._")
    return (name or "model")[:64]


def create_job(
    config: Config,
    store: Store,
    *,
    trainer: str,
    base: str,
    training_file: Path,
    validation_file: Path | None = None,
    suffix: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
    evalsets: list[str] | None = None,
) -> Job:
    """Store a new job in `validating_files`, with its data copied into its folder."""
    from gateway.plugins import get_trainer
    from gateway.registry import validate_name

    trainer_cls = get_trainer(trainer)
    params = trainer_cls().resolve_hyperparameters(dict(hyperparameters or {}))
    if evalsets:
        from gateway.evaluation.autoeval import check_evaluators

        check_evaluators(evalsets)  # before any training: a missing scorer plugin fails now
    if suffix is not None:
        validate_name(suffix, "suffix")
    for path in (training_file, validation_file):
        if path is not None and not Path(path).is_file():
            raise GatewayError(f"data file not found: {path}")
    job_id = new_id("ftjob")
    folder = config.jobs_dir / job_id
    folder.mkdir(parents=True)
    shutil.copyfile(training_file, folder / "training.jsonl")
    if validation_file is not None:
        shutil.copyfile(validation_file, folder / "validation.jsonl")
    job = Job(
        id=job_id, trainer=trainer, base=base, status="validating_files",
        training_file=str(Path(training_file).resolve()),
        validation_file=str(Path(validation_file).resolve()) if validation_file else None,
        suffix=suffix, hyperparameters=params, output_dir=str(folder), created=utcnow(),
        dataset_sha256=sha256_file(folder / "training.jsonl"), evalsets=list(evalsets or []),
    )
    with store.transaction() as con:
        con.execute(
            """INSERT INTO jobs (id, trainer, base, status, training_file, validation_file, suffix,
               hyperparameters, output_dir, created, dataset_sha256, evalsets)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                job.id, job.trainer, job.base, job.status, job.training_file, job.validation_file,
                job.suffix, json.dumps(params), job.output_dir, job.created, job.dataset_sha256,
                json.dumps(job.evalsets),
            ],
        )
        con.execute(
            "INSERT INTO job_events (job_id, seq, created, type, message, step, data) "
            "VALUES (?, 0, ?, 'status', ?, NULL, '{}')",
            [job.id, job.created, f"created job {job.id}; validating files"],
        )
    return job


class EventLog:
    """Buffers a job's events and checkpoints; writes them in one transaction per flush."""

    def __init__(self, store: Store, job_id: str) -> None:
        self.store = store
        self.job_id = job_id
        self.events: list[list[Any]] = []
        self.checkpoints: list[list[Any]] = []
        self.last_flush = time.monotonic()

    def add(self, event: TrainingEvent) -> None:
        data = json.dumps(event.data, default=str)
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


def _update(store: Store, job_id: str, only_if: tuple[str, ...] | None = None, **fields: Any) -> bool:
    """Set columns of a job; with `only_if`, only while its status is one of those."""
    assignments = ", ".join(f"{name} = ?" for name in fields)
    sql = f"UPDATE jobs SET {assignments} WHERE id = ?"
    params: list[Any] = [*fields.values(), job_id]
    if only_if:
        sql += f" AND status IN ({', '.join('?' for _ in only_if)})"
        params += list(only_if)
    with store.connect() as con:
        return bool(con.execute(sql + " RETURNING id", params).fetchall())


def record_pid(store: Store, job_id: str, pid: int) -> None:
    """Note the process that runs a job, so a dead one can be told apart."""
    _update(store, job_id, pid=pid)


class _Control:
    """JobControl for a trainer: cancelled once the job's cancel file exists."""

    def __init__(self, cancel_file: Path) -> None:
        self.cancel_file = cancel_file

    def cancelled(self) -> bool:
        return self.cancel_file.exists()


def _data_errors(job: Job) -> list[str]:
    from gateway.data import validate_chat_file

    problems: list[str] = []
    files = [(job.folder / "training.jsonl", job.training_file, 10)]
    if job.validation_file:
        files.append((job.folder / "validation.jsonl", job.validation_file, 1))
    for copy, original, minimum in files:
        report = validate_chat_file(copy, min_examples=minimum)
        for line, message in report.errors:
            problems.append(f"{original}: line {line}: {message}" if line else f"{original}: {message}")
    return problems


def _finish(store: Store, log: EventLog, job: Job, status: str, message: str, **fields: Any) -> bool:
    log.add(TrainingEvent(type="status", message=message))
    log.flush()
    # A job cancelled meanwhile stays cancelled.
    return _update(store, job.id, only_if=ACTIVE, status=status, finished=utcnow(), **fields)


def run_job(config: Config, store: Store, job_id: str, progress: Progress | None = None) -> Job:
    """Validate, train and register a version for one job, in this process.

    The job ends succeeded, failed (with the reason) or cancelled; checkpoints
    stay on disk either way. Returns the job as stored at the end.
    """
    job = get_job(store, job_id)
    if job.status not in ("validating_files", "queued"):
        raise GatewayError(f"job {job.id} is {job.state}; only a new or resumed job can run")
    _update(store, job.id, pid=os.getpid())
    log = EventLog(store, job.id)
    control = _Control(job.cancel_file)
    try:
        if job.status == "validating_files":
            errors = _data_errors(job)
            if errors:
                listed = errors[:MAX_LISTED_ERRORS]
                more = len(errors) - len(listed)
                text = "invalid training data:\n  " + "\n  ".join(listed)
                text += f"\n  ... and {more} more" if more else ""
                log.add(TrainingEvent(type="message", message=text, data={"errors": errors}))
                _finish(store, log, job, "failed", "failed at validating_files", error=text)
                return get_job(store, job.id)
            _update(store, job.id, only_if=ACTIVE, status="queued")
            log.add(TrainingEvent(type="status", message="files validated; queued"))
        _train(config, store, job, log, control, progress)
    except KeyboardInterrupt:
        _finish(store, log, job, "failed", "interrupted", error="interrupted; resume it with "
                f"`gateway jobs resume {job.id}`")
        raise
    except Exception as exc:  # a crashing trainer fails the job, never the caller's data
        (job.folder / "error.log").write_text(traceback.format_exc())
        reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, GatewayError) else str(exc)
        _finish(store, log, job, "failed", "failed", error=reason)
    return get_job(store, job.id)


def _train(
    config: Config, store: Store, job: Job, log: EventLog, control: _Control,
    progress: Progress | None,
) -> None:
    from gateway.contracts import BaseModel
    from gateway.plugins import get_trainer
    from gateway.registry import get_base_model

    if control.cancelled():
        _finish(store, log, job, "cancelled", "cancelled before training started")
        return
    trainer = get_trainer(job.trainer)()
    try:
        base: BaseModel | None = get_base_model(store, job.base)
    except NotFoundError:
        base = None  # a hub id or a remote model the trainer knows how to reach
    resume_from = latest_checkpoint(store, job.id)
    _update(store, job.id, only_if=ACTIVE, status="running", started=job.started or utcnow())
    log.add(TrainingEvent(
        type="status",
        message=f"running; resuming from {resume_from}" if resume_from else "running",
    ))
    log.flush()
    spec = TrainingSpec(
        job_id=job.id, base=job.base, base_path=base.path if base else None,
        training_file=job.folder / "training.jsonl",
        validation_file=job.folder / "validation.jsonl" if job.validation_file else None,
        suffix=job.suffix, hyperparameters=dict(job.hyperparameters), output_dir=job.folder,
        resume_from=resume_from,
    )
    result: TrainingResult | None = None
    for item in trainer.train(spec, control):
        if isinstance(item, TrainingResult):
            result = item
            break
        log.add(item)
        if progress is not None:
            progress(item)
    log.flush()
    if control.cancelled():
        _finish(store, log, job, "cancelled", "cancelled")
    elif result is None:
        _finish(store, log, job, "failed", "failed", error="the trainer stopped without a result")
    else:
        _register(config, store, job, trainer, result, log)


def _register(
    config: Config, store: Store, job: Job, trainer: Any, result: TrainingResult, log: EventLog
) -> None:
    from gateway.evaluation.autoeval import run_version_evals
    from gateway.plugins import announce_version
    from gateway.registry import create_version

    artifact: str | None = None
    if result.artifact_path is not None:
        dest = config.adapters_dir / job.id
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(result.artifact_path, dest)
        artifact = str(dest)
    version = create_version(
        store, base=job.base, name=job.suffix or _default_name(job.base), kind=result.kind,
        provider=result.provider, artifact_uri=artifact, remote_id=result.remote_id,
        trainer=job.trainer, trainer_version=trainer.version, job_id=job.id,
        dataset_sha256=job.dataset_sha256, hyperparameters=job.hyperparameters,
        metrics=result.metrics,
    )
    tokens = result.metrics.get("trained_tokens")
    _finish(
        store, log, job, "succeeded", f"succeeded: {version.id} ({version.ref})",
        model_version_id=version.id, remote_id=result.remote_id,
        trained_tokens=int(tokens) if tokens is not None else None,
    )
    # Only now, with the job marked succeeded, do plugins and the auto-evals hear of it.
    announce_version(version, {"evalsets": list(job.evalsets), "job_id": job.id})
    run_version_evals(config, store, version, job.evalsets)


def cancel_job(store: Store, job_id: str) -> Job:
    """Ask a job to stop. A running trainer sees it at its next step."""
    job = get_job(store, job_id)
    if job.status in TERMINAL:
        raise GatewayError(f"job {job.id} already {job.status}; nothing to cancel")
    job.cancel_file.parent.mkdir(parents=True, exist_ok=True)
    job.cancel_file.touch()
    _update(store, job.id, only_if=ACTIVE, status="cancelled", finished=utcnow())
    log = EventLog(store, job.id)
    log.add(TrainingEvent(type="status", message="cancel requested"))
    log.flush()
    return get_job(store, job.id)


def prepare_resume(store: Store, job_id: str) -> Job:
    """Make a failed, cancelled or orphaned job runnable again (from its last checkpoint)."""
    job = get_job(store, job_id)
    if job.status == "succeeded":
        raise GatewayError(f"job {job.id} already succeeded ({job.model_version_id})")
    if job.status in ACTIVE and not job.orphaned:
        raise GatewayError(f"job {job.id} is still {job.status} (process {job.pid})")
    job.cancel_file.unlink(missing_ok=True)
    checkpoint = latest_checkpoint(store, job.id)
    _update(store, job.id, status="validating_files", error=None, finished=None, pid=None)
    log = EventLog(store, job.id)
    log.add(TrainingEvent(
        type="status",
        message=f"resume requested from {checkpoint}" if checkpoint else "resume requested (no checkpoint; starting over)",
    ))
    log.flush()
    return get_job(store, job.id)
