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
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any, TypeVar

import pluggy

from gateway import hookspecs
from gateway.contracts import (
    Backend,
    CostEstimate,
    Evaluator,
    ModelVersion,
    Retriever,
    Trainer,
    TrainingSpec,
)
from gateway.errors import PluginError
from gateway.util import NAME_RE

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
    # Plugin name -> registrations that were refused (no name, a taken name...).
    problems: dict[str, set[str]] = field(default_factory=dict)


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
    """Every plugin entry point seen, loaded or not, plus directly registered plugins.

    A plugin that registered an invalid class (no name, no description, a name
    already taken, a missing method) has status "error" and the reasons.
    """
    state = _get_state()
    for kind in HOOKS:
        _registered(kind)
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
        if info.name in state.problems:
            info.status = "error"
            info.reason = "; ".join(sorted(state.problems[info.name]))
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


def _kinds_of(pm: pluggy.PluginManager, plugin: object) -> dict[str, list[str]]:
    """What one plugin provides: trainer, backend, evaluator and command names."""
    kinds: dict[str, list[str]] = {}
    for kind, hook_name in (
        ("trainer", "register_trainers"),
        ("backend", "register_backends"),
        ("evaluator", "register_evaluators"),
        ("retriever", "register_retrievers"),
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


# ---------------------------------------------------------------- registered classes

# What each kind of class must provide; the SDK bases give defaults for all but
# the name, the description and the core method.
REQUIRED: dict[str, tuple[str, ...]] = {
    "trainer": ("version", "resolve_hyperparameters", "train"),
    "backend": ("start", "close", "chat", "complete", "stream", "load_adapter",
                "unload_adapter", "health"),
    "evaluator": ("corpus_level", "needs_chat", "needs_evalset_dir", "score", "score_corpus"),
    "retriever": ("fingerprint", "index", "search"),
}
BASES = {"trainer": "BaseTrainer", "backend": "BaseBackend", "evaluator": "PerSampleEvaluator",
         "retriever": "BaseRetriever"}
HOOKS: dict[str, Callable[[pluggy.PluginManager], Any]] = {
    "trainer": lambda pm: pm.hook.register_trainers,
    "backend": lambda pm: pm.hook.register_backends,
    "evaluator": lambda pm: pm.hook.register_evaluators,
    "retriever": lambda pm: pm.hook.register_retrievers,
}


def asks_for(cls: Any, capability: str) -> bool:
    """Whether a registered class sets an optional capability flag (absent means no)."""
    return bool(getattr(cls, capability, False))


def registration_problem(kind: str, item: Any) -> str | None:
    """Why a registered class cannot be used, or None when it is complete."""
    if not isinstance(item, type):
        return f"registered {item!r} as a {kind}, which is not a class"
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not NAME_RE.match(name):
        return f"{kind} class {item.__name__} has no valid `name` (got {name!r})"
    description = getattr(item, "description", None)
    if not isinstance(description, str) or not description.strip():
        return f"{kind} {name!r} ({item.__name__}) has no `description`"
    missing = [m for m in REQUIRED[kind] if not hasattr(item, m)]
    if missing:
        return (f"{kind} {name!r} ({item.__name__}) lacks {', '.join(missing)}; subclass "
                f"gateway.contracts.{BASES[kind]} for the defaults")
    return None


def _registered(kind: str) -> dict[str, Any]:
    """Valid classes of one kind by name. Each hook implementation is called on its
    own, so an invalid class or a name already taken is reported with its plugin."""
    state = _get_state()
    found: dict[str, Any] = {}
    owner: dict[str, str] = {}
    caller = HOOKS[kind](state.pm)
    for impl in caller.get_hookimpls():  # in registration order: the first name wins
        items: list[Any] = []
        impl.function(register=items.append)
        for item in items:
            problem = registration_problem(kind, item)
            if problem is None and item.name in found and found[item.name] is not item:
                problem = (f"{kind} name {item.name!r} is already taken by plugin "
                           f"{owner[item.name]!r}; {item.__name__} was not registered")
            if problem is not None:
                state.problems.setdefault(impl.plugin_name, set()).add(problem)
                continue
            found[item.name] = item
            owner[item.name] = impl.plugin_name
    return found


def trainers() -> dict[str, type[Trainer]]:
    """Registered trainer classes by name."""
    return _registered("trainer")


def backends() -> dict[str, type[Backend]]:
    """Registered backend classes by name."""
    return _registered("backend")


def evaluators() -> dict[str, type[Evaluator]]:
    """Registered evaluator classes by name."""
    return _registered("evaluator")


def retrievers() -> dict[str, type[Retriever]]:
    """Registered retriever classes by name."""
    return _registered("retriever")


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


def _lookup(kind: str, found: dict[str, T], name: str) -> T:
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise PluginError(_unavailable_hint(kind, name) + f" Known: {known}.")
    return found[name]


def get_trainer(name: str) -> type[Trainer]:
    return _lookup("trainer", trainers(), name)


def trainer_needs_provider(name: str) -> bool:
    """Whether jobs of this trainer must name a [providers.NAME] (BaseTrainer.needs_provider)."""
    return bool(getattr(get_trainer(name), "needs_provider", False))


def trainer_uses_local_compute(name: str) -> bool:
    """Whether this trainer's jobs take a `[jobs] max_running` slot; unknown trainers do."""
    try:
        return bool(getattr(get_trainer(name), "uses_local_compute", True))
    except PluginError:
        return True


def estimate_cost(trainer: Trainer, spec: TrainingSpec) -> CostEstimate | None:
    """A trainer's cost estimate for `spec`; None when it offers none (BaseTrainer.estimate_cost)."""
    method = getattr(trainer, "estimate_cost", None)
    return method(spec) if method is not None else None


def cancel_where_it_runs(trainer: Trainer, spec: TrainingSpec) -> None:
    """Ask the trainer to stop the job at its provider, when it can (BaseTrainer.cancel)."""
    method = getattr(trainer, "cancel", None)
    if method is not None:
        method(spec)


def get_backend_class(name: str) -> type[Backend]:
    return _lookup("backend", backends(), name)


def get_evaluator_class(name: str) -> type[Evaluator]:
    return _lookup("evaluator", evaluators(), name)


def get_retriever_class(name: str) -> type[Retriever]:
    return _lookup("retriever", retrievers(), name)


# ---------------------------------------------------------------- event hooks


def announce_version(version: ModelVersion, context: dict[str, Any]) -> None:
    """Fire `model_version_created`. A plugin's failure is reported and never undoes it."""
    try:
        get_plugin_manager().hook.model_version_created(version=version, context=context)
    except Exception as exc:
        print(f"warning: a model_version_created hook failed: {exc}", file=sys.stderr)
