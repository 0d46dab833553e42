"""The hosted plugin's rules that need no provider: configuration, redaction, refusals, estimates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gateway_hosted.providers import Provider
from gateway_hosted.trainer import HostedTrainer
from test_files_api import chat_jsonl

from gateway.config import load_config
from gateway.contracts import ConfigError, GatewayError, TrainingSpec
from gateway.jobs import create_job, run_job
from gateway.plugins import get_backend_class, get_trainer, trainer_needs_provider
from gateway.store import Store


def write_config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text, encoding="utf-8")


def test_the_plugin_provides_a_trainer_and_a_backend() -> None:
    assert get_trainer("hosted") is HostedTrainer and trainer_needs_provider("hosted")
    assert get_backend_class("hosted").name == "hosted"


def test_a_key_in_the_config_file_is_refused_without_echoing_it(gateway_home: Path) -> None:
    write_config(gateway_home, '[providers.x]\nprovider = "openai"\napi_key = "sk-planted-123456"\n')
    with pytest.raises(ConfigError) as info:
        load_config()
    assert "api_key_env" in str(info.value) and "sk-planted" not in str(info.value)
    write_config(gateway_home, '[providers.x]\nprovider = "bedrock"\n')
    with pytest.raises(ConfigError, match="openai, azure, vertex_ai"):
        load_config()


def test_redact_hides_the_key_and_its_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTED_KEY", "gw-abcdefghijklmnop")
    provider = Provider.from_settings("b", {"provider": "openai", "api_key_env": "PLANTED_KEY"})
    text = provider.redact("Incorrect API key provided: gw-abc... (full gw-abcdefghijklmnop)")
    assert "gw-abc" not in text and "abcdefghijklmnop" not in text and "***" in text


def test_hyperparameters_use_openai_names() -> None:
    trainer = HostedTrainer()
    assert trainer.resolve_hyperparameters({"epochs": 2, "batch_size": 4}) == {"n_epochs": 2, "batch_size": 4}
    with pytest.raises(GatewayError, match="learning_rate_multiplier"):
        trainer.resolve_hyperparameters({"learning_rate": 1e-4})


def test_a_hosted_job_needs_a_configured_provider(gateway_home: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_bytes(chat_jsonl(12))
    config = load_config()
    store = Store(config.db_path)
    with pytest.raises(GatewayError, match="needs --provider"):
        create_job(config, store, trainer="hosted", base="gpt-4o-mini", training_file=data)
    with pytest.raises(GatewayError, match="unknown provider 'nope'"):
        create_job(config, store, trainer="hosted", base="gpt-4o-mini", training_file=data, provider="nope")
    with pytest.raises(GatewayError, match="takes no --provider"):
        create_job(config, store, trainer="local", base="x", training_file=data, provider="nope")


def test_vertex_ai_is_refused_before_anything_is_uploaded(gateway_home: Path, tmp_path: Path) -> None:
    write_config(gateway_home, '[providers.gcp]\nprovider = "vertex_ai"\n')
    data = tmp_path / "train.jsonl"
    data.write_bytes(chat_jsonl(12))
    config = load_config()
    store = Store(config.db_path)
    job = create_job(config, store, trainer="hosted", base="gemini-1.5-flash-002", training_file=data,
                     provider="gcp")
    finished = run_job(config, store, job.id)
    assert finished.status == "failed" and "litellm cannot poll or cancel" in (finished.error or "")
    assert finished.remote_job_id is None


def test_cost_estimate_is_tokens_times_epochs_times_price(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_bytes(chat_jsonl(10))
    spec: Any = TrainingSpec(job_id="j", base="gpt-4o-mini", base_path=None, training_file=data,
                             validation_file=None, suffix=None, hyperparameters={"n_epochs": 3},
                             output_dir=tmp_path, provider="b",
                             provider_settings={"provider": "openai", "training_cost_per_1m": 8.0})
    estimate = HostedTrainer().estimate_cost(spec)
    assert estimate is not None and estimate.epochs == 3 and estimate.tokens > 0
    assert estimate.cost == pytest.approx(estimate.tokens * 3 * 8.0 / 1e6)
    spec.provider_settings = {"provider": "openai"}
    assert HostedTrainer().estimate_cost(spec) is None
