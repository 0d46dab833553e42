"""`gateway jobs`: list, inspect, cancel and resume fine-tuning jobs."""

from __future__ import annotations

import json
from typing import Any

import click

from gateway.cli.context import AppContext, pass_app
from gateway.cli.output import echo_rows, format_option


@click.group()
def jobs() -> None:
    """Fine-tuning jobs and their events."""


@jobs.command("list")
@click.option("--limit", type=int, default=None, help="Show only the newest N jobs.")
@format_option
@pass_app
def list_cmd(app: AppContext, limit: int | None, fmt: str) -> None:
    """List jobs, newest first. A running job whose process died says so."""
    from gateway.job_records import list_jobs

    rows = [
        {
            "id": j.id, "status": j.state, "trainer": j.trainer, "base": j.base, "suffix": j.suffix,
            "model_version_id": j.model_version_id, "created": j.created, "finished": j.finished,
        }
        for j in list_jobs(app.store, limit)
    ]
    echo_rows(rows, ["id", "status", "trainer", "base", "suffix", "model_version_id", "created", "finished"], fmt)


@jobs.command("show")
@click.argument("job_id")
@format_option
@pass_app
def show(app: AppContext, job_id: str, fmt: str) -> None:
    """One job: its settings, status, last metrics and checkpoints."""
    from dataclasses import asdict

    from gateway.job_records import get_job, job_checkpoints, job_events

    job = get_job(app.store, job_id)
    record: dict[str, Any] = asdict(job)
    record["status"] = job.state
    metrics = [e for e in job_events(app.store, job.id) if e["type"] == "metrics"]
    if metrics:
        record["last_metrics"] = {"step": metrics[-1]["step"], **metrics[-1]["data"]}
    checkpoints = job_checkpoints(app.store, job.id)
    record["checkpoints"] = [c["step"] for c in checkpoints]
    if fmt == "json":
        click.echo(json.dumps(record, default=str, indent=2))
        return
    echo_rows([{"field": k, "value": v} for k, v in record.items()], ["field", "value"], fmt)


@jobs.command("events")
@click.argument("job_id")
@format_option
@pass_app
def events(app: AppContext, job_id: str, fmt: str) -> None:
    """A job's events in order: status changes, metrics, checkpoints, messages."""
    from gateway.job_records import job_events

    echo_rows(job_events(app.store, job_id), ["seq", "created", "type", "step", "message", "data"], fmt)


@jobs.command("cancel")
@click.argument("job_id")
@pass_app
def cancel(app: AppContext, job_id: str) -> None:
    """Cancel a job. A running trainer stops at its next step, keeping a checkpoint;
    a job at a provider is cancelled there too."""
    from gateway.audit import cli_actor, record
    from gateway.jobs import cancel_job

    job = cancel_job(app.store, job_id, app.config)
    record(app.store, "job.cancel", job.id, cli_actor())
    click.echo(f"{job.id}: {job.status}")


@jobs.command("resume")
@click.argument("job_id")
@click.option("--detach", is_flag=True, help="Resume in a background process.")
@pass_app
def resume(app: AppContext, job_id: str, detach: bool) -> None:
    """Continue a failed, cancelled or killed job from its last checkpoint."""
    from gateway.cli.train_cmd import run_in_foreground, start_detached
    from gateway.jobs import prepare_resume

    job = prepare_resume(app.store, job_id)
    if detach:
        start_detached(app, job.id)
    else:
        run_in_foreground(app, job.id)


commands = [jobs]
