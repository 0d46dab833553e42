"""Finds and loads plugins: the built-in ones and third parties' alike.

Nothing is loaded at import time; call get_plugin_manager(). Plugins come from
the "gateway" entry-point group. GATEWAY_PLUGINS (a comma-separated list of
entry-point names) restricts which load. A plugin whose import fails, or that
declares a module that is not installed, is recorded as unavailable with the
reason and the extra to install; the host keeps working.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any, TypeVar

import pluggy

from gateway import hookspecs
from gateway.errors import PluginError

hookimpl = hookspecs.hookimpl
ENTRY_POINT_GROUP = "gateway"

T = TypeVar("T")


@dataclass
class PluginInfo:
    """One entry point and what became of it."""

    name: str
    module: str
    version: str
    status: str  # "loaded", "unavailable" or "disabled"
    reason: str = ""
    extra: str | None = None
    kinds: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class _State:
    pm: pluggy.PluginManager
    infos: list[PluginInfo]


_state: _State | None = None


def _dist_version(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(dist.version) if dist is not None else "?"


def _missing_requirements(module: ModuleType) -> list[str]:
    """Modules a plugin declares in GATEWAY_REQUIRES that cannot be imported.

    A plugin module stays cheap to import: it names its heavy dependencies in
    GATEWAY_REQUIRES (and the extra that installs them in GATEWAY_EXTRA) and
    imports them only when used.
    """
    required: list[str] = list(getattr(module, "GATEWAY_REQUIRES", []))
    return [name for name in required if importlib.util.find_spec(name) is None]


def _load_entry_point(pm: pluggy.PluginManager, ep: metadata.EntryPoint) -> PluginInfo:
    info = PluginInfo(name=ep.name, module=ep.module, version=_dist_version(ep), status="loaded")
    try:
        module = ep.load()
    except Exception as exc:  # any import failure must leave the host working
        info.status = "unavailable"
        info.reason = f"{type(exc).__name__}: {exc}"
        if os.environ.get("GATEWAY_DEBUG"):
            traceback.print_exc(file=sys.stderr)
        return info
    info.extra = getattr(module, "GATEWAY_EXTRA", None)
    missing = _missing_requirements(module)
    if missing:
        info.status = "unavailable"
        info.reason = "missing module" + ("s " if len(missing) > 1 else " ") + ", ".join(missing)
        return info
    if pm.get_plugin(ep.name) is None:
        pm.register(module, name=ep.name)
    return info


def _allowlist() -> set[str] | None:
    raw = os.environ.get("GATEWAY_PLUGINS")
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first call."""
    return _get_state().pm


def plugin_infos() -> list[PluginInfo]:
    """Every plugin entry point seen, loaded or not, plus directly registered plugins."""
    state = _get_state()
    infos = list(state.infos)
    known = {i.name for i in infos}
    for name, plugin in state.pm.list_name_plugin():
        if name in known or plugin is None:
            continue
        module = getattr(plugin, "__name__", type(plugin).__name__)
        infos.append(PluginInfo(name=name, module=module, version="-", status="loaded"))
    for info in infos:
        plugin = state.pm.get_plugin(info.name)
        if plugin is not None:
            info.kinds = _kinds_of(state.pm, plugin)
    return infos


def _get_state() -> _State:
    global _state
    if _state is None:
        pm = pluggy.PluginManager("gateway")
        pm.add_hookspecs(hookspecs)
        allow = _allowlist()
        infos: list[PluginInfo] = []
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if allow is not None and ep.name not in allow:
                infos.append(
                    PluginInfo(
                        name=ep.name,
                        module=ep.module,
                        version=_dist_version(ep),
                        status="disabled",
                        reason="not in GATEWAY_PLUGINS",
                    )
                )
                continue
            infos.append(_load_entry_point(pm, ep))
        pm.check_pending()
        _state = _State(pm=pm, infos=infos)
    return _state


def reset_plugin_manager() -> None:
    """Forget the plugin manager, so the next call rebuilds it (for tests)."""
    global _state
    _state = None


def _collect(hook_caller: Any) -> list[Any]:
    items: list[Any] = []
    hook_caller(register=items.append)
    return items


def _kinds_of(pm: pluggy.PluginManager, plugin: object) -> dict[str, list[str]]:
    """What one plugin provides: trainer, backend, evaluator and command names."""
    kinds: dict[str, list[str]] = {}
    for kind, hook_name in (
        ("trainer", "register_trainers"),
        ("backend", "register_backends"),
        ("evaluator", "register_evaluators"),
    ):
        impl = getattr(plugin, hook_name, None)
        if impl is None:
            continue
        items: list[Any] = []
        impl(register=items.append)
        if items:
            kinds[kind] = [str(getattr(i, "name", i)) for i in items]
    commands_impl = getattr(plugin, "register_commands", None)
    if commands_impl is not None:
        import click

        group = click.Group()
        commands_impl(cli=group)
        if group.commands:
            kinds["command"] = sorted(group.commands)
    return kinds


def _by_name(items: list[T], kind: str) -> dict[str, T]:
    found: dict[str, T] = {}
    for item in items:
        name = str(getattr(item, "name", ""))
        if not name:
            raise PluginError(f"a {kind} registered without a name: {item!r}")
        found[name] = item
    return found


def trainers() -> dict[str, Any]:
    """Registered trainer classes by name."""
    return _by_name(_collect(get_plugin_manager().hook.register_trainers), "trainer")


def backends() -> dict[str, Any]:
    """Registered backend classes by name."""
    return _by_name(_collect(get_plugin_manager().hook.register_backends), "backend")


def evaluators() -> dict[str, Any]:
    """Registered evaluator classes by name."""
    return _by_name(_collect(get_plugin_manager().hook.register_evaluators), "evaluator")


def _unavailable_hint(kind: str, name: str) -> str:
    hints = [
        f"{i.name} ({i.reason}; install finetune-gateway[{i.extra}])"
        if i.extra
        else f"{i.name} ({i.reason})"
        for i in _get_state().infos
        if i.status != "loaded"
    ]
    suffix = f" Unavailable plugins: {'; '.join(hints)}." if hints else ""
    return f"no {kind} named {name!r}.{suffix}"


def get_trainer(name: str) -> Any:
    found = trainers()
    if name not in found:
        raise PluginError(_unavailable_hint("trainer", name) + f" Known: {', '.join(sorted(found)) or 'none'}.")
    return found[name]


def get_backend_class(name: str) -> Any:
    found = backends()
    if name not in found:
        raise PluginError(_unavailable_hint("backend", name) + f" Known: {', '.join(sorted(found)) or 'none'}.")
    return found[name]


def get_evaluator_class(name: str) -> Any:
    found = evaluators()
    if name not in found:
        raise PluginError(_unavailable_hint("evaluator", name) + f" Known: {', '.join(sorted(found)) or 'none'}.")
    return found[name]
