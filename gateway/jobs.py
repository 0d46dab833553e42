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
import re
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.contracts import TrainingEvent, TrainingResult, TrainingSpec
from gateway.errors import GatewayError, NotFoundError
from gateway.job_log import EventLog, update_job
from gateway.job_records import ACTIVE, TERMINAL, Job, get_job, latest_checkpoint
from gateway.store import Store
from gateway.util import new_id, sha256_file, utcnow

# How many data errors a failed job's message lists before "and N more".
MAX_LISTED_ERRORS = 20

Progress = Callable[[TrainingEvent], None]


def _default_name(base: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", base.rsplit("/", 1)[-1]).strip("-._")
    return (name or "model")[:64]


def provider_settings(config: Config, provider: str | None, trainer: str) -> dict[str, Any]:
    """The `[providers.NAME]` table a hosted job uses; a clear error when it is missing."""
    known = ", ".join(sorted(config.providers)) or "none configured"
    if not provider:
        raise GatewayError(f"trainer {trainer!r} needs --provider NAME ([providers.NAME] in "
                           f"config.toml; known: {known})")
    if provider not in config.providers:
        raise GatewayError(f"unknown provider {provider!r} (known: {known})")
    return dict(config.providers[provider])


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
    provider: str | None = None,
    api: dict[str, Any] | None = None,
) -> Job:
    """Store a new job in `validating_files`, with its data copied into its folder.

    `provider` names a `[providers.NAME]` entry (hosted trainers need one);
    `api` keeps what an OpenAI-API client sent (see gateway.fine_tuning).
    """
    from gateway.plugins import get_trainer, trainer_needs_provider
    from gateway.registry import validate_name

    trainer_cls = get_trainer(trainer)
    if trainer_needs_provider(trainer):
        provider_settings(config, provider, trainer)
    elif provider is not None:
        raise GatewayError(f"trainer {trainer!r} runs here and takes no --provider")
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
        provider=provider, api=dict(api or {}),
    )
    with store.transaction() as con:
        con.execute(
            """INSERT INTO jobs (id, trainer, base, status, training_file, validation_file, suffix,
               hyperparameters, output_dir, created, dataset_sha256, evalsets, provider, api)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                job.id, job.trainer, job.base, job.status, job.training_file, job.validation_file,
                job.suffix, json.dumps(params), job.output_dir, job.created, job.dataset_sha256,
                json.dumps(job.evalsets), job.provider, json.dumps(job.api, default=str),
            ],
        )
        con.execute(
            "INSERT INTO job_events (job_id, seq, created, type, message, step, data) "
            "VALUES (?, 0, ?, 'status', ?, NULL, '{}')",
            [job.id, job.created, f"created job {job.id}; validating files"],
        )
    return job


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
    return update_job(store, job.id, only_if=ACTIVE, status=status, finished=utcnow(), **fields)


def run_job(config: Config, store: Store, job_id: str, progress: Progress | None = None) -> Job:
    """Validate, train and register a version for one job, in this process.

    The job ends succeeded, failed (with the reason) or cancelled; checkpoints
    stay on disk either way. Returns the job as stored at the end.
    """
    from gateway.job_claims import claim_job

    job = get_job(store, job_id)
    if job.status not in ("validating_files", "queued"):
        raise GatewayError(f"job {job.id} is {job.state}; only a new or resumed job can run")
    claim_job(store, job.id)
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
            update_job(store, job.id, only_if=ACTIVE, status="queued")
            log.add(TrainingEvent(type="status", message="files validated; queued"))
            log.flush()
        if _take_slot(config, store, job, log, control, progress):
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


def _take_slot(
    config: Config, store: Store, job: Job, log: EventLog, control: _Control,
    progress: Progress | None,
) -> bool:
    """Wait in `queued` for a compute slot (gateway.job_claims); False if cancelled."""
    from gateway.job_claims import take_slot
    from gateway.plugins import trainer_uses_local_compute as uses_slot

    def waiting(busy: int) -> None:
        event = TrainingEvent(type="message", message=f"waiting for a free slot ({busy} of "
                              f"{config.max_running_jobs} running; [jobs] max_running)")
        log.add(event)
        log.flush()
        if progress is not None:
            progress(event)

    if not uses_slot(job.trainer):
        update_job(store, job.id, only_if=ACTIVE, status="running", started=job.started or utcnow())
        return True
    if take_slot(store, job.id, config.max_running_jobs, uses_slot, control.cancelled, waiting):
        return True
    _finish(store, log, job, "cancelled", "cancelled while queued")
    return False


def job_spec(config: Config, store: Store, job: Job) -> TrainingSpec:
    """The TrainingSpec a trainer gets for `job`, as it stands in the store."""
    from gateway.contracts import BaseModel
    from gateway.registry import get_base_model

    try:
        base: BaseModel | None = get_base_model(store, job.base)
    except NotFoundError:
        base = None  # a hub id or a remote model the trainer knows how to reach
    return TrainingSpec(
        job_id=job.id, base=job.base, base_path=base.path if base else None,
        training_file=job.folder / "training.jsonl",
        validation_file=job.folder / "validation.jsonl" if job.validation_file else None,
        suffix=job.suffix, hyperparameters=dict(job.hyperparameters), output_dir=job.folder,
        resume_from=latest_checkpoint(store, job.id), provider=job.provider,
        provider_settings=dict(config.providers.get(job.provider or "", {})),
        remote_job_id=job.remote_job_id,
    )


def _train(
    config: Config, store: Store, job: Job, log: EventLog, control: _Control,
    progress: Progress | None,
) -> None:
    from gateway.plugins import get_trainer

    if control.cancelled():
        _finish(store, log, job, "cancelled", "cancelled before training started")
        return
    trainer = get_trainer(job.trainer)()
    registered = store.query_one("SELECT id FROM model_versions WHERE job_id = ?", [job.id])
    if registered is not None:
        # A crash came between registering and finishing: the version stands as it is.
        _succeed(config, store, job, registered["id"], log)
        return
    spec = job_spec(config, store, job)
    resume_from = spec.resume_from
    if job.remote_job_id:
        message = f"running; re-attaching to {job.provider} job {job.remote_job_id}"
    else:
        message = f"running; resuming from {resume_from}" if resume_from else "running"
    log.add(TrainingEvent(type="status", message=message))
    log.flush()
    result: TrainingResult | None = None
    for item in trainer.train(spec, control):
        if isinstance(item, TrainingResult):
            result = item
            break
        log.add(item)
        remote_job_id = item.data.get("remote_job_id")
        if remote_job_id and remote_job_id != job.remote_job_id:
            # Stored before anything else can fail: a restart re-attaches to it.
            log.flush()
            update_job(store, job.id, remote_job_id=str(remote_job_id))
            job.remote_job_id = str(remote_job_id)
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
    from gateway.registry import create_version

    artifact: str | None = None
    if result.artifact_path is not None:
        # Copied beside its final place, then renamed: no version ever points at
        # a half-copied folder, and a registered version's folder is never touched.
        dest = config.adapters_dir / job.id
        staging = config.adapters_dir / f".{job.id}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(result.artifact_path, staging)
        if dest.exists():
            shutil.rmtree(dest)  # left by a crash before registration: no version uses it
        staging.rename(dest)
        artifact = str(dest)
    version = create_version(
        store, base=job.base, name=job.suffix or _default_name(job.base), kind=result.kind,
        provider=result.provider, artifact_uri=artifact, remote_id=result.remote_id,
        trainer=job.trainer, trainer_version=trainer.version, job_id=job.id,
        dataset_sha256=job.dataset_sha256,
        hyperparameters=result.hyperparameters if result.hyperparameters is not None
        else job.hyperparameters,
        metrics=result.metrics,
    )
    _succeed(config, store, job, version.id, log)


def _succeed(config: Config, store: Store, job: Job, version_id: str, log: EventLog) -> None:
    from gateway.evaluation.autoeval import run_version_evals
    from gateway.plugins import announce_version
    from gateway.registry import get_version

    version = get_version(store, version_id)
    tokens = version.metrics.get("trained_tokens")
    _finish(
        store, log, job, "succeeded", f"succeeded: {version.id} ({version.ref})",
        model_version_id=version.id, remote_id=version.remote_id,
        trained_tokens=int(tokens) if tokens is not None else None,
    )
    # Only now, with the job marked succeeded, do plugins and the auto-evals hear of it.
    announce_version(version, {"evalsets": list(job.evalsets), "job_id": job.id})
    run_version_evals(config, store, version, job.evalsets)


def cancel_job(store: Store, job_id: str, config: Config | None = None) -> Job:
    """Ask a job to stop. A running trainer sees it at its next step; a job at a
    provider is cancelled there too (with `config`, which names the provider)."""
    from gateway.plugins import cancel_where_it_runs, get_trainer

    job = get_job(store, job_id)
    if job.status in TERMINAL:
        raise GatewayError(f"job {job.id} already {job.status}; nothing to cancel")
    job.cancel_file.parent.mkdir(parents=True, exist_ok=True)
    job.cancel_file.touch()
    update_job(store, job.id, only_if=ACTIVE, status="cancelled", finished=utcnow())
    log = EventLog(store, job.id)
    log.add(TrainingEvent(type="status", message="cancel requested"))
    if job.remote_job_id and config is not None:
        try:
            cancel_where_it_runs(get_trainer(job.trainer)(), job_spec(config, store, job))
        except Exception as exc:
            log.add(TrainingEvent(type="message", message=f"cancel at {job.provider} failed: {exc}"))
            log.flush()
            raise GatewayError(f"job {job.id} is cancelled here, but cancelling {job.provider} "
                               f"job {job.remote_job_id} failed: {exc}") from exc
        log.add(TrainingEvent(type="status", message=f"cancelled {job.provider} job {job.remote_job_id}"))
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
    update_job(store, job.id, status="validating_files", error=None, finished=None, pid=None,
            claim=None)
    log = EventLog(store, job.id)
    log.add(TrainingEvent(
        type="status",
        message=f"resume requested from {checkpoint}" if checkpoint else "resume requested (no checkpoint; starting over)",
    ))
    log.flush()
    return get_job(store, job.id)
