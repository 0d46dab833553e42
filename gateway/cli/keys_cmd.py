"""`gateway keys`: API keys for the server, stored hashed."""

from __future__ import annotations

import click

from gateway.cli.context import AppContext, pass_app
from gateway.cli.output import echo_rows, format_option

COLUMNS = ["id", "name", "prefix", "scope", "created", "revoked"]


@click.group()
def keys() -> None:
    """API keys: once any key exists, the server's /v1 routes need one."""


@keys.command("create")
@click.option("--name", default=None, help="A label to recognise the key by.")
@click.option(
    "--scope", type=click.Choice(["inference", "fine-tune", "admin"]), default="inference",
    show_default=True,
    help="inference: the model routes; fine-tune: files and fine-tuning jobs as well; "
    "admin: adapter management too.",
)
@pass_app
def create(app: AppContext, name: str | None, scope: str) -> None:
    """Create a key and print it. It is shown only this once."""
    from gateway.audit import cli_actor, record
    from gateway.keys import create_key

    key, secret = create_key(app.store, scope, name)
    record(app.store, "key.create", key.id, cli_actor(), scope=scope, name=name)
    click.echo(secret)
    click.echo(f"Created {key.id} ({scope}). Store the key now: it cannot be shown again.", err=True)


@keys.command("list")
@format_option
@pass_app
def list_(app: AppContext, fmt: str) -> None:
    """List keys: id, name, prefix, scope, created, revoked. Never the key itself."""
    from gateway.keys import list_keys

    rows = [{c: getattr(k, c) for c in COLUMNS} for k in list_keys(app.store)]
    echo_rows(rows, COLUMNS, fmt)


@keys.command("revoke")
@click.argument("key_id")
@pass_app
def revoke(app: AppContext, key_id: str) -> None:
    """Revoke the key KEY_ID (its id or prefix). A running server refuses it within seconds."""
    from gateway.audit import cli_actor, record
    from gateway.keys import revoke_key

    key = revoke_key(app.store, key_id)
    record(app.store, "key.revoke", key.id, cli_actor())
    click.echo(f"Revoked {key.id} ({key.prefix}...) at {key.revoked:%Y-%m-%d %H:%M:%S}")


commands = [keys]
