"""`gateway compare` over a million stored sample rows: the target is at most 2 s.

The baseline is the naive way: fetch both runs' per-sample scores into Python,
pair them in a dict and compute the same paired statistics there, so the ratio
shows what pushing the joins and sums into DuckDB buys.

Run: python benchmarks/compare_bench.py [ROWS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_SECONDS = 2.0


def _fill(store: Any, rows: int) -> tuple[str, str]:
    """Two completed runs of rows/2 samples each, scored by a pass/fail and a graded scorer."""
    from gateway.util import utcnow

    per_run = rows // 2
    now = utcnow()
    with store.transaction() as con:
        for run_id, model, skew in (("evalrun-benchA", "base", 0), ("evalrun-benchB", "ft", 1)):
            con.execute(
                """INSERT INTO eval_runs (id, evalset, evalset_sha256, model, status,
                   sample_count, created) VALUES (?, 'bench', 'x', ?, 'completed', ?, ?)""",
                [run_id, model, per_run, now],
            )
            # Deterministic pseudo-random outcomes from hash(); B is right a little more often.
            con.execute(
                """INSERT INTO eval_samples (run_id, sample_id, output, latency_ms, prompt_tokens,
                   completion_tokens, cost, error, cached, created)
                   SELECT ?, 's' || i, 'out', 50 + hash(i, ?) % 200, 40, 8, NULL, NULL, false, ?
                   FROM range(?) t(i)""",
                [run_id, skew, now, per_run],
            )
            con.execute(
                """INSERT INTO eval_scores (run_id, sample_id, scorer, value, passed, detail)
                   SELECT ?, 's' || i, 'exact', v, v = 1.0, NULL FROM (
                     SELECT i, CASE WHEN hash(i, 7 + ?) % 100 < 60 + 2 * ? THEN 1.0 ELSE 0.0 END AS v
                     FROM range(?) t(i))""",
                [run_id, skew, skew, per_run],
            )
            con.execute(
                """INSERT INTO eval_scores (run_id, sample_id, scorer, value, passed, detail)
                   SELECT ?, 's' || i, 'f1', (hash(i, 11 + ?) % 1000) / 1000.0, NULL, NULL
                   FROM range(?) t(i)""",
                [run_id, skew, per_run],
            )
    return "evalrun-benchA", "evalrun-benchB"


def _naive(store: Any, run_a: str, run_b: str) -> float:
    """Seconds for the Python-side version of the per-scorer paired statistics."""
    from gateway.evaluation import stats

    started = time.perf_counter()
    with store.connect() as con:
        fetched = {
            run: con.execute(
                "SELECT scorer, sample_id, value, passed FROM eval_scores "
                "WHERE run_id = ? AND sample_id <> '*'", [run]).fetchall()
            for run in (run_a, run_b)
        }
    by_key = {(scorer, sid): (value, passed) for scorer, sid, value, passed in fetched[run_a]}
    pairs: dict[str, tuple[list[float], list[float]]] = {}
    discordant: dict[str, list[int]] = {}
    for scorer, sid, value, passed in fetched[run_b]:
        if (scorer, sid) in by_key:
            a_value, a_passed = by_key[(scorer, sid)]
            xs, ys = pairs.setdefault(scorer, ([], []))
            xs.append(a_value)
            ys.append(value)
            if passed is not None and a_passed is not None and passed != a_passed:
                discordant.setdefault(scorer, [0, 0])[int(bool(passed))] += 1
    for scorer, (xs, ys) in pairs.items():
        stats.mean_ci(xs)
        stats.mean_ci(ys)
        stats.paired_diff(xs, ys)
        stats.win_tie_loss(xs, ys)
        if scorer in discordant:
            stats.mcnemar_exact(*discordant[scorer])
    return time.perf_counter() - started


def bench_compare(rows: int = 1_000_000) -> dict[str, float]:
    """Time compare_runs over `rows` stored sample rows (two runs of rows/2)."""
    from gateway.evaluation.compare import compare_runs
    from gateway.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        started = time.perf_counter()
        run_a, run_b = _fill(store, rows)
        fill_s = time.perf_counter() - started
        started = time.perf_counter()
        compare_runs(store, run_a, run_b)  # the first call also checks migrations
        first_s = time.perf_counter() - started
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            result = compare_runs(store, run_a, run_b)
            timings.append(time.perf_counter() - started)
        with_diffs = time.perf_counter()
        compare_runs(store, run_a, run_b, diffs=True)
        diffs_s = time.perf_counter() - with_diffs
        naive_s = _naive(store, run_a, run_b)
    assert result.shared == rows // 2
    return {
        "rows": float(rows), "fill_s": fill_s, "first_s": first_s, "compare_s": min(timings),
        "compare_diffs_s": diffs_s, "naive_python_s": naive_s, "target_s": TARGET_SECONDS,
    }


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    r = bench_compare(rows)
    verdict = "within" if r["compare_s"] <= TARGET_SECONDS else "OVER"
    print(f"compare over {int(r['rows']):,} sample rows (2 scorers): {r['compare_s']:.3f} s "
          f"({verdict} the {TARGET_SECONDS:.0f} s target; first call {r['first_s']:.3f} s; "
          f"with --diffs {r['compare_diffs_s']:.3f} s); baseline, pairing in Python: "
          f"{r['naive_python_s']:.3f} s (naive/compare {r['naive_python_s'] / r['compare_s']:.1f}x); "
          f"filling the store took {r['fill_s']:.1f} s")


if __name__ == "__main__":
    main()
