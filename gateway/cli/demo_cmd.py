"""`gateway demo`: the whole product end to end on the built-in SmolLM2-135M-Instruct."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.cli.context import AppContext, pass_app
from gateway.cli.output import echo_rows

if TYPE_CHECKING:
    from gateway.contracts import ModelVersion
    from gateway.evaluation.compare import Comparison
    from gateway.evaluation.evalset import EvalSet

STAGES = 5


class Stages:
    """Prints each stage's header and records its wall time, for the closing summary."""

    def __init__(self, total: int = STAGES) -> None:
        self.total = total
        self.started = time.monotonic()
        self.times: list[tuple[str, float]] = []
        self._current: tuple[str, float] | None = None

    def begin(self, number: int, title: str) -> None:
        self.end()
        click.echo("")
        click.secho(f"== [{number}/{self.total}] {title} ==", bold=True)
        self._current = (f"[{number}/{self.total}] {title}", time.monotonic())

    def end(self) -> None:
        if self._current is not None:
            title, began = self._current
            self.times.append((title, time.monotonic() - began))
            self._current = None

    def summary(self, hardware: str) -> None:
        self.end()
        total = time.monotonic() - self.started
        click.echo("")
        click.secho("Wall time per step:", bold=True)
        for title, seconds in self.times:
            click.echo(f"  {seconds:7.1f} s  {title}")
        click.echo(f"  {total:7.1f} s  total, start to finish")
        click.echo(f"Machine: {hardware}")


def base_model(app: AppContext, base: str | None) -> str:
    """The base model to use: a registered one (--base), else the built-in, pulled once."""
    from gateway.demo import BUILTIN_MODEL
    from gateway.model_sources import pull_builtin_model
    from gateway.registry import get_base_model

    if base is not None:
        model = get_base_model(app.store, base)
        click.echo(f"Using the registered base model {model.name} ({model.path or model.hf_id})")
        return model.name
    model, already = pull_builtin_model(app.store, app.config, BUILTIN_MODEL)
    if already:
        click.echo(f"{model.name} is already available offline at {model.path} (reused)")
    else:
        click.echo(f"Added {model.name} at {model.path}")
    return model.name


def _describe_runs(app: AppContext, run_ids: list[str]) -> None:
    from gateway.evaluation.runs import run_details

    for run_id in run_ids:
        d = run_details(app.store, run_id)
        reused = f", {d['cached']} answers reused from the response cache" if d["cached"] else ""
        errors = f", {d['errors']} errors" if d["errors"] else ""
        click.echo(f"  {d['name']}: run {run_id}, {d['done']} samples{errors}{reused}")


def _evaluate(app: AppContext, evalset: EvalSet, specs: list[tuple[str, str | None]],
              limit: int | None) -> list[str]:
    from gateway.evaluation.runner import run_evals_sync

    run_ids = run_evals_sync(app.config, app.store, evalset, specs, limit=limit, concurrency=16)
    _describe_runs(app, run_ids)
    return run_ids


def _runtime(app: AppContext, run_id: str) -> str:
    """How a run computed (backend, device, dtype, threads), from its stored environment."""
    from gateway.evaluation.runs import run_details

    env = run_details(app.store, run_id).get("environment") or {}
    parts = [f"{env.get('backend', '?')} backend"]
    parts += [f"{key} {env[key]}" for key in ("device", "dtype", "threads") if key in env]
    return ", ".join(parts)


def fine_tune(app: AppContext, evalset: EvalSet, base: str, params: dict[str, Any],
              retrain: bool, name: str | None = None) -> ModelVersion:
    """Train the version `name` (default: the demo's), or reuse an identical earlier one."""
    from gateway.cli.train_cmd import run_in_foreground
    from gateway.demo import TRAINER, VERSION_NAME, resolved_hyperparameters, reusable_version
    from gateway.errors import GatewayError
    from gateway.job_records import get_job
    from gateway.jobs import create_job
    from gateway.registry import get_version
    from gateway.util import sha256_file

    if evalset.train_path is None:
        raise GatewayError(f"eval set {evalset.name} has no train file to fine-tune on")
    resolved = resolved_hyperparameters(params)
    if not retrain:
        found = reusable_version(app.store, base, sha256_file(evalset.train_path), resolved,
                                 name or VERSION_NAME)
        if found is not None:
            click.echo(f"Reusing {found.ref} ({found.id}): trained earlier on the same data "
                       "with the same settings (--retrain trains a new version)")
            return found
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    click.echo(f"LoRA on {evalset.train_path} with the {TRAINER} trainer: {shown}")
    job = create_job(app.config, app.store, trainer=TRAINER, base=base,
                     training_file=evalset.train_path, suffix=name or VERSION_NAME,
                     hyperparameters=params)
    started = time.monotonic()
    run_in_foreground(app, job.id)
    seconds = time.monotonic() - started
    version = get_version(app.store, get_job(app.store, job.id).model_version_id or "")
    click.echo(f"Trained {version.ref} in {seconds:.0f} s (job {job.id})")
    return version


def training_runtime(version: ModelVersion) -> str:
    """How the fine-tune was trained (device, dtype, threads, tokens/s), from its metrics."""
    m = version.metrics
    parts = [str(m[k]) for k in ("device", "dtype") if m.get(k)]
    if m.get("threads"):
        parts.append(f"{m['threads']} threads")
    if m.get("tokens_per_second"):
        parts.append(f"{float(m['tokens_per_second']):.0f} tokens/s")
    return f"training on {', '.join(parts)}" if parts else "training settings not recorded"


def _interval(comparison: Comparison, scorer: str, side: str) -> str:
    from gateway.cli.compare_cmd import _ci

    sc = comparison.scorer(scorer)
    return _ci(sc.a if side == "a" else sc.b)


def _overview(zero: Comparison, few: Comparison) -> None:
    """The three runs side by side: accuracy with its 95% CI and macro-F1, per run."""
    from gateway.demo import DECIDING_SCORER

    entries = [("zero-shot", zero, "a"), ("few-shot", few, "a"), ("fine-tuned", zero, "b")]
    rows = []
    for what, comp, side in entries:
        run = comp.run_a if side == "a" else comp.run_b
        sc = comp.scorer(DECIDING_SCORER)
        f1 = sc.corpus_a if side == "a" else sc.corpus_b
        row: dict[str, Any] = {"": what, "model": run.label, "run": run.id,
                               "accuracy (95% CI)": _interval(comp, DECIDING_SCORER, side),
                               "macro-F1": f"{f1:.3f}" if f1 is not None else ""}
        for other in comp.scorers:
            if other.scorer != DECIDING_SCORER and other.kind != "corpus":
                row[f"{other.scorer} (95% CI)"] = _interval(comp, other.scorer, side)
        rows.append(row)
    echo_rows(rows)


def _comparison(title: str, comparison: Comparison) -> bool:
    """Print one comparison table with its verdicts; True when B is significantly better."""
    from gateway.cli.compare_cmd import scorer_rows
    from gateway.demo import DECIDING_SCORER
    from gateway.evaluation.verdicts import verdict_sentence

    click.echo("")
    click.secho(title, bold=True)
    echo_rows(scorer_rows(comparison, 0.0))
    for sc in comparison.scorers:
        click.echo(f"- {verdict_sentence(comparison, sc)}")
    for note in comparison.notes:
        click.echo(f"note: {note}")
    return comparison.scorer(DECIDING_SCORER).verdict() == "better"


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("report.html"), show_default=True, help="Where to write the HTML report.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Train whole epochs (25 steps each) instead of the demo's 15 steps.")
@click.option("--steps", "--max-steps", "max_steps", type=click.IntRange(min=1), default=None,
              help="Optimizer steps of 8 rows (default: 15; overrides --epochs).")
@click.option("--retrain", is_flag=True, help="Train a new version even if an identical one exists.")
@click.option("--base", default=None, hidden=True,
              help="Use this registered base model instead of pulling SmolLM2 (tests).")
@click.option("--limit", type=click.IntRange(min=1), default=None, hidden=True,
              help="Only the first N eval rows (tests).")
@click.option("--diagnose", "diagnose_demo", is_flag=True,
              help="Instead: behaviour or knowledge? Fine-tune on policy-knowledge, then "
                   "`gateway diagnose` it against retrieval (about 5 minutes on 2 cores).")
@pass_app
def demo(app: AppContext, output: Path, epochs: int | None, max_steps: int | None, retrain: bool,
         base: str | None, limit: int | None, diagnose_demo: bool) -> None:
    """Run the whole product end to end on the built-in SmolLM2-135M-Instruct.

    \b
    1. fetch SmolLM2-135M-Instruct for offline use (once);
    2. evaluate it on the support-tickets eval set, zero-shot and few-shot;
    3. fine-tune a LoRA adapter on the set's train.jsonl (about 4 minutes on 2 cores);
    4. evaluate the fine-tune and compare it with both baselines (95% CIs);
    5. write report.html and print how to serve and query the new version.

    Re-running reuses the model, cached eval answers and an identical fine-tune.
    It ends with each step's wall time, the CPU flags, dtype and threads used.

    With --diagnose it asks instead whether a gap is a behaviour or a
    knowledge problem: it fine-tunes on policy-knowledge (facts the training
    data does not hold) and runs `gateway diagnose` (base, few-shot,
    retrieval, fine-tune, fine-tune + retrieval) on its 48 questions.
    """
    if diagnose_demo:
        from gateway.cli.demo_diagnose import diagnose_demo as run_diagnose_demo

        run_diagnose_demo(app, output, max_steps, retrain, base, limit)
        return
    from gateway.demo import (
        EVALSET,
        FEWSHOT_PROMPT,
        hyperparameters,
        next_steps,
        system_prompt,
    )
    from gateway.evaluation.compare import compare_runs
    from gateway.evaluation.evalset import load_evalset
    from gateway.evaluation.report import write_report
    from gateway.hardware import cpu_summary
    from gateway.keys import active_keys_by_hash

    stages = Stages()
    hardware = cpu_summary()
    click.echo(f"Machine: {hardware}")
    stages.begin(1, "Base model")
    base_name = base_model(app, base)
    evalset = load_evalset(EVALSET)
    rows = len(evalset.rows) if limit is None else min(limit, len(evalset.rows))
    click.echo(f"Eval set {evalset.name}: {rows} of {len(evalset.rows)} tickets, 8 support queues")

    stages.begin(2, f"Evaluating {base_name} zero-shot and with a {FEWSHOT_PROMPT} prompt")
    zero_id, few_id = _evaluate(app, evalset, [(base_name, None), (base_name, FEWSHOT_PROMPT)], limit)
    runtime = _runtime(app, zero_id)
    click.echo(f"Evaluated with the {runtime}")

    stages.begin(3, f"Fine-tuning a LoRA adapter on {base_name}")
    version = fine_tune(app, evalset, base_name, hyperparameters(epochs, max_steps), retrain)

    stages.begin(4, f"Evaluating {version.ref} and comparing")
    (tuned_id,) = _evaluate(app, evalset, [(version.ref, None)], limit)
    vs_zero = compare_runs(app.store, zero_id, tuned_id)
    vs_few = compare_runs(app.store, few_id, tuned_id)
    click.echo("")
    _overview(vs_zero, vs_few)
    beats_zero = _comparison("Fine-tune (B) against zero-shot (A):", vs_zero)
    beats_few = _comparison("Fine-tune (B) against few-shot (A):", vs_few)
    click.echo("")
    if beats_zero:
        click.secho(f"Verdict: {version.ref} is significantly better than {base_name} zero-shot.",
                    fg="green", bold=True)
    else:
        click.secho(f"Verdict: {version.ref} is NOT significantly better than {base_name} "
                    "zero-shot on this data.", fg="yellow", bold=True)
    if beats_few:
        click.secho(f"It also significantly beats the {FEWSHOT_PROMPT} prompt.", fg="green")
    else:
        click.echo(f"It does not significantly beat the {FEWSHOT_PROMPT} prompt.")

    stages.begin(5, "Report and next steps")
    path = write_report(app.store, [zero_id, few_id, tuned_id], output)
    click.echo(f"Wrote {path.resolve()} (zero-shot, few-shot and fine-tuned runs)")
    click.echo("")
    system = system_prompt(evalset.rows[0].messages)
    click.echo(next_steps(app.config, version, system, bool(active_keys_by_hash(app.store))))
    stages.summary(f"{hardware}; evals on the {runtime}; {training_runtime(version)}")


commands = [demo]
