"""`gateway compare` (two stored runs) and `gateway regress` (the CI gate).

Exit codes of `regress`: 0 no scorer regressed, 1 a regression (or a failure
while running), 2 a usage error: a bad option, an unknown eval set, model or
prompt variant. Usage errors are raised as click.UsageError throughout.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from gateway.cli.context import AppContext, pass_app
from gateway.cli.output import echo_rows

if TYPE_CHECKING:
    from gateway.evaluation.compare import Comparison
    from gateway.evaluation.stats import Interval

FORMATS = ("table", "json", "junit")

format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="table for people, json (the full comparison) or junit (XML for CI).",
)
max_drop_option = click.option(
    "--max-drop", type=click.FloatRange(min=0), default=0.0, show_default=True,
    help="A scorer fails when B − A is significantly below −X (its 95% CI wholly below −X).",
)


def _ci(interval: Interval | None, signed: bool = False) -> str:
    if interval is None:
        return ""
    fmt = "{:+.3f}" if signed else "{:.3f}"
    text = fmt.format(interval.estimate)
    if interval.low is not None and interval.high is not None:
        text += f" ({fmt.format(interval.low)} to {fmt.format(interval.high)})"
    return text


def scorer_rows(comparison: Comparison, max_drop: float) -> list[dict[str, Any]]:
    """One row per scorer: both runs, the paired difference, tests and verdict."""
    rows = []
    for sc in comparison.scorers:
        diff = _ci(sc.diff, signed=True)
        test = f"McNemar p={sc.mcnemar_p:.3g}" if sc.mcnemar_p is not None else ""
        a, b = _ci(sc.a), _ci(sc.b)
        if sc.kind == "corpus" and sc.corpus_a is not None and sc.corpus_b is not None:
            a, b = f"{sc.corpus_a:.3f} (corpus)", f"{sc.corpus_b:.3f} (corpus)"
            if sc.bootstrap is not None:
                bs = sc.bootstrap
                diff = f"{bs.diff:+.3f} ({bs.low:+.3f} to {bs.high:+.3f})"
                test = f"bootstrap p={bs.p_value:.3g}" + (f"; {test}" if test else "")
        rows.append({
            "scorer": sc.scorer, "n": sc.n, "A (95% CI)": a, "B (95% CI)": b,
            "B − A (95% CI)": diff, "test": test, "W/T/L": f"{sc.wins}/{sc.ties}/{sc.losses}",
            "verdict": sc.verdict(max_drop),
        })
    return rows


def usage_rows(comparison: Comparison) -> list[dict[str, Any]]:
    rows = []
    for name, run, usage in (("A", comparison.run_a, comparison.usage_a),
                             ("B", comparison.run_b, comparison.usage_b)):
        rows.append({
            "run": name, "samples": usage.samples, "errors": usage.errors,
            "latency p50 ms": usage.latency_p50_ms, "latency p95 ms": usage.latency_p95_ms,
            "prompt tokens": usage.prompt_tokens_mean,
            "completion tokens": usage.completion_tokens_mean,
            "cost / 1k samples": f"${usage.cost_per_1000:.4f}" if usage.cost_per_1000 is not None else "",
            "model": run.label,
        })
    return rows


def print_comparison(comparison: Comparison, max_drop: float, show_diffs: bool) -> None:
    from gateway.evaluation.verdicts import regression_decision

    a, b = comparison.run_a, comparison.run_b
    clustered = f"; clustered by {comparison.clustered_by}" if comparison.clustered_by else ""
    click.echo(f"Eval set {a.evalset}: {comparison.shared} shared samples{clustered}")
    click.echo(f"  A (baseline):  {a.label}  run {a.id}")
    click.echo(f"  B (candidate): {b.label}  run {b.id}\n")
    echo_rows(scorer_rows(comparison, max_drop))
    click.echo("")
    echo_rows(usage_rows(comparison))
    click.echo("")
    for reason in regression_decision(comparison, max_drop).reasons:
        click.echo(f"- {reason}")
    for note in comparison.notes:
        click.echo(f"note: {note}")
    if show_diffs:
        click.echo("\nSamples whose outcome differs:")
        echo_rows(comparison.diffs or [], ["sample_id", "scorer", "a_value", "b_value",
                                           "a_output", "b_output"])


def emit(comparison: Comparison, fmt: str, max_drop: float, show_diffs: bool) -> None:
    from gateway.evaluation.verdicts import regression_decision, to_junit

    if fmt == "json":
        data = comparison.as_dict()
        decision = regression_decision(comparison, max_drop)
        data["decision"] = {"passed": decision.passed, "max_drop": max_drop,
                            "failing": decision.failing, "reasons": decision.reasons}
        click.echo(json.dumps(data, indent=2, default=str))
    elif fmt == "junit":
        click.echo(to_junit(comparison, max_drop))
    else:
        print_comparison(comparison, max_drop, show_diffs)


@click.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--diffs", is_flag=True, help="List the samples whose outcome differs.")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True,
              help="At most this many differing (sample, scorer) rows with --diffs.")
@click.option("--bootstrap", "resamples", type=click.IntRange(min=1), default=1000,
              show_default=True, help="Bootstrap resamples for corpus-level scorers.")
@max_drop_option
@format_option
@pass_app
def compare(app: AppContext, run_a: str, run_b: str, diffs: bool, limit: int, resamples: int,
            max_drop: float, fmt: str) -> None:
    """Compare eval run RUN_B against RUN_A (the baseline), sample by sample.

    Runs are given by id or a unique id prefix. Per scorer: each run's mean
    with its 95% CI, the paired difference B − A with its CI (cluster-robust
    when the eval set names a cluster field), McNemar's exact test for
    pass/fail scorers, a paired bootstrap for corpus-level scorers, and
    win/tie/loss counts; then latency and tokens per run.
    """
    from gateway.evaluation.compare import compare_runs

    comparison = compare_runs(app.store, run_a, run_b, diffs=diffs, diff_limit=limit,
                              bootstrap_resamples=resamples)
    emit(comparison, fmt, max_drop, diffs)


@click.command()
@click.argument("evalset")
@click.option("--baseline", required=True, help="The model to compare against (A).")
@click.option("--candidate", required=True, help="The model under test (B).")
@max_drop_option
@click.option("--baseline-prompt", default=None, help="Prompt variant for the baseline, e.g. fewshot:5.")
@click.option("--candidate-prompt", default=None, help="Prompt variant for the candidate.")
@click.option("--endpoint", default=None, help="An OpenAI-compatible base URL to send requests to.")
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True)
@format_option
@pass_app
def regress(app: AppContext, evalset: str, baseline: str, candidate: str, max_drop: float,
            baseline_prompt: str | None, candidate_prompt: str | None, endpoint: str | None,
            concurrency: int, fmt: str) -> None:
    """Gate a candidate model on EVALSET: exit 1 if it is significantly worse.

    Runs both models on the eval set (answers already cached or an unfinished
    identical run are reused), compares them and explains each scorer's
    verdict. A scorer regresses when the 95% CI of B − A lies wholly below
    −MAX_DROP.

    \b
    Exit codes: 0 no regression; 1 a regression (or a failure while running);
    2 a usage error (bad option, unknown eval set, model or prompt variant).
    """
    from gateway.errors import GatewayError
    from gateway.evaluation.compare import compare_runs
    from gateway.evaluation.evalset import load_evalset
    from gateway.evaluation.prompts import parse_variant
    from gateway.evaluation.runner import run_eval_sync
    from gateway.evaluation.verdicts import regression_decision
    from gateway.registry import resolve

    try:
        loaded = load_evalset(evalset)
    except GatewayError as exc:
        raise click.UsageError(str(exc)) from exc
    for option, model, prompt in (("--baseline", baseline, baseline_prompt),
                                  ("--candidate", candidate, candidate_prompt)):
        try:
            parse_variant(prompt, loaded.train_path)
            if endpoint is None:  # a remote endpoint may know names the registry does not
                resolve(app.store, model)
        except GatewayError as exc:
            raise click.UsageError(f"{option}: {exc}") from exc

    runs = []
    for model, prompt in ((baseline, baseline_prompt), (candidate, candidate_prompt)):
        runs.append(run_eval_sync(app.config, app.store, loaded, model, prompt=prompt,
                                  endpoint=endpoint, concurrency=concurrency,
                                  progress=fmt == "table"))
    comparison = compare_runs(app.store, runs[0], runs[1])
    decision = regression_decision(comparison, max_drop)
    emit(comparison, fmt, max_drop, False)
    if fmt == "table":
        click.echo("")
        if decision.passed:
            click.secho(f"PASS: no scorer is significantly worse (max drop {max_drop:g})", fg="green")
        else:
            click.secho(f"FAIL: regression on {', '.join(decision.failing)}", fg="red")
    sys.exit(0 if decision.passed else 1)


commands = [compare, regress]
