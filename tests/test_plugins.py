"""The plugin host: built-in plugins, third-party plugins, broken plugins, the allowlist."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gateway import hookimpl
from gateway.contracts import PerSampleEvaluator, Sample, Score
from gateway.plugins import evaluators, plugin_infos, reset_plugin_manager
from gateway.testing.fixtures import registered_plugins


class ShoutEvaluator(PerSampleEvaluator):
    name: ClassVar[str] = "shout"
    description: ClassVar[str] = "passes when the output is upper case"
    corpus_level: ClassVar[bool] = False

    def score(self, sample: Sample) -> Score:
        ok = sample.output.isupper()
        return Score(value=float(ok), passed=ok)

    def score_corpus(self, samples: list[Sample]) -> Score:
        raise NotImplementedError


class ThirdPartyPlugin:
    @hookimpl
    def register_evaluators(self, register: Any) -> None:
        register(ShoutEvaluator)


def test_builtin_plugins_are_listed(gateway_home: Path, gateway_cli: Any) -> None:
    result = gateway_cli("plugins", "list", "--format", "json")
    assert result.exit_code == 0
    rows = json.loads(result.output)
    names = {row["name"] for row in rows}
    assert {"local", "vllm", "evaluators", "hosted"} <= names
    # hosted is a trainer and a backend, loaded through its entry point like the others.
    hosted = {(row["kind"], row["status"]) for row in rows if row["name"] == "hosted"}
    assert hosted == {("trainer", "loaded"), ("backend", "loaded")}


def test_third_party_plugin_shows_in_list(
    gateway_home: Path, gateway_cli: Any, register_plugin: Any
) -> None:
    register_plugin(ThirdPartyPlugin(), "shouty")
    rows = json.loads(gateway_cli("plugins", "list", "--format", "json").output)
    mine = [r for r in rows if r["name"] == "shouty"]
    assert mine == [
        {"name": "shouty", "kind": "evaluator", "provides": "shout", "version": "-", "status": "loaded"}
    ]
    assert evaluators()["shout"] is ShoutEvaluator


def test_plugin_is_gone_after_fixture(gateway_home: Path) -> None:
    # The fixture's own machinery, run here start to end, so no other test's order matters.
    with registered_plugins() as register:
        register(ThirdPartyPlugin(), "shouty")
        assert "shouty" in {i.name for i in plugin_infos()}
        assert "shout" in evaluators()
    assert "shouty" not in {i.name for i in plugin_infos()}
    assert "shout" not in evaluators()


@pytest.fixture
def broken_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real installed distribution whose gateway plugin fails to import."""
    site = tmp_path / "site"
    pkg = site / "broken_gateway_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import a_module_that_does_not_exist\n")
    dist = site / "broken_gateway_plugin-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-gateway-plugin\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[gateway]\nbroken = broken_gateway_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    reset_plugin_manager()
    yield site
    sys.modules.pop("broken_gateway_plugin", None)
    reset_plugin_manager()


def test_broken_plugin_is_unavailable_and_host_works(
    gateway_home: Path, broken_distribution: Path, gateway_cli: Any
) -> None:
    result = gateway_cli("plugins", "list", "--format", "json")
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["broken"]["status"].startswith("unavailable: ModuleNotFoundError")
    assert "a_module_that_does_not_exist" in rows["broken"]["status"]
    assert rows["broken"]["version"] == "1.2.3"
    assert rows["local"]["status"] == "loaded"


def test_missing_requirement_names_the_extra(
    gateway_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gateway_cli: Any
) -> None:
    site = tmp_path / "site2"
    (site / "needy_plugin").mkdir(parents=True)
    (site / "needy_plugin" / "__init__.py").write_text(
        'GATEWAY_REQUIRES = ["not_installed_anywhere"]\nGATEWAY_EXTRA = "needy"\n'
    )
    dist = site / "needy_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: needy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[gateway]\nneedy = needy_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    reset_plugin_manager()
    try:
        rows = {r["name"]: r for r in json.loads(gateway_cli("plugins", "list", "--format", "json").output)}
        assert rows["needy"]["status"] == (
            "unavailable: missing module not_installed_anywhere (pip install 'finetune-gateway[needy]')"
        )
    finally:
        sys.modules.pop("needy_plugin", None)
        reset_plugin_manager()


def test_allowlist_disables_other_plugins(
    gateway_home: Path, monkeypatch: pytest.MonkeyPatch, gateway_cli: Any
) -> None:
    monkeypatch.setenv("GATEWAY_PLUGINS", "evaluators")
    reset_plugin_manager()
    rows = {r["name"]: r for r in json.loads(gateway_cli("plugins", "list", "--format", "json").output)}
    assert rows["evaluators"]["status"] == "loaded"
    assert rows["local"]["status"] == "disabled: not in GATEWAY_PLUGINS"
    reset_plugin_manager()
