"""The plugin SDK boundary: what plugins may import, what the host checks at
registration, the context backends get, and --eval's plugin check."""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gateway import hookimpl
from gateway.contracts import (
    BackendContext,
    BaseBackend,
    ChatRequest,
    Generation,
    PerSampleEvaluator,
    Sample,
    Score,
)
from gateway.plugins import backends, evaluators, plugin_infos

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"
CAPITALS = Path(__file__).parent / "data" / "evalsets" / "capitals"


def gateway_imports(path: Path) -> set[str]:
    """Every gateway module a source file imports, at any level (TYPE_CHECKING, function-local)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "gateway" or name.startswith("gateway.")}


def test_hookspecs_import_only_the_contracts_and_the_registry_not_the_host() -> None:
    assert gateway_imports(GATEWAY / "hookspecs.py") <= {"gateway.contracts"}
    registry = gateway_imports(GATEWAY / "registry.py")
    assert not any(m == "gateway.plugins" or m.startswith("gateway.plugins.") for m in registry)


def test_plugins_see_only_the_sdk() -> None:
    root = GATEWAY.parent
    # gateway.data's chat-JSONL reader is the one core helper a plugin still uses (training_data).
    allowed = {"gateway", "gateway.contracts", "gateway.plugins", "gateway.data"}
    for path in [*(root / "plugins").rglob("*.py"),
                 *(root / "examples" / "gateway-plugin-example" / "src").rglob("*.py")]:
        assert gateway_imports(path) <= allowed, path


def test_the_core_reads_no_capability_with_getattr() -> None:
    allowed = {"plugins.py", "keys_cmd.py", "routes_completions.py"}
    offenders = []
    for path in GATEWAY.rglob("*.py"):
        if path.name in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
                offenders.append(f"{path.relative_to(GATEWAY)}:{node.lineno}")
    assert offenders == []


# ---------------------------------------------------------------- registration checks


class GoodEvaluator(PerSampleEvaluator):
    name: ClassVar[str] = "t-good"
    description: ClassVar[str] = "always passes"

    def score(self, sample: Sample) -> Score:
        return Score(1.0, True)


class NamelessEvaluator(PerSampleEvaluator):
    description: ClassVar[str] = "has no name"


class Undescribed(PerSampleEvaluator):
    name: ClassVar[str] = "t-undescribed"


class Impostor(PerSampleEvaluator):
    name: ClassVar[str] = "t-good"  # taken by the first plugin
    description: ClassVar[str] = "claims a taken name"


class HalfBackend:
    """Structurally a backend without its optional methods, and no base class."""

    name: ClassVar[str] = "t-half"
    description: ClassVar[str] = "only chats"

    async def chat(self, request: ChatRequest) -> Generation:
        return Generation(text="hi")


class FirstPlugin:
    @hookimpl
    def register_evaluators(self, register: Any) -> None:
        register(GoodEvaluator)


class SloppyPlugin:
    @hookimpl
    def register_evaluators(self, register: Any) -> None:
        register(NamelessEvaluator)
        register(Undescribed)
        register(Impostor)

    @hookimpl
    def register_backends(self, register: Any) -> None:
        register(HalfBackend)


def test_invalid_registrations_are_refused_and_reported_with_the_plugin(
    gateway_home: Path, register_plugin: Any, gateway_cli: Any
) -> None:
    register_plugin(FirstPlugin(), "first")
    register_plugin(SloppyPlugin(), "sloppy")
    found = evaluators()
    assert found["t-good"] is GoodEvaluator  # the first registration keeps its name
    assert "t-undescribed" not in found and "t-half" not in backends()

    infos = {i.name: i for i in plugin_infos()}
    assert infos["first"].status == "loaded"
    sloppy = infos["sloppy"]
    assert sloppy.status == "error"
    assert "NamelessEvaluator has no valid `name`" in sloppy.reason
    assert "'t-undescribed' (Undescribed) has no `description`" in sloppy.reason
    assert "name 't-good' is already taken by plugin 'first'" in sloppy.reason
    assert "backend 't-half' (HalfBackend) lacks start, close, complete, stream" in sloppy.reason
    assert "subclass gateway.contracts.BaseBackend" in sloppy.reason

    listed = json.loads(gateway_cli("plugins", "list", "--format", "json").output)
    assert any(r["name"] == "sloppy" and "already taken" in r["status"] for r in listed)


# ---------------------------------------------------------------- the backend context


class ContextBackend(BaseBackend):
    name: ClassVar[str] = "t-context"
    description: ClassVar[str] = "remembers its context"
    built: ClassVar[list[tuple[dict[str, Any], BackendContext]]] = []

    def __init__(self, settings: dict[str, Any], context: BackendContext) -> None:
        super().__init__(settings, context)
        ContextBackend.built.append((settings, context))


class ContextPlugin:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register(ContextBackend)


def test_backends_get_their_settings_and_a_typed_context(
    gateway_home: Path, register_plugin: Any
) -> None:
    import asyncio

    from gateway.config import load_config
    from gateway.registry import BaseModel, add_base_model, create_version
    from gateway.router import Router
    from gateway.store import Store

    register_plugin(ContextPlugin(), "context")
    (gateway_home / "config.toml").write_text(
        '[backends."b1"]\nbackend = "t-context"\nknob = 3\n', encoding="utf-8")
    config = load_config()
    store = Store(config.db_path)
    add_base_model(store, BaseModel(name="b1", source="path", path="/models/b1"))
    add_base_model(store, BaseModel(name="b2", source="path", path="/models/b2"))
    mine = create_version(store, base="b1", name="bot", kind="local", artifact_uri="/a/1")
    create_version(store, base="b2", name="other", kind="local", artifact_uri="/a/2")

    async def build(serving: bool) -> None:
        router = Router(config, store, serving=serving)
        try:
            await router.backend_for(router.resolve("b1"))
        finally:
            await router.close()

    ContextBackend.built.clear()
    asyncio.run(build(serving=False))
    asyncio.run(build(serving=True))
    (settings, context), (_, served) = ContextBackend.built
    assert settings == {"knob": 3}  # the user's table, nothing mixed in
    assert context.base == "b1" and context.base_path == "/models/b1"
    assert context.base_model is not None and context.base_model.source == "path"
    assert context.home == gateway_home
    assert config.adapters_dir.resolve() in context.adapter_roots
    assert [v.id for v in context.versions()] == [mine.id]  # only this base's versions
    later = create_version(store, base="b1", name="bot", kind="local", artifact_uri="/a/3")
    assert [v.id for v in context.versions()] == [mine.id, later.id]  # a live, read-only view
    assert (context.serving, served.serving) == (False, True)


# ---------------------------------------------------------------- --eval needs its scorers


def _chat_file(path: Path) -> Path:
    rnd = random.Random(3)
    rows = []
    for _ in range(12):
        a = rnd.randint(1, 9)
        rows.append({"messages": [{"role": "user", "content": f"Double {a}"},
                                  {"role": "assistant", "content": str(2 * a)}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("allowed", ["local", "local,evaluators"])
def test_train_eval_checks_the_scorer_plugins_before_training(
    allowed: str, gateway_home: Path, gateway_cli: Any, tiny_model_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("torch")
    from click.testing import CliRunner

    from gateway.cli import assemble
    from gateway.plugins import reset_plugin_manager
    from gateway.store import Store

    assert gateway_cli("models", "add", "--path", str(tiny_model_dir), "--name", "tiny").exit_code == 0
    monkeypatch.setenv("GATEWAY_PLUGINS", allowed)
    reset_plugin_manager()
    data = _chat_file(tmp_path / "train.jsonl")
    result = CliRunner().invoke(assemble(), ["train", "--base", "tiny", "--data", str(data),
                                             "--suffix", "bot", "--max-steps", "1",
                                             "--batch-size", "4", "--lora-r", "2",
                                             "--eval", str(CAPITALS)])
    store = Store(gateway_home / "gateway.duckdb")
    jobs = store.query_one("SELECT count(*) AS n FROM jobs")
    if allowed == "local":
        assert result.exit_code == 1, result.output
        assert "scorer 'exact' cannot load" in result.output
        assert "evaluators (not in GATEWAY_PLUGINS)" in result.output
        assert jobs == {"n": 0}  # refused before any job or training
    else:
        assert result.exit_code == 0, result.output
        assert jobs == {"n": 1}
        links = store.query("SELECT evalset, role FROM version_evals")
        assert links == [{"evalset": "capitals", "role": "base"}]
