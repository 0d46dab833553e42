"""Tests of the example plugin against the real host.

The fixtures come from the gateway's pytest plugin (`gateway.testing`, loaded
automatically once the gateway is installed): `gateway_home` gives each test
an empty GATEWAY_HOME, `gateway_cli` runs `gateway` commands in-process.
The plugin itself is found through its installed entry point, as a user's
gateway would find it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.contracts import (
    BackendRequestError,
    BaseModel,
    ChatRequest,
    CompletionRequest,
    GenerationParams,
    ModelTarget,
    Sample,
)
from gateway.errors import GatewayError
from gateway.plugins import get_evaluator_class
from gateway.registry import add_base_model
from gateway.router import Router
from gateway.store import Store

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hello there"},
]


def sample(output: str) -> Sample:
    return Sample(id="s1", messages=MESSAGES, ideal=None, output=output)


@pytest.fixture
def echo_base(gateway_home: Path) -> Path:
    """A home with base model `echo-base`, served by the `reverse` backend."""
    (gateway_home / "config.toml").write_text('[backends."echo-base"]\nbackend = "reverse"\n')
    add_base_model(Store(load_config().db_path), BaseModel(name="echo-base", source="path"))
    return gateway_home


def test_plugins_list_shows_the_installed_plugin(gateway_home: Path, gateway_cli: Any) -> None:
    result = gateway_cli("plugins", "list", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = [r for r in json.loads(result.output) if r["name"] == "example"]
    assert rows, f"the `example` entry point is not installed:\n{result.output}"
    provides = {r["kind"]: r["provides"] for r in rows}
    assert provides == {"backend": "reverse", "evaluator": "max-words"}
    assert {r["status"] for r in rows} == {"loaded"}
    assert {r["version"] for r in rows} == {"0.1.0"}


def test_max_words_scores(gateway_home: Path) -> None:
    evaluator = get_evaluator_class("max-words")(max_words=3)
    within = evaluator.score(sample("one two  three\n"))
    assert (within.value, within.passed, within.detail) == (1.0, True, "3 words (limit 3)")
    over = evaluator.score(sample("one two three four"))
    assert (over.value, over.passed) == (0.0, False)
    corpus = evaluator.score_corpus([sample("a b"), sample("a b c d e")])
    assert (corpus.value, corpus.passed) == (0.5, False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_words": "ten"}, "option 'max_words' must be an integer"),
        ({"max_words": -1}, "option 'max_words' must be at least 0"),
        ({"max_word": 3}, "unknown option 'max_word'"),
    ],
)
def test_max_words_rejects_bad_options(gateway_home: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(GatewayError, match=message):
        get_evaluator_class("max-words")(**options)


def test_reverse_backend_answers_through_the_router(echo_base: Path) -> None:
    async def scenario() -> None:
        config = load_config()
        router = Router(config, Store(config.db_path))
        try:
            target = router.resolve("echo-base")
            assert router.backend_name(target) == "reverse"
            backend = await router.backend_for(target)
            assert await router.backend_for(target) is backend  # built and started once

            answer = await backend.chat(ChatRequest(target=target, messages=MESSAGES))
            assert answer.text == "ereht olleh"
            assert answer.finish_reason == "stop"
            assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, 2)

            deltas = [d async for d in backend.stream(ChatRequest(target=target, messages=MESSAGES))]
            assert "".join(d.text for d in deltas) == answer.text
            assert [d.finish_reason for d in deltas] == [None, "stop"]
            assert deltas[-1].usage == answer.usage

            completion = await backend.complete(CompletionRequest(target=target, prompt="abc"))
            assert completion.text == "cba"

            health = await backend.health()
            assert health == {"status": "ok", "backend": "reverse", "base": "echo-base",
                              "requests": 3}
        finally:
            await router.close()

    asyncio.run(scenario())


def test_reverse_backend_settings_and_limits(echo_base: Path) -> None:
    (echo_base / "config.toml").write_text(
        '[backends."echo-base"]\nbackend = "reverse"\nprefix = "> "\n'
    )

    async def scenario() -> None:
        config = load_config()
        router = Router(config, Store(config.db_path))
        try:
            target = router.resolve("echo-base")
            backend = await router.backend_for(target)
            request = ChatRequest(target=target, messages=[{"role": "user", "content": "c b a"}],
                                  params=GenerationParams(max_tokens=2))
            answer = await backend.chat(request)
            assert (answer.text, answer.finish_reason) == ("> a", "length")
            deltas = [d async for d in backend.stream(request)]
            assert [d.text for d in deltas] == [">", " a"]
            assert deltas[-1].finish_reason == "length"
        finally:
            await router.close()

    asyncio.run(scenario())


def test_reverse_backend_refuses_adapters(echo_base: Path) -> None:
    async def scenario() -> None:
        config = load_config()
        router = Router(config, Store(config.db_path))
        try:
            target = ModelTarget(requested="ft:echo-base:x:1", base="echo-base",
                                 adapter_name="x", adapter_path="/nowhere")
            backend = await router.backend_for(target)
            with pytest.raises(BackendRequestError, match="base models only"):
                await backend.chat(ChatRequest(target=target, messages=MESSAGES))
            with pytest.raises(BackendRequestError, match="serves no adapters"):
                await backend.load_adapter(target)
        finally:
            await router.close()

    asyncio.run(scenario())


def test_gateway_eval_runs_the_plugin_end_to_end(
    echo_base: Path, gateway_cli: Any, tmp_path: Path
) -> None:
    rows = [
        {"id": "short", "messages": [{"role": "user", "content": "two words"}], "ideal": None},
        {"id": "long", "messages": [{"role": "user", "content": "one two three"}], "ideal": None},
    ]
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "evalset.yaml").write_text(
        "name: brevity\ndata: eval.jsonl\n"
        "scorers:\n  - name: max-words\n    options: {max_words: 2}\n"
    )
    result = gateway_cli("eval", str(tmp_path / "evalset.yaml"), "--model", "echo-base",
                         "--quiet", "--format", "json")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.output)
    assert (run["status"], run["samples"], run["errors"]) == ("completed", 2, 0)
    (score,) = [s for s in run["scores"] if s["scorer"] == "max-words"]
    assert (score["n"], score["mean"], score["pass_rate"]) == (2, 0.5, 0.5)
