"""`gateway report`: one self-contained HTML file comparing eval runs."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.cli.context import AppContext, pass_app


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("report.html"), show_default=True, help="Where to write the HTML file.")
@click.option("--diff-limit", type=click.IntRange(min=0), default=200, show_default=True,
              help="At most this many samples in the per-sample diff table.")
@pass_app
def report(app: AppContext, runs: tuple[str, ...], output: Path, diff_limit: int) -> None:
    """Write an HTML report on eval RUNS (ids or unique prefixes).

    The first run is the baseline; each other run is compared with it. The
    file is self-contained (inline CSS and SVG, no network) and embeds its
    data as JSON in <script type="application/json" id="report-data">.
    """
    from gateway.evaluation.report import write_report

    path = write_report(app.store, list(runs), output, diff_limit=diff_limit)
    click.echo(f"Wrote {path}")


commands = [report]
