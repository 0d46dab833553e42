"""`gateway models`: add, import-gguf, pull, list, show and alias, through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway import hookimpl
from gateway.contracts import ModelInfo
from gateway.registry import create_version, get_base_model
from gateway.store import Store
from gateway.util import utcnow

FAKE_META = ModelInfo(architecture="FakeLM", context_length=128, parameters=1_000_000)


def fake_folder(dest: Path) -> None:
    dest.mkdir(parents=True)
    (dest / "config.json").write_text(json.dumps({"architectures": ["FakeLM"]}))


class FakeModelsPlugin:
    """Knows one built-in model, converts "GGUF" files, and describes its own folders."""

    def __init__(self) -> None:
        self.pulled: list[tuple[str, Path]] = []
        self.imported: list[tuple[Path, Path]] = []

    @hookimpl
    def register_builtin_models(self, register: Any) -> None:
        register("fake-1m", "a one-million-parameter fake")

    @hookimpl(tryfirst=True)
    def pull_model(self, name: str, dest: Path, progress: Any) -> ModelInfo | None:
        if name != "fake-1m":
            return None
        progress("Fetching fake-1m...")
        self.pulled.append((name, dest))
        fake_folder(dest)
        return FAKE_META

    @hookimpl(tryfirst=True)
    def import_gguf(self, gguf_path: Path, dest: Path, progress: Any) -> ModelInfo:
        progress(f"Converting {gguf_path.name}...")
        self.imported.append((gguf_path, dest))
        fake_folder(dest)
        return FAKE_META

    @hookimpl(tryfirst=True)
    def describe_model(self, path: Path) -> ModelInfo | None:
        return FAKE_META if (path / "fake.marker").exists() else None


def rows(gateway_cli: Any, *args: str) -> list[dict[str, Any]]:
    result = gateway_cli(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def test_add_local_folder_reads_metadata(gateway_home: Path, gateway_cli: Any, tiny_model_dir: Path) -> None:
    result = gateway_cli("models", "add", "--path", str(tiny_model_dir))
    assert result.exit_code == 0, result.output
    name = tiny_model_dir.name
    assert result.output.strip() == (
        f"Added base model {name} (LlamaForCausalLM, 3.2M params, context 2048)"
    )
    shown = json.loads(gateway_cli("models", "show", name, "--format", "json").output)
    assert shown["type"] == "base" and shown["source"] == "path"
    assert shown["path"] == str(tiny_model_dir.resolve())
    assert (shown["architecture"], shown["context_length"]) == ("LlamaForCausalLM", 2048)
    assert shown["parameters"] == 3_219_776  # exact, from the safetensors header

    again = gateway_cli("models", "add", "--path", str(tiny_model_dir))
    assert again.exit_code == 1
    assert f"a base model named '{name}' already exists" in again.output


def test_add_uses_the_describe_hook(
    gateway_home: Path, gateway_cli: Any, register_plugin: Any, tmp_path: Path
) -> None:
    register_plugin(FakeModelsPlugin(), "fake-models")
    folder = tmp_path / "mine"
    fake_folder(folder)
    (folder / "fake.marker").touch()
    result = gateway_cli("models", "add", "--path", str(folder), "--name", "mine")
    assert result.output.strip() == "Added base model mine (FakeLM, 1.0M params, context 128)"


def test_add_hf_id_is_only_recorded(gateway_home: Path, gateway_cli: Any) -> None:
    result = gateway_cli("models", "add", "--hf", "HuggingFaceTB/SmolLM2-360M-Instruct", "--name", "smol360")
    assert result.exit_code == 0 and result.output.strip() == "Added base model smol360"
    model = get_base_model(Store(gateway_home / "gateway.duckdb"), "smol360")
    assert (model.source, model.hf_id, model.path) == ("hf", "HuggingFaceTB/SmolLM2-360M-Instruct", None)


def test_add_usage_errors(gateway_home: Path, gateway_cli: Any, tmp_path: Path) -> None:
    neither = gateway_cli("models", "add")
    assert neither.exit_code == 2 and "give exactly one of --path DIR or --hf ID" in neither.output
    both = gateway_cli("models", "add", "--path", str(tmp_path), "--hf", "a/b")
    assert both.exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    result = gateway_cli("models", "add", "--path", str(empty))
    assert result.exit_code == 1
    assert f"Error: {empty} has no config.json: not a Hugging Face model folder" in result.output
    bad = gateway_cli("models", "add", "--hf", "a/b", "--name", "no spaces please")
    assert bad.exit_code == 1 and "invalid model name" in bad.output


def test_pull_through_the_hooks_is_idempotent(
    gateway_home: Path, gateway_cli: Any, register_plugin: Any
) -> None:
    plugin = FakeModelsPlugin()
    register_plugin(plugin, "fake-models")
    first = gateway_cli("models", "pull", "fake-1m")
    assert first.exit_code == 0, first.output
    dest = gateway_home / "models" / "fake-1m"
    assert first.output.splitlines() == [
        "Fetching fake-1m...",
        f"Added base model fake-1m (FakeLM, 1.0M params, context 128) at {dest}",
    ]
    second = gateway_cli("models", "pull", "fake-1m")
    assert second.output.strip() == f"fake-1m is already available at {dest}"
    assert plugin.pulled == [("fake-1m", dest)]
    model = get_base_model(Store(gateway_home / "gateway.duckdb"), "fake-1m")
    assert (model.source, model.path) == ("builtin", str(dest))


def test_pull_with_a_premade_folder_says_already_available(
    gateway_home: Path, gateway_cli: Any, tiny_model_dir: Path
) -> None:
    dest = gateway_home / "models" / "smollm2-135m"
    dest.mkdir(parents=True)
    shutil.copy(tiny_model_dir / "config.json", dest / "config.json")
    for _ in range(2):
        result = gateway_cli("models", "pull", "smollm2-135m")
        assert result.exit_code == 0, result.output
        assert result.output.strip() == f"smollm2-135m is already available at {dest}"
    listed = rows(gateway_cli, "models", "list")
    assert [(r["model"], r["type"], r["location"]) for r in listed] == [
        ("smollm2-135m", "base", str(dest))
    ]


def test_pull_unknown_lists_builtins(gateway_home: Path, gateway_cli: Any) -> None:
    result = gateway_cli("models", "pull", "gpt-5")
    assert result.exit_code == 1
    assert "Error: no built-in model named 'gpt-5'. Built-in models: smollm2-135m" in result.output


def test_import_gguf_through_the_hook(
    gateway_home: Path, gateway_cli: Any, register_plugin: Any, tmp_path: Path
) -> None:
    plugin = FakeModelsPlugin()
    register_plugin(plugin, "fake-models")
    gguf = tmp_path / "weights.gguf"
    gguf.write_bytes(b"GGUF")
    result = gateway_cli("models", "import-gguf", str(gguf), "--name", "conv")
    dest = gateway_home / "models" / "conv"
    assert result.output.splitlines() == [
        "Converting weights.gguf...",
        f"Added base model conv (FakeLM, 1.0M params, context 128) at {dest}",
    ]
    assert plugin.imported == [(gguf.resolve(), dest)]
    again = gateway_cli("models", "import-gguf", str(gguf), "--name", "conv")
    assert again.exit_code == 1 and "a base model named 'conv' already exists" in again.output
    assert len(plugin.imported) == 1


def test_import_broken_gguf_leaves_nothing(gateway_home: Path, gateway_cli: Any, tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a gguf file" * 10)
    result = gateway_cli("models", "import-gguf", str(junk), "--name", "junk")
    assert result.exit_code == 1
    assert f"Error: cannot convert {junk}" in result.output
    assert not (gateway_home / "models" / "junk").exists()
    assert not (gateway_home / "models" / "junk.partial").exists()
    assert rows(gateway_cli, "models", "list") == []


@pytest.mark.slow
def test_import_real_smollm2_gguf(gateway_home: Path, gateway_cli: Any, smollm2_gguf: Path) -> None:
    result = gateway_cli("models", "import-gguf", str(smollm2_gguf), "--name", "smol")
    assert result.exit_code == 0, result.output
    dest = gateway_home / "models" / "smol"
    lines = result.output.splitlines()  # transformers' own progress bars come in between
    assert lines[0] == f"Converting {smollm2_gguf.name} to safetensors in {dest} (takes about a minute)..."
    assert f"Added base model smol (LlamaForCausalLM, 134.5M params, context 8192) at {dest}\n" in result.output
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in dest.iterdir()}
    shown = json.loads(gateway_cli("models", "show", "smol", "--format", "json").output)
    assert (shown["source"], shown["parameters"]) == ("gguf", 134_515_008)
    # The converted folder is a working base model: its tokenizer counts tokens.
    data = gateway_home / "train.jsonl"
    line = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    data.write_text("\n".join(json.dumps(line) for _ in range(10)) + "\n")
    validated = gateway_cli("data", "validate", str(data), "--base", "smol")
    assert validated.exit_code == 0, validated.output
    assert "tokens with smol (limit 8192)" in validated.output


def test_list_show_and_alias_versions(gateway_home: Path, gateway_cli: Any, tiny_model_dir: Path) -> None:
    gateway_cli("models", "add", "--path", str(tiny_model_dir), "--name", "tiny")
    store = Store(gateway_home / "gateway.duckdb")
    store.execute(
        "INSERT INTO jobs (id, trainer, base, status, training_file, created) VALUES (?, ?, ?, ?, ?, ?)",
        ["ftjob-1", "local", "tiny", "succeeded", "/data/train.jsonl", utcnow()],
    )
    v1 = create_version(
        store, base="tiny", name="bot", kind="local", artifact_uri="/adapters/bot1",
        trainer="local", trainer_version="0.1.0", job_id="ftjob-1", dataset_sha256="cd" * 32,
        hyperparameters={"lora_r": 8, "epochs": 2}, metrics={"train_loss": 1.25},
    )
    v2 = create_version(store, base="tiny", name="bot", kind="local", artifact_uri="/adapters/bot2")

    result = gateway_cli("models", "alias", "bot@prod", "bot@v1")
    assert result.output.strip() == f"bot@prod -> bot@v1 ({v1.id})"
    listed = rows(gateway_cli, "models", "list")
    assert [(r["model"], r["type"], r["id"]) for r in listed] == [
        ("tiny", "base", ""),
        ("bot@v1", "version (local)", v1.id),
        ("bot@v2", "version (local)", v2.id),
        ("bot@prod", "alias", v1.id),
    ]
    assert listed[3]["details"] == "-> bot@v1"
    table = gateway_cli("models", "list").output
    assert table.splitlines()[0].split() == ["model", "type", "base", "id", "location", "details", "data",
                                            "created"]

    shown = json.loads(gateway_cli("models", "show", "bot@prod", "--format", "json").output)
    assert shown["id"] == v1.id and shown["ref"] == "bot@v1" and shown["base"] == "tiny"
    assert shown["dataset_sha256"] == "cd" * 32
    assert shown["hyperparameters"] == {"lora_r": 8, "epochs": 2}
    assert (shown["trainer"], shown["trainer_version"]) == ("local", "0.1.0")
    assert shown["metrics"] == {"train_loss": 1.25}
    assert shown["aliases"] == ["bot@prod"]
    assert shown["job"]["id"] == "ftjob-1" and shown["job"]["training_file"] == "/data/train.jsonl"

    text = gateway_cli("models", "show", "bot").output
    assert f"id:               {v2.id}" in text and "ref:              bot@v2" in text
    base = json.loads(gateway_cli("models", "show", "tiny", "--format", "json").output)
    assert base["versions"] == ["bot@v1", "bot@v2"]


def test_show_and_alias_errors(gateway_home: Path, gateway_cli: Any) -> None:
    gateway_cli("models", "add", "--hf", "org/base-model", "--name", "base")
    unknown = gateway_cli("models", "show", "nope")
    assert unknown.exit_code == 1
    assert "Error: the model 'nope' does not exist. Base models: base; versions: none" in unknown.output
    bad_alias = gateway_cli("models", "alias", "bot@prod", "bot@v1")
    assert bad_alias.exit_code == 1 and "unknown model version 'bot@v1'" in bad_alias.output
