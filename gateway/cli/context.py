"""What every command shares: the loaded configuration and the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from gateway.config import Config, load_config
from gateway.store import Store


@dataclass
class AppContext:
    config_path: Path | None = None
    _config: Config | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.config.db_path)
        return self._store


def app_context() -> AppContext:
    """The AppContext of the running command (a fresh one outside the CLI)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        obj = ctx.find_object(AppContext)
        if obj is not None:
            return obj
    return AppContext()


pass_app = click.make_pass_decorator(AppContext, ensure=True)
