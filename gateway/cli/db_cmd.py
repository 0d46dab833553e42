"""`gateway db`: where the DuckDB file is, and plain SQL against it."""

from __future__ import annotations

import click

from gateway.cli.context import AppContext, pass_app
from gateway.cli.output import echo_rows, format_option


@click.group()
def db() -> None:
    """The DuckDB store that holds every result."""


@db.command("path")
@pass_app
def db_path(app: AppContext) -> None:
    """Print the path of the DuckDB file."""
    click.echo(str(app.config.db_path))


@db.command("sql")
@click.argument("query")
@format_option
@pass_app
def db_sql(app: AppContext, query: str, fmt: str) -> None:
    """Run SQL against the store and print the result.

    \b
    Example:
      gateway db sql "SELECT id, base, created FROM model_versions"

    A failing statement changes nothing and exits 1.
    """
    import duckdb

    with app.store.connect() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            cur = con.execute(query)
            names = [d[0] for d in cur.description or []]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()] if names else []
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            click.secho(f"Error: {exc}", fg="red", err=True)
            raise SystemExit(1) from exc
        con.execute("COMMIT")
    if names:
        echo_rows(rows, names, fmt)


commands = [db]
