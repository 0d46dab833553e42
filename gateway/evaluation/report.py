"""An HTML report on eval runs: one self-contained file, charts as inline SVG.

The first run is the baseline and every other run is compared with it
(compare_runs). The page holds each run's per-scorer means with 95% CIs,
latency box plots, the pairwise comparisons with a verdict sentence per
scorer, and a per-sample table of the samples whose outcome differs. With a
stored diagnosis it opens with the 2×2 chart and the verdict. Nothing
is fetched from the network; the data behind the page is embedded as JSON in
<script type="application/json" id="report-data">.
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from gateway.evaluation import stats
from gateway.evaluation.compare import Comparison, RunInfo, compare_runs, finite, get_run
from gateway.evaluation.report_diagnosis import diagnosis_section
from gateway.evaluation.setview import load_view
from gateway.evaluation.verdicts import verdict_sentence
from gateway.store import Store
from gateway.util import utcnow

EXCERPT = 240
COLORS = ("#3b6fd8", "#e0823d", "#3a9d5d", "#9b59b6", "#c0392b", "#16a2b8")


# ---------------------------------------------------------------- data


def _run_scores(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    """Per scorer: the run's own mean with a 95% CI, and its corpus value."""
    rows = store.query(
        """SELECT scorer, count(*) FILTER (sample_id <> '*') AS n,
                  avg(value) FILTER (sample_id <> '*') AS mean,
                  var_samp(value) FILTER (sample_id <> '*') AS var,
                  bool_and(value IN (0, 1)) FILTER (sample_id <> '*') AS binary,
                  max(value) FILTER (sample_id = '*') AS corpus
           FROM eval_scores WHERE run_id = ? GROUP BY scorer ORDER BY scorer""",
        [run_id],
    )
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        n = int(r["n"])
        ci = stats.run_mean_interval(n, r["mean"], r["var"], bool(r["binary"])) if n else None
        out[r["scorer"]] = {"mean_ci": ci.as_dict() if ci else None, "corpus": r["corpus"]}
    return out


def _latency(store: Store, run_id: str) -> dict[str, Any] | None:
    row = store.query_one(
        """SELECT count(latency_ms) AS n, min(latency_ms) AS min,
                  quantile_cont(latency_ms, 0.25) AS p25, quantile_cont(latency_ms, 0.5) AS p50,
                  quantile_cont(latency_ms, 0.75) AS p75, quantile_cont(latency_ms, 0.95) AS p95,
                  max(latency_ms) AS max, avg(latency_ms) AS mean
           FROM eval_samples WHERE run_id = ? AND latency_ms IS NOT NULL""",
        [run_id],
    )
    return row if row and row["n"] else None


def _excerpt(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


def _sample_table(
    store: Store, runs: list[RunInfo], comparisons: list[Comparison], limit: int
) -> list[dict[str, Any]]:
    """Samples whose outcome differs between the baseline and any other run."""
    ids = sorted({d["sample_id"] for c in comparisons for d in c.diffs or []})[:limit]
    if not ids:
        return []
    run_ids = [r.id for r in runs]
    outputs = store.query(
        """SELECT run_id, sample_id, output, error FROM eval_samples
           WHERE run_id IN (SELECT unnest(?::VARCHAR[])) AND sample_id IN (SELECT unnest(?::VARCHAR[]))""",
        [run_ids, ids],
    )
    scores = store.query(
        """SELECT run_id, sample_id, scorer, value, passed FROM eval_scores
           WHERE run_id IN (SELECT unnest(?::VARCHAR[])) AND sample_id IN (SELECT unnest(?::VARCHAR[]))""",
        [run_ids, ids],
    )
    view, _ = load_view(runs[0].evalset, runs[0].evalset_sha256, runs[0].evalset_path)
    table: dict[str, dict[str, Any]] = {}
    for sid in ids:
        row = view.row(sid) if view is not None else None
        user = [m for m in (row.messages if row else []) if m.get("role") == "user"]
        content = user[-1].get("content") if user else None
        ideal = row.ideal if row else None
        table[sid] = {
            "sample_id": sid,
            "input": _excerpt(content if isinstance(content, str) else json.dumps(content)),
            "ideal": " | ".join(ideal) if isinstance(ideal, list) else ideal,
            "runs": {rid: {"output": None, "error": None, "scores": {}} for rid in run_ids},
        }
    for o in outputs:
        entry = table[o["sample_id"]]["runs"][o["run_id"]]
        entry["output"], entry["error"] = _excerpt(o["output"]), o["error"]
    for s in scores:
        table[s["sample_id"]]["runs"][s["run_id"]]["scores"][s["scorer"]] = {
            "value": s["value"], "passed": s["passed"]}
    return list(table.values())


def build_report_data(store: Store, run_refs: list[str], diff_limit: int = 200,
                      diagnosis: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-ready data (with a stored diagnosis, if given)."""
    if not run_refs:
        raise ValueError("a report needs at least one run")
    runs = [get_run(store, ref) for ref in run_refs]
    comparisons = [compare_runs(store, runs[0].id, r.id, diffs=True, diff_limit=diff_limit)
                   for r in runs[1:]]
    pairwise = []
    for comp in comparisons:
        data = comp.as_dict()
        data["sentences"] = {sc.scorer: verdict_sentence(comp, sc) for sc in comp.scorers}
        pairwise.append(data)
    return {
        "generated": utcnow().isoformat(timespec="seconds"),
        "runs": [{**r.__dict__, "label": r.label} for r in runs],
        "scores": {r.id: _run_scores(store, r.id) for r in runs},
        "latency": {r.id: _latency(store, r.id) for r in runs},
        "comparisons": pairwise,
        "samples": _sample_table(store, runs, comparisons, diff_limit),
        "diagnosis": diagnosis,
    }


# ---------------------------------------------------------------- SVG


def _scale(lo: float, hi: float, x0: float, x1: float) -> Any:
    span = (hi - lo) or 1.0
    return lambda v: x0 + (v - lo) / span * (x1 - x0)


def _bars_svg(entries: list[tuple[str, float, float | None, float | None, str]]) -> str:
    """Horizontal bars (label, value, low, high, color) with CI whiskers."""
    width, left, right, row_h = 760, 260, 60, 28
    values: list[float] = [
        x for _, value, low, high, _ in entries for x in (value, low, high) if x is not None
    ]
    # Scores in [0, 1] keep a 0–1 axis, so runs compare at a glance.
    lo, hi = min([0.0, *values]), max([1.0, *values])
    x = _scale(lo, hi, left, width - right)
    height = row_h * len(entries) + 30
    parts = [f'<svg width="{width}" height="{height}" role="img">']
    for tick in (lo, (lo + hi) / 2, hi):
        parts.append(f'<line class="grid" x1="{x(tick):.1f}" y1="0" x2="{x(tick):.1f}" y2="{height - 20}"/>'
                     f'<text x="{x(tick):.1f}" y="{height - 5}" text-anchor="middle">{tick:.3g}</text>')
    for i, (label, value, low, high, color) in enumerate(entries):
        y = i * row_h + 6
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{escape(label[:40])}</text>')
        x_start, x_end = sorted((x(0.0 if lo <= 0 <= hi else lo), x(value)))
        parts.append(f'<rect x="{x_start:.1f}" y="{y}" width="{max(x_end - x_start, 1):.1f}" '
                     f'height="{row_h - 10}" fill="{color}" opacity="0.8"/>')
        if low is not None and high is not None:
            mid = y + (row_h - 10) / 2
            parts.append(f'<line class="err" x1="{x(low):.1f}" y1="{mid}" x2="{x(high):.1f}" y2="{mid}"/>'
                         f'<line class="err" x1="{x(low):.1f}" y1="{mid - 5}" x2="{x(low):.1f}" y2="{mid + 5}"/>'
                         f'<line class="err" x1="{x(high):.1f}" y1="{mid - 5}" x2="{x(high):.1f}" y2="{mid + 5}"/>')
        ci = f" ({low:.3f}–{high:.3f})" if low is not None and high is not None else ""
        parts.append(f'<text x="{width - right + 4}" y="{y + 14}">{value:.3f}</text>'
                     f"<title>{escape(label)}: {value:.4f}{ci}</title>")
    parts.append("</svg>")
    return "".join(parts)


def _boxes_svg(entries: list[tuple[str, dict[str, Any], str]]) -> str:
    """Latency box plots: box p25–p75, median line, whiskers min–p95, a dot at max."""
    width, left, right, row_h = 760, 260, 60, 34
    x = _scale(0.0, max(float(q["max"]) for _, q, _ in entries), left, width - right)
    height = row_h * len(entries) + 30
    parts = [f'<svg width="{width}" height="{height}" role="img">']
    for i, (label, q, color) in enumerate(entries):
        y, h = i * row_h + 6, row_h - 12
        mid = y + h / 2
        parts.append(
            f'<text x="{left - 8}" y="{mid + 4}" text-anchor="end">{escape(label[:40])}</text>'
            f'<line class="err" x1="{x(q["min"]):.1f}" y1="{mid}" x2="{x(q["p95"]):.1f}" y2="{mid}"/>'
            f'<rect x="{x(q["p25"]):.1f}" y="{y}" width="{max(x(q["p75"]) - x(q["p25"]), 1):.1f}" '
            f'height="{h}" fill="{color}" opacity="0.6"/>'
            f'<line class="err" x1="{x(q["p50"]):.1f}" y1="{y}" x2="{x(q["p50"]):.1f}" y2="{y + h}"/>'
            f'<circle cx="{x(q["max"]):.1f}" cy="{mid}" r="2.5" fill="{color}"/>'
            f'<text x="{width - right + 4}" y="{mid + 4}">p50 {q["p50"]:.0f}</text>'
            f'<title>{escape(label)}: p50 {q["p50"]:.1f} ms, p95 {q["p95"]:.1f} ms, max {q["max"]:.1f} ms</title>'
        )
    axis_max = float(entries[0][1]["max"]) if len(entries) == 1 else max(float(q["max"]) for _, q, _ in entries)
    parts.append(f'<text x="{left}" y="{height - 5}">0 ms</text>'
                 f'<text x="{width - right}" y="{height - 5}" text-anchor="end">{axis_max:.0f} ms</text></svg>')
    return "".join(parts)


# ---------------------------------------------------------------- HTML


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(rows_) + "</tr>" for rows_ in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: Any, cls: str = "") -> str:
    text = "" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
    return f'<td class="{cls}">{escape(text)}</td>' if cls else f"<td>{escape(text)}</td>"


def render_html(data: dict[str, Any]) -> str:
    runs = data["runs"]
    color = {r["id"]: COLORS[i % len(COLORS)] for i, r in enumerate(runs)}
    body: list[str] = ["<h2>Runs</h2>", _table(
        ["", "model", "run", "eval set", "status", "samples"],
        [[f'<td><svg width="12" height="12"><rect width="12" height="12" fill="{color[r["id"]]}"/></svg></td>',
          _td(r["label"]), _td(r["id"]), _td(r["evalset"]), _td(r["status"]), _td(r["sample_count"], "num")]
         for r in runs])]
    if data.get("diagnosis"):
        body.insert(0, diagnosis_section(data["diagnosis"], data["scores"], color))

    body.append("<h2>Scores per run (mean, 95% CI)</h2>")
    scorers = sorted({s for per_run in data["scores"].values() for s in per_run})
    for scorer in scorers:
        entries = []
        for r in runs:
            s = data["scores"][r["id"]].get(scorer)
            if s is None:
                continue
            ci = s["mean_ci"]
            if ci is not None:
                entries.append((r["label"], ci["estimate"], ci["low"], ci["high"], color[r["id"]]))
            if s["corpus"] is not None:
                entries.append((f"{r['label']} (corpus)", s["corpus"], None, None, color[r["id"]]))
        if entries:
            body.append(f"<h3>{escape(scorer)}</h3>{_bars_svg(entries)}")

    boxes = [(r["label"], data["latency"][r["id"]], color[r["id"]]) for r in runs
             if data["latency"].get(r["id"])]
    if boxes:
        body.append("<h2>Latency per sample (ms)</h2>" + _boxes_svg(boxes))

    for comp in data["comparisons"]:
        a, b = comp["run_a"]["label"], comp["run_b"]["label"]
        body.append(f"<h2>{escape(b)} vs {escape(a)}</h2>")
        body.append('<ul class="verdicts">' + "".join(
            f'<li class="{escape(sc["verdict"].split()[0])}">{escape(comp["sentences"][sc["scorer"]])}</li>'
            for sc in comp["scorers"]) + "</ul>")
        rows = []
        for sc in comp["scorers"]:
            boot = sc["bootstrap"]
            diff = boot if boot else (sc["diff"] or {})
            est = diff.get("diff", diff.get("estimate"))
            p = boot["p_value"] if boot else sc["mcnemar_p"]
            test = "bootstrap" if boot else ("McNemar" if sc["mcnemar_p"] is not None else "")
            rows.append([_td(sc["scorer"]), _td(sc["kind"]), _td(sc["n"], "num"),
                         _td(est, "num"), _td(diff.get("low"), "num"), _td(diff.get("high"), "num"),
                         _td(f"{test} p={p:.3g}" if p is not None else ""),
                         _td(f"{sc['wins']}/{sc['ties']}/{sc['losses']}", "num"),
                         _td(sc["verdict"], sc["verdict"].split()[0])])
        body.append(_table(["scorer", "kind", "n", "B − A", "95% CI low", "95% CI high", "test",
                            "W/T/L", "verdict"], rows))
        body.append(_table(
            ["run", "samples", "latency p50 ms", "latency p95 ms", "tokens in / out",
             "cost per 1,000 samples"],
            [[_td(label), _td(u["samples"], "num"), _td(u["latency_p50_ms"], "num"),
              _td(u["latency_p95_ms"], "num"),
              _td(f"{u['prompt_tokens_mean'] or 0:.0f} / {u['completion_tokens_mean'] or 0:.0f}", "num"),
              _td(f"${u['cost_per_1000']:.4f}" if u["cost_per_1000"] is not None else "unknown", "num")]
             for label, u in ((a, comp["usage_a"]), (b, comp["usage_b"]))]))
        body.extend(f'<p class="note">{escape(n)}</p>' for n in comp["notes"])

    if data["samples"]:
        body.append("<h2>Samples whose outcome differs</h2>")
        headers = ["sample", "input", "ideal"] + [f"{r['label']}" for r in runs]
        rows = []
        for s in data["samples"]:
            cells = [_td(s["sample_id"]), _td(s["input"], "text"), _td(s["ideal"], "text")]
            for r in runs:
                entry = s["runs"][r["id"]]
                marks = " ".join(
                    f'<span class="{"pass" if v["passed"] else "fail"}">{escape(k)} '
                    f'{"pass" if v["passed"] else "fail"}</span>' if v["passed"] is not None
                    else f"{escape(k)} {v['value']:.3g}" for k, v in sorted(entry["scores"].items()))
                text = entry["output"] if entry["error"] is None else f"error: {entry['error']}"
                cells.append(f'<td class="text">{escape(text or "")}<br>{marks}</td>')
            rows.append(cells)
        body.append(_table(headers, rows))

    # "</" would end the script element early; "<\/" is the same string to JSON.
    payload = json.dumps(finite(data), default=str, allow_nan=False).replace("</", "<\\/")
    template = Template(
        resources.files("gateway.evaluation").joinpath("report_template.html").read_text("utf-8"))
    return template.substitute(
        title=escape(f"Eval report: {runs[0]['evalset']}"),
        subtitle=escape(f"{len(runs)} runs, baseline {runs[0]['label']}; generated {data['generated']} UTC"),
        body="\n".join(body), data=payload,
    )


def write_report(store: Store, run_refs: list[str], path: Path, diff_limit: int = 200,
                 diagnosis: dict[str, Any] | None = None) -> Path:
    """Build the report for `run_refs` (the first is the baseline) and write it to `path`."""
    html = render_html(build_report_data(store, run_refs, diff_limit, diagnosis))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
