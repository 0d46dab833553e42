"""`gateway report`: one self-contained HTML file comparing eval runs."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.cli.context import AppContext, pass_app


@click.command()
@click.argument("runs", nargs=-1)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("report.html"), show_default=True, help="Where to write the HTML file.")
@click.option("--diff-limit", type=click.IntRange(min=0), default=200, show_default=True,
              help="At most this many samples in the per-sample diff table.")
@click.option("--diagnosis", "diagnosis_ref",
              help="Open with a `gateway diagnose` result: its id, or an eval set name for the "
                   "newest one. Its five runs are reported when no RUNS are given.")
@pass_app
def report(app: AppContext, runs: tuple[str, ...], output: Path, diff_limit: int,
           diagnosis_ref: str | None) -> None:
    """Write an HTML report on eval RUNS (ids or unique prefixes).

    The first run is the baseline; each other run is compared with it. The
    file is self-contained (inline CSS and SVG, no network) and embeds its
    data as JSON in <script type="application/json" id="report-data">.
    With --diagnosis it opens with the 2×2 chart (with or without
    fine-tuning, against with or without retrieval) and the verdict.

    \b
    Examples:
      gateway report evalrun-1a2b evalrun-3c4d -o compare.html
      gateway report --diagnosis policy-knowledge -o diagnosis.html
    """
    from gateway.evaluation.diagnosis import find_diagnosis
    from gateway.evaluation.report import write_report

    diagnosis = find_diagnosis(app.store, diagnosis_ref) if diagnosis_ref else None
    if not runs and diagnosis is None:
        raise click.UsageError("give eval RUNS, or --diagnosis")
    run_refs = list(runs) or list(diagnosis["runs"].values()) if diagnosis else list(runs)
    path = write_report(app.store, run_refs, output, diff_limit=diff_limit, diagnosis=diagnosis)
    click.echo(f"Wrote {path}")


commands = [report]
