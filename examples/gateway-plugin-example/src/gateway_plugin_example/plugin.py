"""The module the "gateway" entry point names.

The host imports it when it loads plugins, so it stays cheap: it only
registers classes. A plugin with heavy dependencies would list them in
GATEWAY_REQUIRES (so the host reports it as unavailable instead of failing)
and import them inside its classes' methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway import hookimpl

from .backend import ReverseBackend
from .evaluator import MaxWords

# Modules this plugin needs that might be missing; the host checks them before
# registering the plugin. This one needs nothing beyond the gateway.
GATEWAY_REQUIRES: list[str] = []


@hookimpl
def register_backends(register: Callable[[type[Any]], None]) -> None:
    register(ReverseBackend)


@hookimpl
def register_evaluators(register: Callable[[type[Any]], None]) -> None:
    register(MaxWords)
