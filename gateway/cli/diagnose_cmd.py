"""`gateway diagnose`: is the gap a behaviour problem or a knowledge problem?"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from gateway.cli.context import AppContext, pass_app
from gateway.cli.output import echo_rows, format_option
from gateway.evaluation.lever_stats import MIN_EFFECT

EXPECTABLE = ("behaviour", "knowledge", "both", "neither")


def _ci(row: dict[str, Any]) -> str:
    if row.get("low") is None or row.get("high") is None:
        return ""
    return f"{row['low']:+.3f} to {row['high']:+.3f}"


def _cost(value: Any, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def print_diagnosis(result: dict[str, Any]) -> None:
    """The table form: contenders with costs, the levers' effects, then the verdict."""
    click.echo(f"{result['evalset']}: {result['n']} samples, scored by {result['scorer']}")
    click.echo("")
    contenders = [{"contender": name, "mean": result["means"][name], "run": run_id,
                   "latency ms": _cost(result["costs"][name]["latency_ms"], 0)
                   or ("cached" if result["costs"][name].get("cached") else ""),
                   "tokens/sample": _cost(result["costs"][name]["tokens"], 1),
                   "cost/sample": _cost(result["costs"][name]["cost"], 6)}
                  for name, run_id in result["runs"].items()]
    echo_rows(contenders, ["contender", "mean", "latency ms", "tokens/sample", "cost/sample", "run"])
    click.echo("")
    effects = [{"lever": key if key == e["name"] else e["name"], "effect": f"{e['estimate']:+.3f}",
                "95% CI": _ci(e), "n": e["n"], "detectable at this n": _cost(e["mde"], 3),
                "samples for this effect": e["needed"] or ""}
               for key, e in result["effects"].items()]
    echo_rows(effects, ["lever", "effect", "95% CI", "n", "detectable at this n",
                        "samples for this effect"])
    if result.get("retrieval_recall") is not None:
        click.echo(f"\nretrieval recall (gold passage retrieved): {result['retrieval_recall']:.3f}")
    for note in result.get("notes", []):
        click.secho(f"note: {note}", fg="yellow")
    click.echo("")
    colour = {"behaviour": "green", "knowledge": "green", "both": "green"}.get(result["verdict"])
    click.secho(f"verdict: {result['sentence']}", fg=colour, bold=True)
    click.echo(f"(a lever helps when its CI lies above 0 and its effect is at least "
               f"{result['min_effect']:g}; it is ruled out when its CI lies below {result['min_effect']:g})")
    click.echo(f"stored as {result['id']}; the 2x2 chart: gateway report --diagnosis {result['id']}")


@click.command()
@click.argument("evalset")
@click.option("--base", "base", required=True, help="The base model (id, name@vN, alias or base name).")
@click.option("--fine-tune", "fine_tune", required=True, help="The fine-tuned version to diagnose.")
@click.option("--retrieve", "retrieve_k", type=click.IntRange(1), default=4, show_default=True,
              help="Passages retrieved per sample for the retrieval contenders.")
@click.option("--fewshot", "fewshot_k", type=click.IntRange(0), default=3, show_default=True,
              help="Examples for the few-shot contender (0: leave it out).")
@click.option("--corpus", type=click.Path(exists=True),
              help="Corpus to retrieve from (default: the eval set's `corpus:`).")
@click.option("--scorer", help="The per-sample scorer that decides (default: the set's first).")
@click.option("--min-effect", type=click.FloatRange(0, 1), default=MIN_EFFECT, show_default=True,
              help="The smallest effect that counts as helping, in the scorer's units.")
@click.option("--expect", type=click.Choice(EXPECTABLE),
              help="Exit 1 unless the verdict is this one (pin it in CI).")
@click.option("--limit", type=click.IntRange(1), help="Only the first N samples.")
@click.option("--concurrency", type=click.IntRange(1), default=8, show_default=True)
@click.option("--no-cache", is_flag=True,
              help="Ask the models again instead of reusing cached answers (fresh latencies).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@format_option
@pass_app
def diagnose(app: AppContext, evalset: str, base: str, fine_tune: str, retrieve_k: int,
             fewshot_k: int, corpus: str | None, scorer: str | None, min_effect: float,
             expect: str | None, limit: int | None, concurrency: int, no_cache: bool,
             quiet: bool, fmt: str) -> None:
    """Tell a behaviour problem (fine-tuning helps) from a knowledge problem
    (retrieval helps) on EVALSET.

    Runs five contenders on the same samples (answers already cached are
    reused): base, base + few-shot, base + retrieval, fine-tune and
    fine-tune + retrieval. Prints each lever's effect as a paired difference
    with its 95% CI (fine-tuning: FT − base; retrieval: base + R − base;
    their interaction; the fine-tune against the best prompt-only
    contender), each contender's latency, tokens and cost per sample, and a
    verdict: behaviour, knowledge, both, neither, or not enough samples to
    tell (with the smallest effect this n can detect and the samples an
    effect of the observed size would need). The result is stored in the
    `diagnoses` table and shown by `gateway report`.

    \b
    Exit codes: 0 done (and, with --expect, the verdict matches); 1 the
    verdict differs from --expect (or a failure while running); 2 a usage
    error (bad option, unknown eval set, model or scorer, no corpus).

    \b
    Example:
      gateway diagnose policy-knowledge --base smollm2-135m --fine-tune policy@v1 --expect knowledge
    """
    from gateway.errors import GatewayError
    from gateway.evaluation.diagnosis import diagnose as run_diagnosis
    from gateway.evaluation.diagnosis import pick_scorer
    from gateway.evaluation.evalset import load_evalset
    from gateway.evaluation.prompts import parse_variant
    from gateway.registry import resolve

    try:
        loaded = load_evalset(evalset)
        pick_scorer(loaded, scorer)
        if fewshot_k and loaded.train_path is not None:
            parse_variant(f"fewshot:{fewshot_k}", loaded.train_path)
        if corpus is None and (loaded.retrieval is None or loaded.retrieval.corpus is None):
            raise GatewayError(f"{loaded.name} names no corpus (`corpus:` in evalset.yaml); "
                               "give one with --corpus DIR")
    except GatewayError as exc:
        raise click.UsageError(str(exc)) from exc
    for option, model in (("--base", base), ("--fine-tune", fine_tune)):
        try:
            resolve(app.store, model)
        except GatewayError as exc:
            raise click.UsageError(f"{option}: {exc}") from exc
    result = run_diagnosis(app.config, app.store, loaded, base, fine_tune, retrieve_k=retrieve_k,
                           fewshot_k=fewshot_k, scorer=scorer, min_effect=min_effect,
                           corpus=corpus, limit=limit, concurrency=concurrency,
                           cache=not no_cache,
                           progress=not quiet and fmt == "table").as_dict()
    if fmt == "json":
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        print_diagnosis(result)
    if expect is not None and result["verdict"] != expect:
        click.secho(f"expected {expect}, got {result['verdict']}", fg="red", err=True)
        sys.exit(1)


commands = [diagnose]
