"""OpenAI's response bodies: completions, chat completions and their stream chunks."""

from __future__ import annotations

import json
from typing import Any

from gateway.contracts import Generation, Usage
from gateway.util import new_id


def completion_id(chat: bool) -> str:
    return new_id("chatcmpl" if chat else "cmpl", 12)


def usage_body(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def full_response(
    *, chat: bool, id: str, created: int, model: str, text: str, finish_reason: str, usage: Usage,
    logprobs: dict[str, Any] | None = None, tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A non-streamed `chat.completion` or `text_completion`."""
    choice: dict[str, Any]
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if tool_calls:
            # As OpenAI answers a call: no content unless the model wrote some too.
            message.update(content=text or None, tool_calls=tool_calls)
        choice = {
            "index": 0,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": finish_reason,
        }
    else:
        choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}
    return {
        "id": id,
        "object": "chat.completion" if chat else "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage_body(usage),
        "system_fingerprint": None,
    }


def text_choice(index: int, generation: Generation) -> dict[str, Any]:
    """One choice of a `text_completion` (a batch of prompts answers one each)."""
    return {"index": index, "text": generation.text, "logprobs": generation.logprobs,
            "finish_reason": generation.finish_reason}


def chunk(
    *,
    chat: bool,
    id: str,
    created: int,
    model: str,
    text: str | None,
    finish_reason: str | None,
    include_usage: bool,
    first: bool = False,
    logprobs: dict[str, Any] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One stream chunk with one choice. The first chat chunk announces the role."""
    choice: dict[str, Any]
    if chat:
        delta: dict[str, Any] = {}
        if first:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        if tool_calls:
            delta["tool_calls"] = tool_calls
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
    else:
        choice = {"index": 0, "text": text or "", "logprobs": logprobs, "finish_reason": finish_reason}
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "system_fingerprint": None,
    }
    if include_usage:
        # With include_usage every chunk carries `usage: null` but the last.
        body["usage"] = None
    return body


def usage_chunk(*, chat: bool, id: str, created: int, model: str, usage: Usage) -> dict[str, Any]:
    """The final chunk of a stream with include_usage: empty choices, the usage."""
    return {
        "id": id,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": created,
        "model": model,
        "choices": [],
        "system_fingerprint": None,
        "usage": usage_body(usage),
    }


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: `data: ...` and a blank line."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


SSE_DONE = sse("[DONE]")
