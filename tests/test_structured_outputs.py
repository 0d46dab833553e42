"""Structured outputs and the parameter rule on a live `gateway serve` (local backend, tiny model),
through the official openai SDK.

- `response_format` (json_object, json_schema) constrains decoding with llguidance: when
  finish_reason is "stop" the answer parses and validates; the SDK's parse helper works.
- Mixed batches (different schemas, or none) decode together; bad or oversized schemas get 400.
- Every parameter of the installed SDK's request types is either honoured or refused with a 400
  naming it: none is silently dropped.
"""

from __future__ import annotations

import asyncio
import json
import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
from pydantic import BaseModel as Pydantic
from servers import gateway_server

from gateway.registry import BaseModel, add_base_model
from gateway.store import Store

TICKET = {
    "type": "object",
    "properties": {"label": {"enum": ["refund", "bug", "other"]}, "urgent": {"type": "boolean"}},
    "required": ["label", "urgent"],
    "additionalProperties": False,
}
POINT = {
    "type": "object",
    "properties": {"x": {"type": "integer", "minimum": 0, "maximum": 9}, "tag": {"enum": ["a", "b"]}},
    "required": ["x", "tag"],
    "additionalProperties": False,
}
HI = [{"role": "user", "content": "Classify: my order never arrived."}]


def schema_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


@dataclass
class Served:
    url: str
    home: Path

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("structured")
    add_base_model(Store(home / "gateway.duckdb"),
                   BaseModel(name="tiny", source="path", path=str(tiny_model_dir)))
    (home / "config.toml").write_text('[server]\nlog_flush_interval = 0.2\n'
                                      '[backends.tiny]\nbackend = "local"\nmax_batch_size = 8\n')
    with gateway_server(home, startup_timeout=120) as url:
        yield Served(url, home)


def test_json_schema_output_parses_and_validates(served: Served) -> None:
    client = served.client()
    for seed in range(4):
        reply = client.chat.completions.create(model="tiny", messages=HI, max_tokens=30, temperature=1.0,
                                               seed=seed, response_format=schema_format("ticket", TICKET))
        choice = reply.choices[0]
        assert choice.finish_reason == "stop", choice  # the grammar forces a short answer
        jsonschema.validate(json.loads(choice.message.content or ""), TICKET)


def test_json_object_and_streaming(served: Served) -> None:
    client = served.client()
    reply = client.chat.completions.create(model="tiny", messages=HI, max_tokens=12, temperature=0,
                                           response_format={"type": "json_object"})
    text, finish = reply.choices[0].message.content or "", reply.choices[0].finish_reason
    assert text.startswith("{")
    if finish == "stop":
        assert isinstance(json.loads(text), dict)
    else:  # cut by max_tokens: the client gets what was generated, as OpenAI does
        assert finish == "length" and reply.usage and reply.usage.completion_tokens == 12
    chunks = client.chat.completions.create(model="tiny", messages=HI, max_tokens=30, temperature=0.7,
                                            seed=3, stream=True, response_format=schema_format("p", POINT))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    jsonschema.validate(json.loads(streamed), POINT)


class Label(StrEnum):
    refund = "refund"
    bug = "bug"
    other = "other"


class Ticket(Pydantic):
    label: Label
    urgent: bool


def test_the_sdk_parse_helper_returns_a_parsed_object(served: Served) -> None:
    client = served.client()
    completions = client.chat.completions
    parse = completions.parse if hasattr(completions, "parse") else client.beta.chat.completions.parse
    reply = parse(model="tiny", messages=HI, max_tokens=30, temperature=0, response_format=Ticket)
    parsed = reply.choices[0].message.parsed
    assert isinstance(parsed, Ticket) and isinstance(parsed.urgent, bool)


def test_a_mixed_batch_keeps_every_row_on_its_own_format(served: Served) -> None:
    async def ask(i: int) -> Any:
        formats: list[dict[str, Any] | None] = [schema_format("ticket", TICKET), schema_format("p", POINT), None]
        chosen = formats[i % 3]
        extra = {"response_format": chosen} if chosen else {}
        reply = await served.async_client().chat.completions.create(
            model="tiny", messages=HI, max_tokens=30, temperature=0.9, seed=i, **extra)
        return chosen, reply.choices[0]

    async def all_of() -> list[Any]:
        return await asyncio.gather(*(ask(i) for i in range(9)))

    for chosen, choice in asyncio.run(all_of()):
        if chosen is None:
            assert choice.finish_reason == "length"  # the tiny model rambles when unconstrained
            continue
        schema = chosen["json_schema"]["schema"]
        assert choice.finish_reason == "stop"
        jsonschema.validate(json.loads(choice.message.content), schema)


@pytest.mark.parametrize(
    ("response_format", "says"),
    [
        (schema_format("bad", {"type": "nonsense"}), "schema"),
        (schema_format("ref", {"$ref": "#/$defs/missing"}), "schema"),
        (schema_format("big", {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 80}
                                                              for i in range(1000)}}), "limit is 65536"),
        ({"type": "xml"}, "json_schema"),
    ],
)
def test_a_bad_schema_gets_400_naming_response_format(served: Served, response_format: dict[str, Any],
                                                     says: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        served.client().chat.completions.create(model="tiny", messages=HI, max_tokens=4,
                                                response_format=response_format)  # type: ignore[arg-type]
    assert info.value.param == "response_format" and says in info.value.message, info.value.message


def test_compiled_grammars_are_cached_by_schema(tiny_model_dir: Path) -> None:
    from gateway_local.grammars import Grammars
    from transformers import AutoTokenizer

    grammars = Grammars(AutoTokenizer.from_pretrained(tiny_model_dir), 49152, [2])
    first = grammars.compile(schema_format("a", TICKET))
    reordered = json.loads(json.dumps(TICKET, sort_keys=True))
    assert grammars.compile(schema_format("b", reordered)) is first
    assert grammars.compile({"type": "text"}) is None


# ---------------------------------------------------------------- the parameter rule

HONOURED = {"model", "messages", "prompt", "max_tokens", "max_completion_tokens", "temperature", "top_p",
            "stop", "seed", "n", "stream_options", "response_format", "user", "metadata",
            "logprobs", "top_logprobs", "echo",  # these three: tests/test_logprobs.py
            "tools", "tool_choice", "parallel_tool_calls"}  # these three: tests/test_tools.py
# A value for each parameter the local backend refuses (it must name the parameter).
REFUSED_VALUES: dict[str, Any] = {
    "audio": {"voice": "alloy", "format": "wav"}, "frequency_penalty": 0.5,
    "function_call": "none", "functions": [{"name": "f", "parameters": {"type": "object"}}],
    "logit_bias": {"42": 5}, "modalities": ["text"], "moderation": {"mode": "off"},
    "prediction": {"type": "content", "content": "x"},
    "presence_penalty": 0.5, "prompt_cache_key": "k", "prompt_cache_options": {"x": 1},
    "prompt_cache_retention": "24h", "reasoning_effort": "low", "safety_identifier": "u1",
    "service_tier": "auto", "store": True,
    "verbosity": "low", "web_search_options": {}, "best_of": 2, "suffix": "!",
}


def sdk_parameters(params_type: Any) -> set[str]:
    return set(typing.get_type_hints(params_type)) - {"stream"}


def test_every_sdk_parameter_is_honoured_or_refused_by_name(served: Served) -> None:
    chat_params = sdk_parameters(openai.types.chat.completion_create_params.CompletionCreateParamsBase)
    text_params = sdk_parameters(openai.types.completion_create_params.CompletionCreateParamsBase)
    unknown = (chat_params | text_params) - HONOURED - set(REFUSED_VALUES)
    assert not unknown, f"the installed openai SDK has parameters this test does not know: {unknown}"
    client = served.client()
    for name in sorted(chat_params - HONOURED):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="tiny", messages=HI, max_tokens=2,
                                           extra_body={name: REFUSED_VALUES[name]})
        assert info.value.param == name and "local backend" in info.value.message, (name, info.value.message)
    for name in sorted(text_params - HONOURED):
        with pytest.raises(openai.BadRequestError) as info:
            client.completions.create(model="tiny", prompt="Hi", max_tokens=2,
                                      extra_body={name: REFUSED_VALUES[name]})
        assert info.value.param == name, (name, info.value.message)
    # A backend's own parameter is refused by name too (vLLM would take it).
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=HI, max_tokens=2, extra_body={"top_k": 5})
    assert info.value.param == "top_k"
    # The honoured ones, each checked: user and metadata land in the request log.
    reply = client.chat.completions.create(
        model="tiny", messages=HI, max_completion_tokens=3, temperature=0.5, top_p=0.9, stop=["zzz"],
        seed=5, n=1, user="agent-7", metadata={"team": "support"})
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    stream = client.chat.completions.create(model="tiny", messages=HI, max_tokens=2, stream=True,
                                            stream_options={"include_usage": True})
    assert [c for c in stream][-1].usage is not None
    store = Store(served.home / "gateway.duckdb")
    until = time.monotonic() + 10
    while not store.query("SELECT 1 FROM request_log WHERE \"user\" = 'agent-7'"):
        assert time.monotonic() < until, "the request with `user` was never logged"
        time.sleep(0.2)
    row = store.query_one("SELECT metadata FROM request_log WHERE \"user\" = 'agent-7'")
    assert row is not None and json.loads(row["metadata"]) == {"team": "support"}


def test_a_parameter_of_the_other_route_is_passed_on_not_dropped() -> None:
    from gateway.serving.errors import ApiError
    from gateway.serving.params import parse_request

    chat = parse_request({"model": "m", "messages": HI, "echo": True}, chat=True)
    assert chat.params.extra == {"echo": True} and chat.params.echo is False
    text = parse_request({"model": "m", "prompt": "x", "metadata": {"a": "b"}, "top_logprobs": 2,
                          "max_completion_tokens": 3}, chat=False)
    assert set(text.params.extra) == {"metadata", "top_logprobs", "max_completion_tokens"}
    assert text.metadata is None and text.params.max_tokens is None
    constrained = parse_request({"model": "m", "prompt": "x", "response_format": {"type": "json_object"}},
                                chat=False)
    assert constrained.params.response_format == {"type": "json_object"}
    with pytest.raises(ApiError) as info:
        parse_request({"model": "m", "prompt": "x", "response_format": "json"}, chat=False)
    assert info.value.param == "response_format"
