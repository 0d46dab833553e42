"""Fixtures behind gateway.testing; see that module's docstring."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def gateway_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty GATEWAY_HOME, and a plugin manager rebuilt for it."""
    from gateway.plugins import reset_plugin_manager

    home = tmp_path / "gateway-home"
    home.mkdir()
    monkeypatch.setenv("GATEWAY_HOME", str(home))
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    reset_plugin_manager()
    yield home
    reset_plugin_manager()


@contextmanager
def registered_plugins() -> Iterator[Callable[[object, str], None]]:
    """`register(obj, name)` adds a plugin until the block ends (what the fixture uses)."""
    from gateway.plugins import get_plugin_manager

    names: list[str] = []

    def register(plugin: object, name: str) -> None:
        get_plugin_manager().register(plugin, name=name)
        names.append(name)

    try:
        yield register
    finally:
        pm = get_plugin_manager()
        for name in names:
            plugin = pm.get_plugin(name)
            if plugin is not None:
                pm.unregister(plugin)


@pytest.fixture
def register_plugin() -> Iterator[Callable[[object, str], None]]:
    """Call `register_plugin(obj, name)` to add a plugin for one test."""
    with registered_plugins() as register:
        yield register


@pytest.fixture
def gateway_cli() -> Callable[..., Any]:
    """`gateway_cli("plugins", "list")` runs the CLI in-process; returns click's Result."""
    from click.testing import CliRunner

    from gateway.cli import assemble

    def run(*args: str, input: str | None = None) -> Any:
        return CliRunner().invoke(assemble(), list(args), input=input, catch_exceptions=False)

    return run
