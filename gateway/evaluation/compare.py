"""Compare two eval runs with paired statistics, and decide regressions.

The per-sample work (joining the runs' scores on sample_id, sums, variances,
discordant pass/fail counts, latency quantiles) runs as DuckDB SQL; only a few
aggregates per scorer come back to Python, so a comparison over a million
stored rows takes well under two seconds. Cluster values and corpus-level
bootstraps need the eval set itself, loaded by name; if it cannot be loaded
the comparison goes on without them and says so in `notes`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from gateway.errors import GatewayError, NotFoundError
from gateway.evaluation import stats
from gateway.evaluation.prompts import display_name
from gateway.evaluation.setview import EvalSetView, corpus_metric, load_view
from gateway.evaluation.stats import BootstrapResult, Interval
from gateway.store import Store, rows_as_dicts

DIFF_LIMIT = 200


@dataclass
class RunInfo:
    id: str
    evalset: str
    model: str
    prompt_variant: str | None
    status: str
    sample_count: int | None
    created: str | None
    evalset_sha256: str | None = None
    # The folder the set was loaded from, so a set given as a path is found again.
    evalset_path: str | None = None

    @property
    def label(self) -> str:
        """What people read: the model, with its prompt variant in brackets."""
        return display_name(self.model, self.prompt_variant)


@dataclass
class ScorerComparison:
    scorer: str
    kind: str  # "pass_fail" | "score" | "corpus"
    n: int
    a: Interval | None
    b: Interval | None
    diff: Interval | None
    wins: int = 0
    ties: int = 0
    losses: int = 0
    # McNemar: A passed and B failed (a_only), the reverse (b_only), exact p.
    a_only: int | None = None
    b_only: int | None = None
    mcnemar_p: float | None = None
    corpus_a: float | None = None
    corpus_b: float | None = None
    bootstrap: BootstrapResult | None = None

    def decision_interval(self) -> tuple[float, float, float] | None:
        """(estimate, low, high) that verdicts use: the bootstrap for corpus scores."""
        if self.bootstrap is not None:
            return self.bootstrap.diff, self.bootstrap.low, self.bootstrap.high
        d = self.diff
        if d is not None and d.low is not None and d.high is not None:
            return d.estimate, d.low, d.high
        return None

    def verdict(self, max_drop: float = 0.0) -> str:
        """better | worse | no significant difference | regression | untested."""
        found = self.decision_interval()
        if found is None:
            return "untested"
        _, low, high = found
        if high < -max_drop:
            return "regression" if max_drop > 0 else "worse"
        if low > 0:
            return "better"
        if high < 0:
            return "worse"
        return "no significant difference"


@dataclass
class RunUsage:
    samples: int
    errors: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_mean_ms: float | None
    prompt_tokens_mean: float | None
    completion_tokens_mean: float | None
    cost: float | None

    @property
    def cost_per_1000(self) -> float | None:
        """The run's cost scaled to 1,000 samples (USD); None when no sample had a price."""
        if self.cost is None or not self.samples:
            return None
        return float(self.cost) / self.samples * 1000


@dataclass
class Comparison:
    run_a: RunInfo
    run_b: RunInfo
    shared: int
    only_a: int
    only_b: int
    scorers: list[ScorerComparison]
    usage_a: RunUsage
    usage_b: RunUsage
    clustered_by: str | None = None
    notes: list[str] = field(default_factory=list)
    diffs: list[dict[str, Any]] | None = None

    def scorer(self, name: str) -> ScorerComparison:
        for s in self.scorers:
            if s.scorer == name:
                return s
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_a"]["label"] = self.run_a.label
        data["run_b"]["label"] = self.run_b.label
        data["usage_a"]["cost_per_1000"] = self.usage_a.cost_per_1000
        data["usage_b"]["cost_per_1000"] = self.usage_b.cost_per_1000
        for entry, sc in zip(data["scorers"], self.scorers, strict=True):
            entry["verdict"] = sc.verdict()
        result: dict[str, Any] = finite(data)
        return result


def finite(value: Any) -> Any:
    """NaN/inf become None, so the JSON output stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


# ---------------------------------------------------------------- runs


def get_run(store: Store, ref: str) -> RunInfo:
    """An eval run by id or unique id prefix."""
    rows = store.query("SELECT * FROM eval_runs WHERE id = ?", [ref])
    if not rows:
        rows = store.query(
            "SELECT * FROM eval_runs WHERE starts_with(id, ?) ORDER BY id LIMIT 6", [ref]
        )
    if not rows:
        raise NotFoundError(f"no eval run {ref!r}; `gateway runs list` shows the runs")
    if len(rows) > 1:
        ids = ", ".join(r["id"] for r in rows[:5])
        raise GatewayError(f"{ref!r} matches several eval runs ({ids}); give more of the id")
    r = rows[0]
    created = r.get("created")
    settings = json.loads(r["settings"]) if isinstance(r.get("settings"), str) else {}
    return RunInfo(
        id=r["id"], evalset=r["evalset"], model=r["model"], prompt_variant=r["prompt_variant"],
        status=r["status"], sample_count=r["sample_count"],
        created=created.isoformat() if isinstance(created, datetime) else None,
        evalset_sha256=r.get("evalset_sha256"), evalset_path=settings.get("evalset_path"),
    )


# ---------------------------------------------------------------- SQL

_JOINED = """
WITH a AS (SELECT sample_id, scorer, value, passed FROM eval_scores
           WHERE run_id = $1 AND sample_id <> '*'),
     b AS (SELECT sample_id, scorer, value, passed FROM eval_scores
           WHERE run_id = $2 AND sample_id <> '*'),
     j AS (SELECT scorer, sample_id, a.value AS va, b.value AS vb, a.passed AS pa,
                  b.passed AS pb, b.value - a.value AS d
           FROM a JOIN b USING (scorer, sample_id))
"""

_PER_SCORER = _JOINED + """
SELECT scorer, count(*) AS n, avg(va) AS mean_a, var_samp(va) AS var_a,
       avg(vb) AS mean_b, var_samp(vb) AS var_b, avg(d) AS mean_d, var_samp(d) AS var_d,
       count_if(d > 0) AS wins, count_if(d = 0) AS ties, count_if(d < 0) AS losses,
       count(pa) AS pa_n, count(pb) AS pb_n, bool_and(va IN (0, 1) AND vb IN (0, 1)) AS binary,
       count_if(pa AND NOT pb) AS a_only, count_if(pb AND NOT pa) AS b_only
FROM j GROUP BY scorer ORDER BY scorer
"""

# Cluster-robust sums: residuals summed within clusters, then squared and summed.
_CLUSTERED = _JOINED + """,
c AS (SELECT unnest($3::VARCHAR[]) AS sample_id, unnest($4::VARCHAR[]) AS cluster),
jc AS (SELECT j.scorer, coalesce(c.cluster, '#' || j.sample_id) AS cluster, va, vb, d
       FROM j LEFT JOIN c USING (sample_id)),
m AS (SELECT scorer, avg(va) AS ma, avg(vb) AS mb, avg(d) AS md FROM jc GROUP BY scorer),
g AS (SELECT scorer, cluster, sum(va) AS sa, sum(vb) AS sb, sum(d) AS sd, count(*) AS k
      FROM jc GROUP BY scorer, cluster)
SELECT g.scorer, count(*) AS clusters, sum((sa - k * ma) ^ 2) AS rss_a,
       sum((sb - k * mb) ^ 2) AS rss_b, sum((sd - k * md) ^ 2) AS rss_d
FROM g JOIN m USING (scorer) GROUP BY g.scorer
"""

_COVERAGE = """
SELECT count_if(a.sample_id IS NOT NULL AND b.sample_id IS NOT NULL) AS shared,
       count_if(b.sample_id IS NULL) AS only_a, count_if(a.sample_id IS NULL) AS only_b
FROM (SELECT sample_id FROM eval_samples WHERE run_id = $1) a
FULL JOIN (SELECT sample_id FROM eval_samples WHERE run_id = $2) b USING (sample_id)
"""

_USAGE = """
SELECT run_id, count(*) AS samples, count(error) AS errors,
       quantile_cont(latency_ms, 0.5) AS p50, quantile_cont(latency_ms, 0.95) AS p95,
       avg(latency_ms) AS mean_latency, avg(prompt_tokens) AS prompt_mean,
       avg(completion_tokens) AS completion_mean, sum(cost) AS cost
FROM eval_samples WHERE run_id IN ($1, $2) GROUP BY run_id
"""

_CORPUS = "SELECT run_id, scorer, value FROM eval_scores WHERE run_id IN ($1, $2) AND sample_id = '*'"

_DIFFS = _JOINED + """
SELECT j.sample_id, j.scorer, va AS a_value, vb AS b_value, pa AS a_passed, pb AS b_passed,
       sa.output AS a_output, sb.output AS b_output
FROM j
LEFT JOIN eval_samples sa ON sa.run_id = $1 AND sa.sample_id = j.sample_id
LEFT JOIN eval_samples sb ON sb.run_id = $2 AND sb.sample_id = j.sample_id
WHERE pa IS DISTINCT FROM pb OR (pa IS NULL AND pb IS NULL AND va <> vb)
ORDER BY j.sample_id, j.scorer LIMIT $3
"""


def _usage(row: dict[str, Any] | None) -> RunUsage:
    row = row or {}
    return RunUsage(
        samples=int(row.get("samples") or 0), errors=int(row.get("errors") or 0),
        latency_p50_ms=row.get("p50"), latency_p95_ms=row.get("p95"),
        latency_mean_ms=row.get("mean_latency"), prompt_tokens_mean=row.get("prompt_mean"),
        completion_tokens_mean=row.get("completion_mean"), cost=row.get("cost"),
    )


# ---------------------------------------------------------------- compare


def compare_runs(
    store: Store,
    run_a: str,
    run_b: str,
    diffs: bool = False,
    *,
    diff_limit: int = DIFF_LIMIT,
    bootstrap_resamples: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Compare run B against run A (the baseline) over the samples both scored."""
    a, b = get_run(store, run_a), get_run(store, run_b)
    notes: list[str] = []
    if a.evalset != b.evalset:
        notes.append(f"the runs used different eval sets ({a.evalset} vs {b.evalset})")
    elif a.evalset_sha256 and b.evalset_sha256 and a.evalset_sha256 != b.evalset_sha256:
        notes.append("the eval set changed between the two runs (different sha256)")
    for run in (a, b):
        if run.status != "completed":
            notes.append(f"run {run.id} is {run.status}, not completed")

    view, note = load_view(a.evalset, a.evalset_sha256, a.evalset_path)
    if note:
        notes.append(note)
    cluster_params = view.cluster_lists() if view is not None and view.cluster else None

    params = [a.id, b.id]
    with store.connect() as con:
        per_scorer = rows_as_dicts(con, _PER_SCORER, params)
        clustered = {
            r["scorer"]: r for r in rows_as_dicts(con, _CLUSTERED, [*params, *cluster_params])
        } if cluster_params else {}
        coverage = rows_as_dicts(con, _COVERAGE, params)[0]
        usage = {r["run_id"]: r for r in rows_as_dicts(con, _USAGE, params)}
        corpus_rows = rows_as_dicts(con, _CORPUS, params)
        diff_rows = rows_as_dicts(con, _DIFFS, [*params, diff_limit]) if diffs else None

    if coverage["only_a"] or coverage["only_b"]:
        notes.append(
            f"{coverage['only_a']} samples only in A and {coverage['only_b']} only in B "
            "are left out of the paired comparison"
        )

    results: dict[str, ScorerComparison] = {}
    for r in per_scorer:
        n = int(r["n"])
        cl = clustered.get(r["scorer"])
        if cl is not None:
            g = int(cl["clusters"])
            ia = stats.clustered_from_sums(n, r["mean_a"], g, cl["rss_a"])
            ib = stats.clustered_from_sums(n, r["mean_b"], g, cl["rss_b"])
            if r["binary"]:  # a pass rate cannot leave [0, 1]
                ia, ib = stats.clamp(ia, 0.0, 1.0), stats.clamp(ib, 0.0, 1.0)
            idiff = stats.clustered_from_sums(n, r["mean_d"], g, cl["rss_d"])
        else:
            ia = stats.run_mean_interval(n, r["mean_a"], r["var_a"], bool(r["binary"]))
            ib = stats.run_mean_interval(n, r["mean_b"], r["var_b"], bool(r["binary"]))
            idiff = stats.interval_from_moments(n, r["mean_d"], r["var_d"], method="paired-t")
        sc = ScorerComparison(
            scorer=r["scorer"], kind="score", n=n, a=ia, b=ib, diff=idiff,
            wins=int(r["wins"]), ties=int(r["ties"]), losses=int(r["losses"]),
        )
        if r["pa_n"] == n and r["pb_n"] == n:
            sc.kind = "pass_fail"
            sc.a_only, sc.b_only = int(r["a_only"]), int(r["b_only"])
            sc.mcnemar_p = stats.mcnemar_exact(sc.a_only, sc.b_only)
        results[sc.scorer] = sc

    for r in corpus_rows:
        sc = results.get(r["scorer"]) or ScorerComparison(r["scorer"], "corpus", 0, None, None, None)
        sc.kind = "corpus"
        if r["run_id"] == a.id:
            sc.corpus_a = r["value"]
        else:
            sc.corpus_b = r["value"]
        results[sc.scorer] = sc

    corpus = [sc for sc in results.values() if sc.kind == "corpus"]
    if corpus and view is None:
        notes.append("corpus-level scores were not bootstrapped: the eval set could not be loaded")
    elif corpus and view is not None:
        _bootstrap(store, view, a.id, b.id, corpus, bootstrap_resamples, seed, notes)

    return Comparison(
        run_a=a, run_b=b, shared=int(coverage["shared"]), only_a=int(coverage["only_a"]),
        only_b=int(coverage["only_b"]), scorers=sorted(results.values(), key=lambda s: s.scorer),
        usage_a=_usage(usage.get(a.id)), usage_b=_usage(usage.get(b.id)),
        clustered_by=view.cluster if cluster_params and view is not None else None,
        notes=notes, diffs=diff_rows,
    )


def _bootstrap(
    store: Store,
    view: EvalSetView,
    run_a: str,
    run_b: str,
    corpus: list[ScorerComparison],
    resamples: int,
    seed: int,
    notes: list[str],
) -> None:
    """Paired bootstrap of each corpus-level scorer over the shared samples."""
    rows = store.query(
        """SELECT a.sample_id, a.output AS a_output, b.output AS b_output
           FROM eval_samples a JOIN eval_samples b USING (sample_id)
           WHERE a.run_id = ? AND b.run_id = ? ORDER BY a.sample_id""",
        [run_a, run_b],
    )
    a_samples = view.samples({r["sample_id"]: r["a_output"] or "" for r in rows})
    b_samples = view.samples({r["sample_id"]: r["b_output"] or "" for r in rows})
    if not a_samples:
        notes.append("corpus-level scores were not bootstrapped: no shared samples")
        return
    for sc in corpus:
        metric, why = corpus_metric(view, sc.scorer)
        if metric is None:
            notes.append(f"{sc.scorer}: not bootstrapped ({why})")
            continue
        sc.bootstrap = stats.paired_bootstrap(a_samples, b_samples, metric, resamples, seed)
        sc.n = len(a_samples)
