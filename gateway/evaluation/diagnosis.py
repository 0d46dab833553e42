"""`gateway diagnose`: five contenders on the same samples, the levers' effects, a verdict.

The contenders (see CONTENDERS) are run through the ordinary eval runner,
so identical requests come from the response cache and an interrupted
diagnosis resumes. One per-sample scorer decides (the set's first by default).
The statistics are in gateway/evaluation/lever_stats.py; the result is stored in
the `diagnoses` table and printed by the CLI and `gateway report`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.errors import GatewayError, NotFoundError
from gateway.evaluation.evalset import EvalSet, load_evalset
from gateway.evaluation.lever_stats import MIN_EFFECT, Effect, Verdict, effect, interaction, verdict
from gateway.evaluation.runner import run_evals_sync
from gateway.store import Store
from gateway.util import new_id, utcnow

BASE, FEWSHOT, RETRIEVAL = "base", "base + few-shot", "base + retrieval"
FINE_TUNE, FINE_TUNE_RETRIEVAL = "fine-tune", "fine-tune + retrieval"
CONTENDERS = (BASE, FEWSHOT, RETRIEVAL, FINE_TUNE, FINE_TUNE_RETRIEVAL)
PROMPT_ONLY = (FEWSHOT, RETRIEVAL)

_COSTS = """
SELECT count(*) AS samples, avg(latency_ms) FILTER (NOT cached) AS latency_ms,
       count_if(cached) AS cached,
       avg(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)) AS tokens,
       avg(prompt_tokens) AS prompt_tokens, avg(cost) AS cost, count(cost) AS priced
FROM eval_samples WHERE run_id = ?
"""


@dataclass
class Diagnosis:
    id: str
    evalset: str
    scorer: str
    n: int
    min_effect: float
    runs: dict[str, str]  # contender -> run id
    means: dict[str, float]
    costs: dict[str, dict[str, Any]]
    effects: dict[str, Effect]
    verdict: Verdict
    recall: float | None = None  # recall@K of the base + retrieval run, when rows name gold passages
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "evalset": self.evalset, "scorer": self.scorer, "n": self.n,
                "min_effect": self.min_effect, "runs": self.runs, "means": self.means,
                "costs": self.costs,
                "effects": {k: e.as_dict() for k, e in self.effects.items()},
                "verdict": self.verdict.kind, "sentence": self.verdict.sentence,
                "retrieval_recall": self.recall, "notes": self.notes}


def contender_runs(base: str, fine_tune: str, retrieve_k: int,
                   fewshot_k: int) -> list[tuple[str, str, str | None]]:
    """(contender, model, prompt variant) for each contender; few-shot only when fewshot_k."""
    plan = [(BASE, base, None), (FEWSHOT, base, f"fewshot:{fewshot_k}"),
            (RETRIEVAL, base, f"retrieve:{retrieve_k}"), (FINE_TUNE, fine_tune, None),
            (FINE_TUNE_RETRIEVAL, fine_tune, f"retrieve:{retrieve_k}")]
    return [p for p in plan if p[0] != FEWSHOT or fewshot_k > 0]


def pick_scorer(evalset: EvalSet, scorer: str | None) -> str:
    """The scorer that decides: the one named, or the set's first per-sample scorer."""
    from gateway.plugins import get_evaluator_class

    per_sample = [s.id for s in evalset.scorers if not get_evaluator_class(s.name).corpus_level]
    if scorer is None:
        if not per_sample:
            raise GatewayError(f"{evalset.name} has no per-sample scorer to diagnose with")
        return per_sample[0]
    if scorer not in per_sample:
        raise GatewayError(f"no per-sample scorer {scorer!r} in {evalset.name}; "
                           f"choose one of {', '.join(per_sample) or 'none'}")
    return scorer


def _scores(store: Store, run_id: str, scorer: str) -> dict[str, float]:
    rows = store.query("SELECT sample_id, value FROM eval_scores WHERE run_id = ? AND scorer = ? "
                       "AND sample_id <> '*'", [run_id, scorer])
    return {r["sample_id"]: float(r["value"]) for r in rows}


def _costs(store: Store, run_id: str) -> dict[str, Any]:
    row = store.query_one(_COSTS, [run_id]) or {}
    # Answers from the cache have no latency of their own: the mean is of fresh ones.
    return {"latency_ms": row.get("latency_ms"), "cached": row.get("cached"),
            "tokens": row.get("tokens"),
            "prompt_tokens": row.get("prompt_tokens"),
            "cost": row.get("cost") if row.get("priced") else None}


def analyse(store: Store, evalset: EvalSet, runs: dict[str, str], scorer: str,
            min_effect: float = MIN_EFFECT) -> Diagnosis:
    """The effects, costs and verdict of finished contender runs (no model calls)."""
    scores = {name: _scores(store, run_id, scorer) for name, run_id in runs.items()}
    shared = sorted(set.intersection(*(set(s) for s in scores.values())))
    notes = []
    left_out = max(len(s) for s in scores.values()) - len(shared)
    if left_out:
        notes.append(f"{left_out} samples missing from some contender are left out")
    if len(shared) < 2:
        raise GatewayError(f"only {len(shared)} samples were scored by every contender; "
                           "a diagnosis needs at least 2")
    by_row = {row.id: row for row in evalset.rows}
    clusters = ([str(by_row[s].metadata.get(evalset.cluster, "")) if s in by_row else s
                 for s in shared] if evalset.cluster else None)
    values = {name: [s[i] for i in shared] for name, s in scores.items()}
    effects = {
        "fine-tuning": effect("fine-tuning", values[BASE], values[FINE_TUNE], clusters),
        "retrieval": effect("retrieval", values[BASE], values[RETRIEVAL], clusters),
        "interaction": interaction(values[BASE], values[RETRIEVAL], values[FINE_TUNE],
                                   values[FINE_TUNE_RETRIEVAL], clusters),
    }
    prompt_only = [c for c in PROMPT_ONLY if c in values]
    best = max(prompt_only, key=lambda c: sum(values[c]))
    effects["fine-tune vs best prompt-only"] = effect(
        f"fine-tune vs {best}", values[best], values[FINE_TUNE], clusters)
    means = {name: sum(v) / len(v) for name, v in values.items()}
    recall_row = store.query_one(
        "SELECT avg(CASE WHEN gold_retrieved THEN 1.0 WHEN NOT gold_retrieved THEN 0.0 END) AS r "
        "FROM eval_samples WHERE run_id = ?", [runs[RETRIEVAL]])
    return Diagnosis(
        id=new_id("diag"), evalset=evalset.name, scorer=scorer, n=len(shared),
        min_effect=min_effect, runs=runs, means=means,
        costs={name: _costs(store, run_id) for name, run_id in runs.items()},
        effects=effects, verdict=verdict(effects["fine-tuning"], effects["retrieval"], min_effect),
        recall=recall_row["r"] if recall_row else None, notes=notes)


def store_diagnosis(store: Store, evalset: EvalSet, diagnosis: Diagnosis) -> None:
    store.execute(
        "INSERT INTO diagnoses (id, evalset, evalset_sha256, scorer, verdict, run_ids, result, created) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [diagnosis.id, evalset.name, evalset.sha256, diagnosis.scorer, diagnosis.verdict.kind,
         json.dumps(diagnosis.runs), json.dumps(diagnosis.as_dict(), default=str), utcnow()])


def latest_diagnoses(store: Store, evalset: str | None = None) -> list[dict[str, Any]]:
    """The newest stored diagnosis of each eval set (or of one), decoded."""
    rows = store.query(
        """SELECT evalset, result FROM diagnoses WHERE (? IS NULL OR evalset = ?)
           QUALIFY row_number() OVER (PARTITION BY evalset ORDER BY created DESC) = 1
           ORDER BY evalset""", [evalset, evalset])
    return [json.loads(r["result"]) for r in rows]


def find_diagnosis(store: Store, ref: str) -> dict[str, Any]:
    """A stored diagnosis by id, or the newest one of an eval set by its name."""
    row = store.query_one("SELECT result FROM diagnoses WHERE id = ? OR evalset = ? "
                          "ORDER BY created DESC LIMIT 1", [ref, ref])
    if row is None:
        raise NotFoundError(f"no diagnosis {ref!r} (an id, or an eval set that "
                            "`gateway diagnose` has run on)")
    result: dict[str, Any] = json.loads(row["result"])
    return result


def diagnose(config: Config, store: Store, evalset: EvalSet | str | Path, base: str,
             fine_tune: str, *, retrieve_k: int = 4, fewshot_k: int = 3, scorer: str | None = None,
             min_effect: float = MIN_EFFECT, corpus: str | Path | None = None,
             **run_options: Any) -> Diagnosis:
    """Run (or reuse from the cache) the contenders, then analyse and store the diagnosis.
    `run_options` go to the runner (limit, concurrency, progress, endpoint...)."""
    if not isinstance(evalset, EvalSet):
        evalset = load_evalset(evalset)
    decider = pick_scorer(evalset, scorer)
    if evalset.train_path is None:
        fewshot_k = 0  # no pool to draw shots from
    plan = contender_runs(base, fine_tune, retrieve_k, fewshot_k)
    run_ids = run_evals_sync(config, store, evalset, [(model, prompt) for _, model, prompt in plan],
                             corpus=corpus, **run_options)
    runs = {name: run_id for (name, _, _), run_id in zip(plan, run_ids, strict=True)}
    diagnosis = analyse(store, evalset, runs, decider, min_effect)
    if not fewshot_k:
        diagnosis.notes.append("no few-shot contender: the eval set has no train file (or --fewshot 0)")
    store_diagnosis(store, evalset, diagnosis)
    return diagnosis
