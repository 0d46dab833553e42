"""Printing rows as a table, CSV or JSON: the one way every command does it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import click

FORMATS = ("table", "csv", "json")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        # Large values (latencies in ms, token totals) read better without an exponent.
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, fmt: str = "table") -> str:
    """Rows as text in one of FORMATS."""
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in cols} for r in rows], default=_json_default, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        for r in rows:
            writer.writerow([_cell(r.get(c)) for c in cols])
        return buf.getvalue().rstrip("\n")
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def echo_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, fmt: str = "table") -> None:
    if fmt == "table" and not rows:
        click.echo("(no rows)")
        return
    click.echo(render(rows, columns, fmt))


format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="Output format.",
)


def _deprecated_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        click.echo("note: --json is deprecated; use --format json", err=True)
    return value


def object_format_option(command: Any) -> Any:
    """`--format text|json` for commands that print one object, plus the old `--json`
    flag as a hidden alias that prints a deprecation note. The command receives
    `fmt` and `legacy_json`; `wants_json(fmt, legacy_json)` decides."""
    command = click.option("--json", "legacy_json", is_flag=True, hidden=True,
                           callback=_deprecated_json, help="Deprecated: use --format json.")(command)
    return click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text",
                        show_default=True, help="Output format.")(command)


def wants_json(fmt: str, legacy_json: bool) -> bool:
    return fmt == "json" or legacy_json
