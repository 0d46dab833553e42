"""Chat messages and tools -> prompt text, through the model's own chat template.

Serving and training render the same way. Tools reach the template as
transformers passes them (`tools=`), and a tool call's `arguments`, JSON text
in OpenAI's shape, reach it as an object, as transformers' templates expect.
Whether a template renders tools at all is found by rendering a probe tool and
looking for its name: templates that ignore `tools` (SmolLM2's) would silently
drop them otherwise.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from gateway.contracts import BackendRequestError

PROBE_NAME = "gateway_probe_function_7c1e"
PROBE_TOOL = {"type": "function", "function": {
    "name": PROBE_NAME, "description": "probe", "parameters": {"type": "object", "properties": {}}}}


def template_message(message: dict[str, Any], index: int) -> dict[str, Any]:
    """A message as chat templates take it: content as text, call arguments as objects."""
    content = message.get("content")
    plain = dict(message)
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise BackendRequestError(
                    f"messages[{index}]: the local backend accepts only text content parts"
                )
            texts.append(str(part.get("text", "")))
        plain["content"] = "".join(texts)
    elif content is None:
        plain["content"] = ""
    if message.get("tool_calls"):
        plain["tool_calls"] = [_call_for_template(call) for call in message["tool_calls"]]
    return plain


def _call_for_template(call: dict[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function") or {})
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(json.JSONDecodeError):  # else kept as the model wrote it
            function["arguments"] = json.loads(arguments)
    return {**call, "function": function}


def render(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
           generation_prompt: bool = False) -> str:
    """The conversation as prompt text (the template's own tokens included)."""
    kwargs: dict[str, Any] = {"tools": tools} if tools else {}
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt, **kwargs
    )
    return str(text)


def renders_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template shows the model the tools it is given."""
    cached = getattr(tokenizer, "_gateway_renders_tools", None)
    if cached is None:
        try:
            cached = PROBE_NAME in render(tokenizer, [{"role": "user", "content": "hi"}],
                                          [PROBE_TOOL], generation_prompt=True)
        except Exception:  # a template that fails on tools does not render them
            cached = False
        tokenizer._gateway_renders_tools = cached
    return bool(cached)


def template_source(tokenizer: Any, model: str) -> str:
    """Where the template in use comes from, for error messages."""
    origin = getattr(tokenizer, "_gateway_template_file", None)
    return f"the chat template {origin}" if origin else f"the chat template of {model}"
