"""`gateway eval` (run eval sets on models) and `gateway evalsets` (find, show, validate them)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from gateway.cli.context import AppContext, pass_app
from gateway.cli.output import echo_rows, format_option

SUMMARY_COLUMNS = ["run_id", "model", "scorer", "n", "mean", "ci_low", "ci_high", "pass_rate"]


@click.command("eval")
@click.argument("evalset")
@click.option("--model", "-m", "models", multiple=True, required=True,
              help="Model to evaluate: id, name@vN, alias or base name. Repeat for several.")
@click.option("--prompt", "-p", "prompts", multiple=True,
              help="Prompt variant: none, system:TEXT, system:@FILE, fewshot:K, schema (decode "
                   "under the eval set's JSON schema), retrieve:K (the top K passages of the "
                   "corpus in the question); join parts with + (fewshot:3+retrieve:4). "
                   "Repeatable; every variant runs on every model.")
@click.option("--corpus", type=click.Path(exists=True),
              help="Corpus for retrieve:K: a folder of .txt/.md files or a JSONL of {id, text} "
                   "(default: the eval set's `corpus:`).")
@click.option("--endpoint", help="Send requests to this OpenAI-compatible server instead "
                                 "(e.g. http://127.0.0.1:8000/v1).")
@click.option("--api-key", help="API key for --endpoint (default: $GATEWAY_API_KEY). Never stored.")
@click.option("--concurrency", type=click.IntRange(1), default=8, show_default=True,
              help="Requests in flight at once.")
@click.option("--limit", type=click.IntRange(1), help="Only the first N samples.")
@click.option("--no-cache", is_flag=True, help="Ignore cached answers (new answers are still cached).")
@click.option("--no-resume", is_flag=True, help="Start a new run even if an unfinished one matches.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@format_option
@pass_app
def eval_command(app: AppContext, evalset: str, models: tuple[str, ...], prompts: tuple[str, ...],
                 corpus: str | None, endpoint: str | None, api_key: str | None, concurrency: int, limit: int | None,
                 no_cache: bool, no_resume: bool, quiet: bool, fmt: str) -> None:
    """Run the eval set EVALSET (a name or a path) on one or more models.

    Each model is run with each --prompt variant (all combinations; none
    given means the rows as written). Prints per-scorer means with 95%
    intervals and the run ids. An interrupted run is resumed by running the
    same command again: only its missing samples are done.

    \b
    Examples:
      gateway eval support-tickets --model smollm2-135m --model support@v2
      gateway eval support-tickets -m support@prod -p none -p fewshot:5
      gateway eval policy-knowledge -m smollm2-135m -p retrieve:4 -p fewshot:3+retrieve:4
    """
    from gateway.evaluation.evalset import load_evalset
    from gateway.evaluation.runner import run_evals_sync
    from gateway.evaluation.runs import recall_line, run_details, scorer_summary

    loaded = load_evalset(evalset)
    specs = [(model, prompt) for model in models for prompt in prompts or (None,)]
    try:
        run_ids = run_evals_sync(
            app.config, app.store, loaded, specs, endpoint=endpoint, api_key=api_key,
            concurrency=concurrency, progress=not quiet, resume=not no_resume, limit=limit,
            cache=not no_cache, corpus=corpus,
        )
    except KeyboardInterrupt:
        click.echo("Interrupted. Run the same command again to resume.", err=True)
        sys.exit(130)
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for run_id in run_ids:
        details = run_details(app.store, run_id)
        scores = scorer_summary(app.store, run_id)
        runs.append({"run_id": run_id, "model": details["name"], "status": details["status"],
                     "samples": details["done"], "errors": details["errors"],
                     "cached": details["cached"], "scores": scores,
                     "retrieval_recall": details["retrieval_recall"], "recall": recall_line(details)})
        rows += [{"run_id": run_id, "model": details["name"], **s} for s in scores]
    if fmt == "json":
        click.echo(json.dumps(runs, indent=2, default=str))
        return
    echo_rows(rows, SUMMARY_COLUMNS, fmt)
    if fmt == "table":
        click.echo("")
        for run in runs:
            click.echo(f"run {run['run_id']}  {run['model']}  {run['status']}  "
                       f"{run['samples']} samples, {run['errors']} errors, {run['cached']} cached"
                       + (f", {run['recall']}" if run["recall"] else ""))
    for run in runs:
        if run["errors"]:
            click.secho(f"warning: {run['errors']} samples of {run['run_id']} failed; "
                        f"`gateway runs show {run['run_id']}` has the details", fg="yellow", err=True)


@click.group()
def evalsets() -> None:
    """Eval sets: the shipped ones, those on GATEWAY_EVALSETS_PATH, and files."""


@evalsets.command("list")
@format_option
def evalsets_list(fmt: str) -> None:
    """List the eval sets found by name."""
    from gateway.errors import GatewayError
    from gateway.evaluation.evalset import discover, load_evalset

    rows: list[dict[str, Any]] = []
    for name, path in sorted(discover().items()):
        try:
            es = load_evalset(path)
            rows.append({"name": name, "samples": len(es.rows),
                         "scorers": ", ".join(s.id for s in es.scorers),
                         "train": "yes" if es.train_path else "", "description": es.description,
                         "path": str(path)})
        except GatewayError as exc:
            rows.append({"name": name, "samples": None, "scorers": "", "train": "",
                         "description": f"INVALID: {exc}", "path": str(path)})
    if fmt == "table":  # keep the table readable; json and csv carry the whole text
        for row in rows:
            text = str(row["description"])
            row["description"] = text if len(text) <= 60 else text[:57].rstrip() + "..."
    echo_rows(rows, ["name", "samples", "scorers", "train", "description", "path"], fmt)


@evalsets.command("show")
@click.argument("name")
@click.option("--rows", "n_rows", type=click.IntRange(0), default=3, show_default=True,
              help="How many rows to print.")
@format_option
def evalsets_show(name: str, n_rows: int, fmt: str) -> None:
    """Show an eval set: its settings, scorers and first rows."""
    from gateway.evaluation.evalset import load_evalset

    es = load_evalset(name)
    scorers = [{"id": s.id, "name": s.name, "options": s.options} for s in es.scorers]
    rows = [{"id": r.id, "messages": r.messages, "ideal": r.ideal, "metadata": r.metadata}
            for r in es.rows[:n_rows]]
    info: dict[str, Any] = {
        "name": es.name, "description": es.description, "path": str(es.path),
        "samples": len(es.rows), "train": str(es.train_path) if es.train_path else None,
        "cluster": es.cluster, "generation": es.generation, "sha256": es.sha256,
        "scorers": scorers, "rows": rows,
    }
    if fmt == "json":
        click.echo(json.dumps(info, indent=2))
        return
    for key in ("name", "description", "path", "samples", "train", "cluster", "sha256"):
        click.echo(f"{key + ':':<13}{info[key] if info[key] is not None else ''}")
    click.echo(f"{'generation:':<13}{json.dumps(es.generation)}")
    click.echo("scorers:")
    echo_rows(scorers, ["id", "name", "options"], fmt)
    if n_rows:
        click.echo("rows:")
        echo_rows(rows, ["id", "messages", "ideal"], fmt)


@evalsets.command("validate")
@click.argument("path")
def evalsets_validate(path: str) -> None:
    """Check an eval set: YAML, every JSONL line, and that each scorer exists with valid options."""
    from gateway.errors import GatewayError
    from gateway.evaluation.evalset import load_evalset
    from gateway.evaluation.runner import evaluator_kwargs
    from gateway.plugins import get_evaluator_class

    es = load_evalset(path)
    for spec in es.scorers:
        cls = get_evaluator_class(spec.name)
        if cls.needs_chat:
            continue  # built at run time, with a chat function
        try:
            cls(**evaluator_kwargs(cls, spec, es, None))
        except GatewayError as exc:
            raise GatewayError(f"{es.path}: scorer {spec.id!r}: {exc}") from exc
        except TypeError as exc:
            raise GatewayError(f"{es.path}: scorer {spec.id!r}: bad options: {exc}") from exc
    click.echo(f"OK: {es.name}: {len(es.rows)} samples, scorers {', '.join(s.id for s in es.scorers)}")


commands = [eval_command, evalsets]
