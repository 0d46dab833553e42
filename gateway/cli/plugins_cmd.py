"""`gateway plugins`: what is installed and what each plugin provides."""

from __future__ import annotations

import click

from gateway.cli.output import echo_rows, format_option


@click.group()
def plugins() -> None:
    """Inspect installed plugins."""


@plugins.command("list")
@format_option
def list_plugins(fmt: str) -> None:
    """List plugins: name, kind, what they provide, version and status.

    A plugin that cannot load is shown as unavailable, with the reason and the
    extra that installs what it needs.
    """
    from gateway.plugins import plugin_infos

    rows = []
    for info in plugin_infos():
        status = info.status
        if info.status != "loaded":
            status = f"{info.status}: {info.reason}"
            if info.extra and info.status == "unavailable":
                status += f" (pip install 'finetune-gateway[{info.extra}]')"
        kinds = info.kinds or {"": []}
        for kind, names in kinds.items():
            rows.append(
                {
                    "name": info.name,
                    "kind": kind,
                    "provides": ", ".join(names),
                    "version": info.version,
                    "status": status,
                }
            )
    echo_rows(rows, ["name", "kind", "provides", "version", "status"], fmt)


commands = [plugins]
