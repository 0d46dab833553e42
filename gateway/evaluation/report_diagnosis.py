"""The report's "Behaviour or knowledge?" section: the 2×2 chart and the verdict.

Rows are without and with fine-tuning, columns without and with retrieval;
each cell is that contender's mean on the deciding scorer with its 95% CI,
drawn as a bar with whiskers on a 0–1 axis. The levers' effects and the
verdict sentence follow, as `gateway diagnose` printed them.
"""

from __future__ import annotations

from html import escape
from typing import Any

from gateway.evaluation.diagnosis import BASE, FINE_TUNE, FINE_TUNE_RETRIEVAL, RETRIEVAL

CELL_W, CELL_H, LEFT, TOP = 300, 110, 150, 40
GRID = ((BASE, RETRIEVAL), (FINE_TUNE, FINE_TUNE_RETRIEVAL))


def _cell(x0: float, y0: float, name: str, ci: dict[str, Any] | None, color: str) -> str:
    """One contender: its mean as a bar from 0 and the CI as whiskers, 0–1 wide."""
    pad, bar_h = 20, 26
    width = CELL_W - 2 * pad

    def x(v: float) -> float:
        return x0 + pad + max(0.0, min(1.0, v)) * width

    parts = [f'<rect x="{x0}" y="{y0}" width="{CELL_W}" height="{CELL_H}" fill="#f7f8fa" '
             f'stroke="#d9dde5"/>',
             f'<text x="{x0 + pad}" y="{y0 + 22}">{escape(name)}</text>']
    if ci is None:
        parts.append(f'<text x="{x0 + pad}" y="{y0 + 60}">no scores</text>')
        return "".join(parts)
    mean, low, high = ci["estimate"], ci.get("low"), ci.get("high")
    y = y0 + 40
    parts.append(f'<line class="grid" x1="{x(0)}" y1="{y - 4}" x2="{x(1)}" y2="{y - 4}"/>'
                 f'<rect x="{x(0):.1f}" y="{y}" width="{max(x(mean) - x(0), 1):.1f}" height="{bar_h}" '
                 f'fill="{color}" opacity="0.8"/>')
    if low is not None and high is not None:
        mid = y + bar_h / 2
        parts.append(f'<line class="err" x1="{x(low):.1f}" y1="{mid}" x2="{x(high):.1f}" y2="{mid}"/>'
                     f'<line class="err" x1="{x(low):.1f}" y1="{mid - 6}" x2="{x(low):.1f}" y2="{mid + 6}"/>'
                     f'<line class="err" x1="{x(high):.1f}" y1="{mid - 6}" x2="{x(high):.1f}" y2="{mid + 6}"/>')
    ci_text = f" (95% CI {low:.3f}–{high:.3f})" if low is not None and high is not None else ""
    parts.append(f'<text x="{x0 + pad}" y="{y0 + CELL_H - 12}">{mean:.3f}{escape(ci_text)}</text>'
                 f"<title>{escape(name)}: {mean:.4f}{escape(ci_text)}</title>")
    return "".join(parts)


def two_by_two_svg(result: dict[str, Any], cis: dict[str, dict[str, Any] | None],
                   colors: dict[str, str]) -> str:
    width, height = LEFT + 2 * CELL_W + 10, TOP + 2 * CELL_H + 10
    parts = [f'<svg width="{width}" height="{height}" role="img" '
             f'aria-label="2x2: fine-tuning against retrieval">',
             f'<text x="{LEFT + CELL_W / 2}" y="24" text-anchor="middle">without retrieval</text>',
             f'<text x="{LEFT + 1.5 * CELL_W}" y="24" text-anchor="middle">with retrieval</text>']
    for row, label in enumerate(("base model", "fine-tune")):
        parts.append(f'<text x="{LEFT - 10}" y="{TOP + row * CELL_H + CELL_H / 2}" '
                     f'text-anchor="end">{label}</text>')
        for col, name in enumerate(GRID[row]):
            parts.append(_cell(LEFT + col * CELL_W, TOP + row * CELL_H, name, cis.get(name),
                               colors.get(result["runs"].get(name, ""), "#3b6fd8")))
    parts.append("</svg>")
    return "".join(parts)


def diagnosis_section(result: dict[str, Any], scores: dict[str, dict[str, Any]],
                      colors: dict[str, str]) -> str:
    """HTML for one stored diagnosis; `scores` is the report's per-run scorer summary."""
    scorer = result["scorer"]
    cis = {name: (scores.get(run_id, {}).get(scorer) or {}).get("mean_ci")
           for name, run_id in result["runs"].items()}
    rows = []
    for e in result["effects"].values():
        ci = (f"{e['low']:+.3f} to {e['high']:+.3f}"
              if e.get("low") is not None and e.get("high") is not None else "")
        mde = f"{e['mde']:.3f}" if e.get("mde") is not None else ""
        rows.append(f"<tr><td>{escape(e['name'])}</td><td class=\"num\">{e['estimate']:+.3f}</td>"
                    f"<td class=\"num\">{escape(ci)}</td><td class=\"num\">{e['n']}</td>"
                    f"<td class=\"num\">{mde}</td><td class=\"num\">{e.get('needed') or ''}</td></tr>")
    recall = result.get("retrieval_recall")
    return "".join([
        f"<h2>Behaviour or knowledge? ({escape(result['evalset'])}, {result['n']} samples, "
        f"{escape(scorer)})</h2>",
        two_by_two_svg(result, cis, colors),
        f'<p class="verdict"><strong>{escape(result["sentence"])}</strong></p>',
        "<table><thead><tr><th>lever</th><th>effect</th><th>95% CI</th><th>n</th>"
        "<th>detectable at this n</th><th>samples for this effect</th></tr></thead><tbody>",
        *rows, "</tbody></table>",
        f'<p class="note">retrieval recall (gold passage retrieved): {recall:.3f}</p>'
        if recall is not None else "",
        f'<p class="note">A lever helps when its CI lies above 0 and its effect is at least '
        f'{result["min_effect"]:g}; it is ruled out when its CI lies below {result["min_effect"]:g}.</p>',
    ])
