"""Reading eval runs back: listings, per-scorer summaries, and the evals run
on each new model version (what `gateway models show VERSION` prints)."""

from __future__ import annotations

import json
from typing import Any

from gateway.evaluation.prompts import display_name
from gateway.evaluation.stats import run_mean_interval
from gateway.store import Store
from gateway.util import utcnow

_SUMMARY = """
SELECT scorer, count(*) AS n, avg(value) AS mean, var_samp(value) AS variance,
       bool_and(value IN (0, 1)) AS binary,
       avg(CASE WHEN passed THEN 1.0 WHEN NOT passed THEN 0.0 END) AS pass_rate
FROM eval_scores WHERE run_id = ? AND sample_id <> '*' GROUP BY scorer ORDER BY scorer
"""


def list_runs(store: Store, *, evalset: str | None = None, model: str | None = None,
              limit: int = 50) -> list[dict[str, Any]]:
    """The latest runs, newest first, with how many samples each has stored."""
    rows = store.query(
        """SELECT r.id, r.evalset, r.model, r.model_version_id, r.prompt_variant, r.endpoint,
                  r.status, r.sample_count, r.created, r.finished,
                  (SELECT count(*) FROM eval_samples s WHERE s.run_id = r.id) AS done,
                  (SELECT count(error) FROM eval_samples s WHERE s.run_id = r.id) AS errors
           FROM eval_runs r
           WHERE (? IS NULL OR r.evalset = ?) AND (? IS NULL OR r.model = ?)
           ORDER BY r.created DESC LIMIT ?""",
        [evalset, evalset, model, model, limit],
    )
    for row in rows:
        row["name"] = display_name(row["model"], row["prompt_variant"])
    return rows


def run_details(store: Store, run_id: str) -> dict[str, Any]:
    """One run's row with settings and environment decoded (id or unique prefix)."""
    from gateway.evaluation.compare import get_run

    info = get_run(store, run_id)
    row = store.query_one("SELECT * FROM eval_runs WHERE id = ?", [info.id]) or {}
    for key in ("settings", "environment"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    usage = store.query_one(
        """SELECT count(*) AS done, count(error) AS errors, count_if(cached) AS cached,
                  avg(latency_ms) AS mean_latency_ms, sum(prompt_tokens) AS prompt_tokens,
                  sum(completion_tokens) AS completion_tokens, sum(cost) AS cost,
                  -- retrieve:K runs: the share of rows naming a gold passage that got it
                  avg(CASE WHEN gold_retrieved THEN 1.0 WHEN NOT gold_retrieved THEN 0.0 END)
                      AS retrieval_recall,
                  count(gold_retrieved) AS retrieval_judged
           FROM eval_samples WHERE run_id = ?""",
        [info.id],
    )
    row.update(usage or {})
    retrieval = (row.get("settings") or {}).get("retrieval") or {}
    row["retrieve_k"] = retrieval.get("k")
    row["name"] = display_name(row["model"], row.get("prompt_variant"))
    return row


def scorer_summary(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Per scorer: n, mean and its 95% interval (Wilson for pass rates), pass rate; corpus-level too."""
    out: list[dict[str, Any]] = []
    for row in store.query(_SUMMARY, [run_id]):
        ci = run_mean_interval(int(row["n"]), float(row["mean"]), row["variance"], bool(row["binary"]))
        out.append({"scorer": row["scorer"], "n": row["n"], "mean": row["mean"],
                    "ci_low": ci.low, "ci_high": ci.high, "pass_rate": row["pass_rate"],
                    "level": "sample"})
    corpus = store.query(
        "SELECT scorer, value, passed FROM eval_scores WHERE run_id = ? AND sample_id = '*' "
        "ORDER BY scorer", [run_id])
    for row in corpus:
        out.append({"scorer": row["scorer"], "n": None, "mean": row["value"], "ci_low": None,
                    "ci_high": None, "pass_rate": None, "level": "corpus"})
    return out


def link_version_eval(store: Store, version_id: str, evalset: str, run_id: str,
                      baseline_run_id: str | None, role: str) -> None:
    """Record that `run_id` evaluated a new version against a baseline run (autoeval)."""
    store.execute(
        "INSERT INTO version_evals (version_id, evalset, run_id, baseline_run_id, role, created) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [version_id, evalset, run_id, baseline_run_id, role, utcnow()],
    )


def version_eval_summary(store: Store, version_id: str) -> list[dict[str, Any]]:
    """The evals run on a new version: per eval set, baseline and scorer, both means and the delta.

    Rows: evalset, role (base | prod | candidate), scorer, run_id, mean,
    baseline_run_id, baseline_mean, delta (mean - baseline_mean), n, status.
    """
    links = store.query(
        """SELECT v.evalset, v.role, v.run_id, v.baseline_run_id, r.status
           FROM version_evals v LEFT JOIN eval_runs r ON r.id = v.run_id
           WHERE v.version_id = ? ORDER BY v.created, v.evalset, v.role""",
        [version_id],
    )
    out: list[dict[str, Any]] = []
    for link in links:
        baseline = {}
        if link["baseline_run_id"]:
            baseline = {s["scorer"]: s for s in scorer_summary(store, link["baseline_run_id"])}
        for score in scorer_summary(store, link["run_id"]):
            base = baseline.get(score["scorer"])
            base_mean = base["mean"] if base else None
            out.append({
                "evalset": link["evalset"], "role": link["role"], "scorer": score["scorer"],
                "run_id": link["run_id"], "mean": score["mean"],
                "baseline_run_id": link["baseline_run_id"], "baseline_mean": base_mean,
                "delta": score["mean"] - base_mean if base_mean is not None else None,
                "n": score["n"], "status": link["status"],
            })
    return out


def recall_line(details: dict[str, Any]) -> str | None:
    """`recall@4 0.850 (34 of 40 rows with a gold passage)`, for a retrieve:K run."""
    if not details.get("retrieve_k") or not details.get("retrieval_judged"):
        return None
    judged = int(details["retrieval_judged"])
    hits = round(float(details["retrieval_recall"]) * judged)
    return (f"recall@{details['retrieve_k']} {details['retrieval_recall']:.3f} "
            f"({hits} of {judged} rows with a gold passage)")
