"""`gateway runs`: the stored eval runs."""

from __future__ import annotations

import json

import click

from gateway.cli.context import AppContext, pass_app
from gateway.cli.output import echo_rows, format_option


@click.group()
def runs() -> None:
    """Eval runs: list them, show one's settings and scores."""


@runs.command("list")
@click.option("--evalset", help="Only runs of this eval set.")
@click.option("--model", help="Only runs of this model (as it was requested).")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@format_option
@pass_app
def runs_list(app: AppContext, evalset: str | None, model: str | None, limit: int, fmt: str) -> None:
    """List eval runs, newest first."""
    from gateway.evaluation.runs import list_runs

    rows = list_runs(app.store, evalset=evalset, model=model, limit=limit)
    for row in rows:
        row["samples"] = f"{row['done']}/{row['sample_count']}"
    echo_rows(rows, ["id", "evalset", "name", "status", "samples", "errors", "created"], fmt)


@runs.command("show")
@click.argument("run")
@format_option
@pass_app
def runs_show(app: AppContext, run: str, fmt: str) -> None:
    """Show RUN (an id or a unique prefix): settings, environment and per-scorer means."""
    from gateway.evaluation.runs import recall_line, run_details, scorer_summary

    details = run_details(app.store, run)
    scores = scorer_summary(app.store, details["id"])
    if fmt == "json":
        click.echo(json.dumps({**details, "scores": scores}, indent=2, default=str))
        return
    for key in ("id", "evalset", "evalset_sha256", "name", "model_version_id", "endpoint",
                "status", "created", "finished"):
        click.echo(f"{key + ':':<17}{details.get(key) if details.get(key) is not None else ''}")
    click.echo(f"{'samples:':<17}{details['done']}/{details['sample_count']} "
               f"({details['errors']} errors, {details['cached']} cached)")
    if details.get("mean_latency_ms") is not None:
        click.echo(f"{'latency (mean):':<17}{details['mean_latency_ms']:.1f} ms")
    click.echo(f"{'tokens:':<17}{details.get('prompt_tokens') or 0} prompt, "
               f"{details.get('completion_tokens') or 0} completion")
    recall = recall_line(details)
    if recall:
        click.echo(f"{'retrieval:':<17}{recall}")
    click.echo(f"{'settings:':<17}{json.dumps(details.get('settings'), default=str)}")
    click.echo(f"{'environment:':<17}{json.dumps(details.get('environment'), default=str)}")
    click.echo("")
    echo_rows(scores, ["scorer", "level", "n", "mean", "ci_low", "ci_high", "pass_rate"], fmt)


commands = [runs]
