"""Every hookspec is documented and exercised. A throwaway plugin implements each
hook and the test drives the core path that calls it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, ClassVar

import click

from gateway import hookimpl, hookspecs
from gateway.contracts import Sample, Score, TrainingResult
from gateway.plugins import backends, evaluators, trainers
from gateway.registry import BaseModel, ModelVersion, add_base_model, create_version
from gateway.store import Store

TESTS = Path(__file__).parent


def hookspec_names() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "gateway_spec")
    ]


def test_every_hookspec_has_a_docstring() -> None:
    names = hookspec_names()
    assert len(names) >= 5
    for name in names:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc) > 40, f"hookspec {name} needs a real docstring"


def test_every_hookspec_is_implemented_in_a_test() -> None:
    sources = "\n".join(p.read_text() for p in TESTS.rglob("test_*.py"))
    for name in hookspec_names():
        assert re.search(rf"@hookimpl[^\n]*\n\s*def {name}\(", sources), f"no test implements {name}"


class NullTrainer:
    name: ClassVar[str] = "null"
    description: ClassVar[str] = "trains nothing"

    def train(self, spec: Any, control: Any) -> Any:
        yield TrainingResult(kind="hosted", remote_id="null-model")


class NullBackend:
    name: ClassVar[str] = "null"
    description: ClassVar[str] = "serves nothing"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings


class LengthEvaluator:
    name: ClassVar[str] = "length"
    description: ClassVar[str] = "output length"
    corpus_level: ClassVar[bool] = False

    def score(self, sample: Sample) -> Score:
        return Score(value=float(len(sample.output)))

    def score_corpus(self, samples: list[Sample]) -> Score:
        raise NotImplementedError


class EveryHookPlugin:
    def __init__(self) -> None:
        self.versions: list[tuple[ModelVersion, dict[str, Any]]] = []

    @hookimpl
    def register_trainers(self, register: Any) -> None:
        register(NullTrainer)

    @hookimpl
    def register_backends(self, register: Any) -> None:
        register(NullBackend)

    @hookimpl
    def register_evaluators(self, register: Any) -> None:
        register(LengthEvaluator)

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        @cli.command()
        def hello() -> None:
            """Say hello from a plugin."""
            click.echo("hello from a plugin")

    @hookimpl
    def model_version_created(self, version: ModelVersion, context: dict[str, Any]) -> None:
        self.versions.append((version, context))


def test_registration_hooks(gateway_home: Path, register_plugin: Any, gateway_cli: Any) -> None:
    register_plugin(EveryHookPlugin(), "every-hook")
    assert trainers()["null"] is NullTrainer
    assert backends()["null"] is NullBackend
    assert evaluators()["length"] is LengthEvaluator
    result = gateway_cli("hello")
    assert result.output.strip() == "hello from a plugin"


def test_model_version_created_hook(gateway_home: Path, register_plugin: Any) -> None:
    plugin = EveryHookPlugin()
    register_plugin(plugin, "every-hook")
    store = Store(gateway_home / "gateway.duckdb")
    add_base_model(store, BaseModel(name="tiny", source="path", path="/nowhere"))
    version = create_version(store, base="tiny", name="bot", kind="local", context={"evalsets": ["x"]})
    assert version.id.startswith("ft:tiny:bot:") and version.ref == "bot@v1"
    assert [(v.id, c) for v, c in plugin.versions] == [(version.id, {"evalsets": ["x"]})]


class FailingHookPlugin:
    @hookimpl
    def model_version_created(self, version: ModelVersion, context: dict[str, Any]) -> None:
        raise RuntimeError("notification channel is down")


def test_failing_event_hook_keeps_the_version(gateway_home: Path, register_plugin: Any) -> None:
    register_plugin(FailingHookPlugin(), "failing")
    store = Store(gateway_home / "gateway.duckdb")
    version = create_version(store, base="tiny", name="bot", kind="local")
    assert store.query_one("SELECT id FROM model_versions WHERE id = ?", [version.id])
