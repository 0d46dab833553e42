"""Tool calls on the local backend: a forced function, decoded under its schema.

With `tool_choice` naming a function (or "required" and one tool), the answer is
that function's arguments, decoded under its parameter schema with the same
grammar machinery as `response_format`, and returned as a `tool_calls` entry.
Whether to call a tool at all ("auto") is the model's decision, which needs a
parser for the model's own call syntax; this backend refuses it by name
(vLLM's hermes parser does it, so serve such models on vLLM).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncGenerator
from typing import Any

from gateway.contracts import Delta, GenerationParams, UnsupportedParameter

AUTO_REFUSAL = (
    "the local backend calls a tool only when tool_choice names it ({\"type\": \"function\", "
    "\"function\": {\"name\": ...}}, or \"required\" with one tool); deciding whether to call "
    "one (\"auto\", the default with tools) needs a tool-call parser: serve the model on vLLM "
    "with --enable-auto-tool-choice, or name the function"
)


def forced_function(params: GenerationParams) -> dict[str, Any] | None:
    """The function definition the request forces a call of; None when it forces none."""
    tools = params.tools or []
    choice = params.tool_choice
    if not tools or choice == "none":
        return None
    if choice is None or choice == "auto":
        raise UnsupportedParameter("tool_choice", AUTO_REFUSAL)
    if choice == "required":
        if len(tools) != 1:
            raise UnsupportedParameter("tool_choice", f"\"required\" with {len(tools)} tools "
                                       "needs a choice between them; " + AUTO_REFUSAL)
        return dict(tools[0]["function"])
    assert isinstance(choice, dict)
    name = choice["function"]["name"]
    return next(dict(t["function"]) for t in tools if t["function"]["name"] == name)


def arguments_format(function: dict[str, Any]) -> dict[str, Any]:
    """The response_format that constrains decoding to the function's arguments."""
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "json_schema",
            "json_schema": {"name": function["name"], "schema": schema, "strict": True}}


async def as_tool_call(function: dict[str, Any], deltas: AsyncGenerator[Delta]
                       ) -> AsyncGenerator[Delta]:
    """The decoded arguments as one streamed tool call: its name first, then the text."""
    announced = False
    async with contextlib.aclosing(deltas):
        async for delta in deltas:
            call: dict[str, Any] = {"index": 0, "function": {"arguments": delta.text}}
            if not announced:
                call.update(id=f"call_{secrets.token_hex(12)}", type="function")
                call["function"] = {"name": function["name"], "arguments": delta.text}
                announced = True
            yield Delta(text="", finish_reason=delta.finish_reason, usage=delta.usage,
                        cost=delta.cost, logprobs=delta.logprobs, tool_calls=[call])


def merge_calls(calls: list[dict[str, Any]] | None, piece: list[dict[str, Any]] | None
                ) -> list[dict[str, Any]] | None:
    """Streamed tool-call pieces joined into whole calls (OpenAI's message shape)."""
    if not piece:
        return calls
    merged = calls or []
    for part in piece:
        index = int(part.get("index", 0))
        while len(merged) <= index:
            merged.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        call = merged[index]
        call["id"] = part.get("id") or call["id"]
        function = part.get("function") or {}
        call["function"]["name"] = function.get("name") or call["function"]["name"]
        call["function"]["arguments"] += function.get("arguments") or ""
    return merged
