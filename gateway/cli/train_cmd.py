"""`gateway train`: start a fine-tuning job, in the foreground or detached."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from gateway.cli.context import AppContext, pass_app

# Options that map one to one onto trainer hyperparameters.
HYPERPARAMETER_OPTIONS: list[tuple[str, Any, str]] = [
    ("lora_r", int, "LoRA rank (local: 8)."),
    ("lora_alpha", int, "LoRA alpha (local: 16)."),
    ("lora_dropout", float, "LoRA dropout (local: 0.05)."),
    ("target_modules", str, "Comma-separated module names, or all-linear (local default)."),
    ("epochs", int, "Passes over the data (local: 3)."),
    ("max_steps", int, "Stop after this many optimizer steps (overrides --epochs)."),
    ("learning_rate", float, "Peak learning rate (local: 2e-4)."),
    ("batch_size", int, "Rows per micro-batch (local: 8)."),
    ("grad_accum", int, "Micro-batches per optimizer step (local: 1)."),
    ("max_seq_len", int, "Truncate (and pack) to this many tokens (local: 1024)."),
    ("seed", int, "Random seed (local: 42)."),
    ("logging_steps", int, "Log metrics every N steps (local: 10)."),
    ("checkpoint_steps", int, "Checkpoint every N steps (local: 100)."),
]


def _hyperparameter_options(fn: Any) -> Any:
    for name, kind, help_text in reversed(HYPERPARAMETER_OPTIONS):
        fn = click.option(f"--{name.replace('_', '-')}", name, type=kind, default=None, help=help_text)(fn)
    return fn


def _parse_set(values: tuple[str, ...]) -> dict[str, Any]:
    from gateway.errors import GatewayError

    found: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise GatewayError(f"--set takes KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            found[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            found[key.strip()] = raw
    return found


def run_in_foreground(app: AppContext, job_id: str) -> None:
    """Run a job here with a progress bar on stderr; print the new version or fail."""
    from tqdm import tqdm

    from gateway.contracts import TrainingEvent
    from gateway.errors import GatewayError
    from gateway.jobs import run_job

    bar = tqdm(total=0, unit="step", file=sys.stderr, dynamic_ncols=True, desc=job_id)

    def progress(event: TrainingEvent) -> None:
        if event.total_steps and bar.total != event.total_steps:
            bar.total = event.total_steps
        if event.step is not None and event.type == "metrics":
            bar.update(event.step - bar.n)
            bar.set_postfix(loss=f"{event.data.get('loss', float('nan')):.4f}")
        elif event.message:
            bar.write(event.message, file=sys.stderr)

    try:
        job = run_job(app.config, app.store, job_id, progress=progress)
    finally:
        bar.close()
    if job.status == "succeeded":
        from gateway.registry import get_version

        version = get_version(app.store, job.model_version_id or "")
        click.echo(f"job {job.id} succeeded")
        click.echo(version.id)
        click.echo(version.ref)
        return
    if job.status == "cancelled":
        raise GatewayError(f"job {job.id} was cancelled")
    raise GatewayError(f"job {job.id} failed: {job.error}")


def _confirm_cost(app: AppContext, job_id: str, yes: bool) -> None:
    """Print a paid job's estimated cost; ask (or need --yes) before it starts."""
    from gateway.data import validate_chat_file
    from gateway.errors import GatewayError
    from gateway.job_records import get_job
    from gateway.jobs import cancel_job, job_spec
    from gateway.plugins import estimate_cost, get_trainer

    job = get_job(app.store, job_id)
    spec = job_spec(app.config, app.store, job)
    if not validate_chat_file(spec.training_file).ok:
        return  # the job fails at validating_files with the line numbers, before any upload
    estimate = estimate_cost(get_trainer(job.trainer)(), spec)
    if estimate is None:
        return
    assumed = " (auto: assumed)" if estimate.epochs_assumed else ""
    click.echo(f"Estimated cost at {job.provider}: {estimate.tokens} tokens x {estimate.epochs} "
               f"epochs{assumed} x ${estimate.price_per_1m:g}/1M tokens = ${estimate.cost:.4f}",
               err=True)
    if yes:
        return
    if not sys.stdin.isatty():
        cancel_job(app.store, job.id)
        raise GatewayError("this job costs money: pass --yes to start it without a terminal")
    if not click.confirm("Start the job?", err=True):
        cancel_job(app.store, job.id)
        raise GatewayError(f"not started; job {job.id} is cancelled")


def start_detached(app: AppContext, job_id: str) -> None:
    from gateway.jobs_worker import spawn

    spawn(app.config, job_id, app.config_path)
    click.echo(job_id)


@click.command()
@click.option("--trainer", default="local", show_default=True, help="Training method (see `gateway plugins list`).")
@click.option("--base", required=True, help="Base model name (or what the trainer accepts).")
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Chat JSONL training file.")
@click.option("--validation", type=click.Path(dir_okay=False, path_type=Path), help="Chat JSONL validation file.")
@click.option("--suffix", help="Name of the new model (versions are NAME@vN).")
@_hyperparameter_options
@click.option("--packing/--no-packing", default=None, help="Pack short examples into full rows.")
@click.option("--set", "extra", multiple=True, metavar="KEY=VALUE", help="Any other trainer hyperparameter.")
@click.option("--eval", "evalsets", multiple=True, metavar="EVALSET",
              help="Eval set to run on the new version (passed to model_version_created).")
@click.option("--detach", is_flag=True, help="Run in a background process; print the job id at once.")
@click.option("--provider", help="Hosted trainers: the [providers.NAME] entry to train at.")
@click.option("--yes", is_flag=True, help="Start a paid job without asking (needed without a terminal).")
@pass_app
def train(
    app: AppContext, /, trainer: str, base: str, data: Path, validation: Path | None,
    suffix: str | None, packing: bool | None, extra: tuple[str, ...], evalsets: tuple[str, ...],
    detach: bool, provider: str | None, yes: bool, **hyperparameters: Any,
) -> None:
    """Fine-tune BASE on a chat JSONL file and register the result as a new version.

    \b
    Example:
      gateway train --base smollm2-135m --data support.jsonl --suffix support --epochs 2

    \b
    At a provider (see [providers.NAME] in the README):
      gateway train --trainer hosted --provider openai --base gpt-4o-mini-2024-07-18 \\
        --data support.jsonl --suffix support --epochs 2

    The job goes validating_files -> queued -> running -> succeeded; follow it
    with `gateway jobs show ID`. On success this prints the version id and NAME@vN.
    A hosted job with prices configured prints its estimated cost first.
    """
    from gateway.jobs import create_job

    params = {k: v for k, v in hyperparameters.items() if v is not None}
    if packing is not None:
        params["packing"] = packing
    params.update(_parse_set(extra))
    job = create_job(
        app.config, app.store, trainer=trainer, base=base, training_file=data,
        validation_file=validation, suffix=suffix, hyperparameters=params, evalsets=list(evalsets),
        provider=provider,
    )
    from gateway.audit import cli_actor, record

    record(app.store, "job.create", job.id, cli_actor(), base=base, trainer=trainer,
           provider=provider)
    _confirm_cost(app, job.id, yes)
    if detach:
        start_detached(app, job.id)
    else:
        run_in_foreground(app, job.id)


commands = [train]
