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


# ---------------------------------------------------------------- against small real servers


def closed_port() -> int:
    from servers import free_port

    return free_port()  # nothing listens there once the probe socket is closed


def provider_config(home: Path, api_base: str, extra: str = "") -> None:
    write_config(home, f"""
[providers.b]
provider = "openai"
api_base = "{api_base}"
api_key_env = "UNIT_KEY"
training_cost_per_1m = 10.0
poll_interval = 0.1
poll_max_interval = 0.2
max_outage = 1.0
{extra}
""")


def test_bad_data_fails_here_before_anything_is_uploaded(
    gateway_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNIT_KEY", "gw-unit")
    provider_config(gateway_home, f"http://127.0.0.1:{closed_port()}/v1")
    data = tmp_path / "bad.jsonl"
    data.write_bytes(chat_jsonl(12) + b"not json\n")
    config = load_config()
    store = Store(config.db_path)
    job = create_job(config, store, trainer="hosted", base="m", training_file=data, provider="b")
    finished = run_job(config, store, job.id)
    assert finished.status == "failed" and "line 13: invalid JSON" in (finished.error or "")
    assert finished.remote_job_id is None


def test_an_unreachable_provider_fails_the_job_after_max_outage(
    gateway_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("UNIT_KEY", "gw-unit")
    provider_config(gateway_home, f"http://127.0.0.1:{closed_port()}/v1")
    data = tmp_path / "train.jsonl"
    data.write_bytes(chat_jsonl(12))
    config = load_config()
    store = Store(config.db_path)
    job = create_job(config, store, trainer="hosted", base="m", training_file=data, provider="b")
    started = time.monotonic()
    finished = run_job(config, store, job.id)
    assert finished.status == "failed"
    assert "uploading training_file failed" in (finished.error or "") and "max_outage 1 s" in (finished.error or "")
    assert time.monotonic() - started < 30


def test_a_paid_job_without_a_terminal_needs_yes(
    gateway_home: Path, tmp_path: Path, gateway_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNIT_KEY", "gw-unit")
    provider_config(gateway_home, f"http://127.0.0.1:{closed_port()}/v1")
    data = tmp_path / "train.jsonl"
    data.write_bytes(chat_jsonl(12))
    result = gateway_cli("train", "--trainer", "hosted", "--provider", "b", "--base", "gpt-4o-mini",
                         "--data", str(data), "--epochs", "2")
    assert result.exit_code == 1
    assert "Estimated cost at b:" in result.output and "x 2 epochs x $10/1M tokens" in result.output
    assert "pass --yes" in result.output
    row = Store(load_config().db_path).query_one("SELECT status, remote_job_id FROM jobs")
    assert row == {"status": "cancelled", "remote_job_id": None}


class RateLimited:
    """An OpenAI-compatible server that answers every request with 429 and Retry-After: 7."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                owner.hits += 1
                self.rfile.read(int(self.headers.get("content-length", 0)))
                body = b'{"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit"}}'
                self.send_response(429)
                self.send_header("Retry-After", "7")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_a_providers_429_becomes_a_429_with_retry_after(
    gateway_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from gateway.contracts import BackendRateLimited, ChatRequest
    from gateway.router import Router
    from gateway.serving.errors import as_api_error

    monkeypatch.setenv("UNIT_KEY", "gw-unit")
    limited = RateLimited()
    try:
        provider_config(gateway_home, limited.url,
                        '[backends."provider-model"]\nbackend = "hosted"\nprovider = "b"\nmodel = "gpt-x"\n')
        config = load_config()
        router = Router(config, Store(config.db_path))
        target = router.resolve("provider-model")  # a configured provider model, not in the registry
        assert (target.provider, target.remote_id, router.backend_name(target)) == ("b", "gpt-x", "hosted")

        async def ask() -> BaseException:
            backend = await router.backend_for(target)
            try:
                await backend.chat(ChatRequest(target, [{"role": "user", "content": "hi"}]))
            except BackendRateLimited as exc:
                return exc
            finally:
                await router.close()
            raise AssertionError("no rate limit")

        error = as_api_error(asyncio.run(ask()))
        response = error.response()
        assert response.status_code == 429 and response.headers["retry-after"] == "7"
        assert error.body()["error"]["type"] == "rate_limit_error" and limited.hits == 1
        assert "gw-unit" not in error.message
    finally:
        limited.close()
