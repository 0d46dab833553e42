"""End to end: a live `gateway serve` on the local transformers+peft backend, through the
official openai SDK: models, chat and completions, streaming, adapters by version and alias,
runtime adapter loading, and 16 concurrent mixed-adapter requests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from lora import make_lora_adapter
from servers import gateway_server

from gateway.registry import BaseModel, add_base_model, create_version, set_alias
from gateway.store import Store


@dataclass
class LocalServer:
    url: str
    home: Path
    runtime_adapter: Path

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0)

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def local_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    home = tmp_path_factory.mktemp("local-serve")
    adapters = home / "adapters"
    store = Store(home / "gateway.duckdb")
    add_base_model(store, BaseModel(name="tiny", source="path", path=str(tiny_model_dir)))
    support = make_lora_adapter(tiny_model_dir, adapters / "support", seed=1)
    style = make_lora_adapter(tiny_model_dir, adapters / "style", seed=2)
    runtime = make_lora_adapter(tiny_model_dir, adapters / "runtime", seed=3)
    create_version(store, base="tiny", name="support", kind="local", artifact_uri=str(support))
    style_version = create_version(store, base="tiny", name="style", kind="local", artifact_uri=str(style))
    set_alias(store, "style@prod", style_version.ref)
    # float32: mixed-adapter batches then equal one-at-a-time generation exactly.
    (home / "config.toml").write_text(
        '[backends.tiny]\nbackend = "local"\ndtype = "float32"\nmax_batch_size = 16\n'
    )
    with gateway_server(home, startup_timeout=120) as url:
        yield LocalServer(url=url, home=home, runtime_adapter=runtime)


def chat(server: LocalServer, model: str, text: str, max_tokens: int = 12) -> str:
    reply = server.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=max_tokens, temperature=0
    )
    return reply.choices[0].message.content or ""


def test_models_list_adapters_with_parent(local_server: LocalServer) -> None:
    models = {m.id: m for m in local_server.client().models.list().data}
    versions = [m for m in models.values() if m.id.startswith("ft:tiny:")]
    assert "tiny" in models and len(versions) == 2
    assert all(getattr(v, "parent", None) == "tiny" for v in versions)
    assert "style@prod" in models


def test_adapters_change_output_and_alias_routes(local_server: LocalServer) -> None:
    prompt = "Name three colours."
    base, support, style = (chat(local_server, m, prompt) for m in ("tiny", "support@v1", "style@v1"))
    assert len({base, support, style}) == 3
    assert chat(local_server, "style@prod", prompt) == style


def test_completion_and_streaming(local_server: LocalServer) -> None:
    client = local_server.client()
    full = client.completions.create(model="support", prompt="Once upon a time", max_tokens=10, temperature=0)
    assert full.choices[0].finish_reason == "length" and full.usage and full.usage.completion_tokens == 10
    stream = client.chat.completions.create(
        model="support@v1", messages=[{"role": "user", "content": "Hello"}], max_tokens=10,
        temperature=0, stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == chat(local_server, "support@v1", "Hello", max_tokens=10)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10


def test_load_and_unload_adapter_by_path(local_server: LocalServer) -> None:
    loaded = httpx.post(
        local_server.url + "/v1/load_lora_adapter",
        json={"lora_name": "runtime", "lora_path": str(local_server.runtime_adapter)},
    )
    assert loaded.status_code == 200, loaded.text
    assert "runtime" in {m.id for m in local_server.client().models.list().data}
    assert chat(local_server, "runtime", "Hi") != chat(local_server, "tiny", "Hi")
    escape = httpx.post(
        local_server.url + "/v1/load_lora_adapter",
        json={"lora_name": "evil", "lora_path": str(local_server.runtime_adapter / ".." / ".." / "..")},
    )
    assert escape.status_code in (400, 403) and "error" in escape.json()
    unloaded = httpx.post(local_server.url + "/v1/unload_lora_adapter", json={"lora_name": "runtime"})
    assert unloaded.status_code == 200, unloaded.text
    with pytest.raises(openai.NotFoundError):
        chat(local_server, "runtime", "Hi")


def test_sixteen_concurrent_mixed_adapter_requests_equal_sequential(local_server: LocalServer) -> None:
    models = ["tiny", "support@v1", "style@prod", "support"]
    jobs = [(models[i % 4], f"Request {i}: write a short greeting.") for i in range(16)]
    sequential = [chat(local_server, model, text) for model, text in jobs]

    async def run_all() -> list[str]:
        client = local_server.async_client()

        async def one(model: str, text: str) -> str:
            reply = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": text}], max_tokens=12, temperature=0
            )
            return reply.choices[0].message.content or ""

        try:
            return await asyncio.gather(*(one(m, t) for m, t in jobs))
        finally:
            await client.close()

    concurrent = asyncio.run(run_all())
    assert concurrent == sequential
    assert len(set(sequential)) > 4  # different prompts and adapters really differ
    health = httpx.get(local_server.url + "/status").json()
    # The concurrent requests really shared forward passes.
    assert health["backends"]["local:tiny"]["max_rows"] > 4
