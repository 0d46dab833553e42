"""`gateway data`: check training files before a job spends time on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gateway.cli.context import AppContext, pass_app
from gateway.cli.output import object_format_option, wants_json

if TYPE_CHECKING:
    from gateway.contracts import TokenCounter
    from gateway.data import DataReport
    from gateway.store import Store


def token_counter_for(store: Store, base: str) -> TokenCounter:
    """The TokenCounter of a registered base model, loaded by a plugin."""
    from gateway.errors import PluginError
    from gateway.plugins import get_plugin_manager
    from gateway.registry import get_base_model

    model = get_base_model(store, base)
    source = model.path or model.hf_id
    if source is None:
        raise PluginError(f"base model {base!r} has neither a path nor a hub id")
    counter: TokenCounter | None = get_plugin_manager().hook.load_token_counter(model_path=source)
    if counter is None:
        raise PluginError(
            f"no installed plugin can load the tokenizer of {base!r}; "
            "install the local plugin: pip install 'finetune-gateway[local]'"
        )
    return counter


def _stats_line(label: str, stats: dict[str, float] | None) -> str:
    if stats is None:
        return f"{label}: no valid examples"
    return f"{label}: " + ", ".join(
        f"{key} {value:.1f}" if key == "mean" else f"{key} {value:.0f}" for key, value in stats.items()
    )


def _where(line: int | None) -> str:
    return f"line {line}" if line is not None else "file"


def print_report(report: DataReport, base: str | None) -> None:
    click.echo(f"{report.path}: {report.examples} examples, sha256 {report.sha256[:12]}")
    click.echo(_stats_line("characters", report.char_stats))
    if report.token_stats is not None or base:
        limit = f" (limit {report.max_tokens})" if report.max_tokens else ""
        click.echo(_stats_line(f"tokens with {base}{limit}", report.token_stats))
    if report.too_long:
        lines = ", ".join(str(n) for n in report.too_long)
        count = len(report.too_long)
        noun = "example exceeds" if count == 1 else "examples exceed"
        click.echo(f"{count} {noun} {report.max_tokens} tokens: lines {lines}")
    if report.warnings:
        click.echo(f"Warnings ({len(report.warnings)}):")
        for line, message in report.warnings:
            click.echo(f"  {_where(line)}: {message}")
    if report.errors:
        click.secho(f"Errors ({len(report.errors)}):", fg="red")
        for line, message in report.errors:
            click.echo(f"  {_where(line)}: {message}")
    else:
        click.secho("OK: the file is valid", fg="green")


@click.group()
def data() -> None:
    """Training data: validation, statistics and data-quality checks."""


@data.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--base", help="Count tokens with this base model's tokenizer and chat template.")
@click.option("--max-tokens", type=click.IntRange(min=1),
              help="Longest allowed example in tokens (default: the base model's context).")
@click.option("--min-examples", type=click.IntRange(min=1), default=10, show_default=True)
@object_format_option
@pass_app
def validate(
    app: AppContext, file: Path, base: str | None, max_tokens: int | None, min_examples: int,
    fmt: str, legacy_json: bool,
) -> None:
    """Check an OpenAI chat fine-tuning JSONL file; list every error with its line.

    Exits 1 when the file has errors, 0 otherwise (warnings included).
    """
    from gateway.data import validate_chat_file
    from gateway.errors import ValidationError

    counter = token_counter_for(app.store, base) if base else None
    report = validate_chat_file(file, counter, max_tokens=max_tokens, min_examples=min_examples)
    if wants_json(fmt, legacy_json):
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report, base)
    if not report.ok:
        raise ValidationError(f"{file} has {len(report.errors)} errors", report.errors)


@data.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--evalset", help="Also look for this eval set's inputs in the file (contamination) "
                                "and score each answer with its scorers.")
@click.option("--near", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.8,
              show_default=True, help="Jaccard similarity of character 5-grams that counts as near.")
@object_format_option
def check(file: Path, evalset: str | None, near: float, fmt: str, legacy_json: bool) -> None:
    """Look for data that would make a model consistently wrong: exact and near
    duplicates, identical inputs with conflicting answers, unbalanced labels,
    and, with --evalset, eval inputs in the training file and answers the eval
    set's scorers would fail.

    Exits 1 on conflicts or contamination (with their line numbers), 0 otherwise
    (warnings included).
    """
    from gateway.data_check import check_file
    from gateway.errors import ValidationError
    from gateway.evaluation.evalset import load_evalset

    report = check_file(file, load_evalset(evalset) if evalset else None, near=near)
    if wants_json(fmt, legacy_json):
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(f"{report.path}: {report.examples} examples")
        if report.labels:
            click.echo("labels: " + ", ".join(f"{k} {v}" for k, v in report.labels.items()))
        for finding in report.findings:
            mark = click.style("error", fg="red") if finding.error else "warning"
            click.echo(f"  {mark} [{finding.kind}] {finding.message}")
        if report.ok:
            click.secho(f"OK: no conflicts or contamination ({len(report.findings)} warnings)",
                        fg="green")
    if not report.ok:
        errors = [(f.lines[0] if f.lines else None, f.message) for f in report.findings if f.error]
        raise ValidationError(f"{file} has {len(errors)} conflicts or contaminated examples", errors)


commands = [data]
