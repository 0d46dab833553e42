"""The `gateway` command line. One module per command group under gateway/cli/.

Importing this package stays cheap: command modules import heavy parts of the
core inside their functions, and plugins are loaded when main() runs.
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from gateway import __version__
from gateway.cli.context import AppContext
from gateway.errors import GatewayError

# Command modules, each exposing `commands`: a list of click commands or groups.
# The order here is the order in `gateway --help`.
COMMAND_MODULES = [
    "gateway.cli.plugins_cmd",
    "gateway.cli.models_cmd",
    "gateway.cli.data_cmd",
    "gateway.cli.train_cmd",
    "gateway.cli.jobs_cmd",
    "gateway.cli.serve_cmd",
    "gateway.cli.keys_cmd",
    "gateway.cli.eval_cmd",
    "gateway.cli.runs_cmd",
    "gateway.cli.compare_cmd",
    "gateway.cli.diagnose_cmd",
    "gateway.cli.report_cmd",
    "gateway.cli.demo_cmd",
    "gateway.cli.db_cmd",
]


class GatewayGroup(click.Group):
    """Turns GatewayError into a clean message and exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GatewayError as exc:
            if os.environ.get("GATEWAY_DEBUG"):
                raise
            click.secho(f"Error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=GatewayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gateway")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="GATEWAY_CONFIG",
    help="Configuration file (default: $GATEWAY_HOME/config.toml).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Train, serve and evaluate fine-tuned language models.

    Data lives under $GATEWAY_HOME (default: your user data directory):
    one DuckDB file with every job, model version, eval run and request log.
    """
    ctx.obj = AppContext(config_path=config_path)


def assemble() -> click.Group:
    """A `gateway` group with the core commands and those the current plugins add."""
    from gateway.plugins import get_plugin_manager

    group = copy.copy(cli)
    group.commands = {}
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        for command in module.commands:
            group.add_command(command)
    get_plugin_manager().hook.register_commands(cli=group)
    return group


def main() -> None:
    assemble()(prog_name="gateway")
