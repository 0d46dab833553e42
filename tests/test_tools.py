"""Tools through a live `gateway serve`, with the openai SDK as the client.

- Local backend (tiny model, a Hermes-style template from tool_template.py): a forced function is
  decoded under its parameter schema and answered as a `tool_calls` entry, streamed and not;
  assistant tool calls and `role: "tool"` messages in the request reach the prompt; "auto" and a
  template that does not render tools are refused by name.
- Hosted backend: process A serves B's model through litellm; B's tool calls come back through A.
- Training files with tools: validated as OpenAI does; trained on when the template renders tools,
  refused naming the template when it does not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
from servers import free_port, gateway_server
from tool_template import write_tool_template

from gateway.registry import BaseModel, add_base_model
from gateway.store import Store

WEATHER = {
    "type": "object",
    "properties": {"city": {"enum": ["Paris", "Oslo", "Lima"]}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
# strict: vLLM (like OpenAI) holds the arguments to the schema only for strict functions;
# the local backend always does.
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                      "parameters": WEATHER, "strict": True}},
    {"type": "function", "function": {"name": "get_time", "strict": True, "parameters": {
        "type": "object", "properties": {"zone": {"enum": ["utc", "cet"]}}, "required": ["zone"],
        "additionalProperties": False}}},
]
FORCE_WEATHER: Any = {"type": "function", "function": {"name": "get_weather"}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
# A finished exchange: the assistant's call, the tool's answer, and a follow-up.
ROUND_TRIP: list[Any] = [
    *ASK,
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees, sunny"},
    {"role": "user", "content": "And in Oslo?"},
]


@dataclass
class Served:
    url: str
    home: Path
    hosted_url: str

    def client(self, hosted: bool = False) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.hosted_url if hosted else self.url}/v1",
                             api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("tools")
    template = write_tool_template(root / "hermes.jinja")
    home = root / "b"
    store = Store(home / "gateway.duckdb")
    for name in ("tiny", "tools"):
        add_base_model(store, BaseModel(name=name, source="path", path=str(tiny_model_dir)))
    (home / "config.toml").write_text(
        '[server]\nlog_flush_interval = 0.2\n'
        '[backends.tiny]\nbackend = "local"\n'
        f'[backends.tools]\nbackend = "local"\nchat_template = {json.dumps(str(template))}\n')
    port = free_port()
    caller = root / "a"
    caller.mkdir()
    (caller / "config.toml").write_text(
        f'[providers.b]\nprovider = "openai"\napi_base = "http://127.0.0.1:{port}/v1"\n'
        'api_key_env = "B_TOOLS_KEY"\ntimeout = 60\n'
        '[backends."b-tools"]\nbackend = "hosted"\nprovider = "b"\nmodel = "tools"\n')
    with gateway_server(home, port=port, startup_timeout=120) as url, \
            gateway_server(caller, env={"B_TOOLS_KEY": "unused"}) as hosted_url:
        yield Served(url, home, hosted_url)


def check_weather_call(calls: Any) -> dict[str, Any]:
    assert calls is not None and len(calls) == 1, calls
    call = calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert call.id  # call_... here; vLLM's are chatcmpl-tool-...
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER)
    return dict(arguments)


def streamed_call(chunks: Any) -> tuple[Any, str | None]:
    """The tool call a stream delivers, joined from its pieces, and the finish reason."""
    joined: dict[str, Any] = {}
    finish = None
    for chunk in chunks:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for piece in choice.delta.tool_calls or []:
                assert piece.index == 0
                if piece.id:
                    assert not joined, "only the first piece carries the id"
                    joined = {"id": piece.id, "name": piece.function.name, "arguments": ""}
                joined["arguments"] += piece.function.arguments or ""
    call = openai.types.chat.ChatCompletionMessageToolCall.model_validate(
        {"id": joined["id"], "type": "function",
         "function": {"name": joined["name"], "arguments": joined["arguments"]}})
    return call, finish


@pytest.mark.parametrize("hosted", [False, True], ids=["local", "hosted"])
def test_a_forced_function_is_decoded_under_its_schema(served: Served, hosted: bool) -> None:
    client = served.client(hosted)
    model = "b-tools" if hosted else "tools"
    # A forced call finishes with "stop", as OpenAI's and vLLM's do; litellm reports
    # "tool_calls" for any answer that holds calls.
    finished = {"stop", "tool_calls"} if hosted else {"stop"}
    for seed in range(3):
        reply = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, seed=seed,
                                               tool_choice=FORCE_WEATHER, max_tokens=40)
        choice = reply.choices[0]
        assert choice.finish_reason in finished and choice.message.content is None
        check_weather_call(choice.message.tool_calls)
    stream = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, max_tokens=40,
                                            tool_choice=FORCE_WEATHER, stream=True)
    call, finish = streamed_call(stream)
    assert finish in finished
    check_weather_call([call])


def test_required_with_one_tool_calls_it_and_none_answers_in_text(served: Served) -> None:
    client = served.client()
    reply = client.chat.completions.create(model="tools", messages=ASK, tools=TOOLS[:1],
                                           tool_choice="required", max_tokens=40)
    check_weather_call(reply.choices[0].message.tool_calls)
    plain = client.chat.completions.create(model="tools", messages=ASK, tools=TOOLS,
                                           tool_choice="none", max_tokens=4)
    assert plain.choices[0].message.tool_calls is None and plain.choices[0].message.content


def test_tool_calls_and_tool_messages_reach_the_prompt(served: Served) -> None:
    client = served.client()
    plain = client.chat.completions.create(model="tools", messages=ROUND_TRIP[-1:], tools=TOOLS,
                                           tool_choice=FORCE_WEATHER, max_tokens=40)
    reply = client.chat.completions.create(model="tools", messages=ROUND_TRIP, tools=TOOLS,
                                           tool_choice=FORCE_WEATHER, max_tokens=40)
    check_weather_call(reply.choices[0].message.tool_calls)
    # The call, its arguments and the tool's answer are in the prompt: many more tokens.
    assert reply.usage is not None and plain.usage is not None
    assert reply.usage.prompt_tokens - plain.usage.prompt_tokens > 30
    # The SDK's own objects go back in as they came out: the answer continues the exchange.
    message = reply.choices[0].message
    follow_up = [*ROUND_TRIP, message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "3 degrees"}]
    again = client.chat.completions.create(model="tools", messages=follow_up, tools=TOOLS,
                                           tool_choice={"type": "function", "function": {"name": "get_time"}},
                                           max_tokens=40)
    call = again.choices[0].message.tool_calls[0]
    assert call.function.name == "get_time" and json.loads(call.function.arguments)["zone"] in ("utc", "cet")


@pytest.mark.parametrize(("model", "body", "param", "says"), [
    ("tools", {"tools": TOOLS}, "tool_choice", "--enable-auto-tool-choice"),
    ("tools", {"tools": TOOLS, "tool_choice": "auto"}, "tool_choice", "name the function"),
    ("tools", {"tools": TOOLS, "tool_choice": "required"}, "tool_choice", "2 tools"),
    ("tiny", {"tools": TOOLS, "tool_choice": FORCE_WEATHER}, "tools",
     "the chat template of tiny does not render tools"),
    ("tools", {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice.function.name", "no tool is named 'nope'"),
    ("tools", {"tool_choice": "none"}, "tool_choice", "only allowed when 'tools'"),
    ("tools", {"parallel_tool_calls": False}, "parallel_tool_calls", "only allowed when 'tools'"),
    ("tools", {"tools": [{"type": "function", "function": {"name": "bad name"}}]},
     "tools[0].function.name", "letters, digits"),
    ("tools", {"messages": [*ASK, {"role": "tool", "content": "x"}]}, "messages[1].tool_call_id",
     "Missing required parameter"),
    ("tools", {"messages": [{"role": "user", "content": "x", "tool_calls": ROUND_TRIP[1]["tool_calls"]}]},
     "messages[0].tool_calls", "only assistant messages"),
])
def test_what_cannot_be_honoured_is_refused_by_name(served: Served, model: str, body: dict[str, Any],
                                                    param: str, says: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        served.client().chat.completions.create(model=model, max_tokens=4,
                                                **{"messages": ASK, **body})
    assert info.value.param == param and says in info.value.message, info.value.message


def test_hosted_logprobs_and_echo_reach_the_provider(served: Served) -> None:
    # Not tools, but the same two processes: A's hosted backend asks B through litellm.
    client = served.client(hosted=True)
    text = client.completions.create(model="b-tools", prompt="The sky is", max_tokens=2, logprobs=2,
                                     echo=True)
    choice = text.choices[0]
    assert choice.text.startswith("The sky is")
    assert choice.logprobs is not None and choice.logprobs.token_logprobs[0] is None
    assert len(choice.logprobs.top_logprobs[-1]) == 2
    chat = client.chat.completions.create(model="b-tools", messages=ASK, max_tokens=3, logprobs=True,
                                          top_logprobs=2)
    content = chat.choices[0].logprobs.content
    assert len(content) == 3 and all(len(entry.top_logprobs) == 2 for entry in content)
