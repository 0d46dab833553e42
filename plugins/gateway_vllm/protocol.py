"""The wire format between the gateway and vLLM's OpenAI server: request bodies
from the contract's requests, and Generations and Deltas from vLLM's answers
(whole JSON bodies or server-sent events)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from gateway.contracts import (
    BackendRequestError,
    BackendUnavailable,
    ChatRequest,
    CompletionRequest,
    Delta,
    Generation,
    GenerationParams,
    Usage,
)

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"


def request_path(request: ChatRequest | CompletionRequest) -> str:
    return CHAT_PATH if isinstance(request, ChatRequest) else COMPLETIONS_PATH


def _params(params: GenerationParams) -> dict[str, Any]:
    body: dict[str, Any] = {"temperature": params.temperature, "top_p": params.top_p}
    if params.max_tokens is not None:
        body["max_tokens"] = params.max_tokens
    if params.stop:
        body["stop"] = list(params.stop)
    if params.seed is not None:
        body["seed"] = params.seed
    if params.response_format is not None:
        body["response_format"] = params.response_format
    # What the gateway does not interpret passes through unchanged: OpenAI's other
    # parameters and vLLM's own (top_k, min_p, repetition_penalty, structured_outputs...).
    return {**params.extra, **body}


def request_body(request: ChatRequest | CompletionRequest, model: str, stream: bool) -> dict[str, Any]:
    """vLLM's request body; `model` is the served base name or the adapter's lora_name."""
    body: dict[str, Any] = {"model": model, **_params(request.params)}
    logprobs = request.params.logprobs
    if isinstance(request, ChatRequest):
        body["messages"] = request.messages
        params = request.params
        for name, value in (("tools", params.tools), ("tool_choice", params.tool_choice),
                            ("parallel_tool_calls", params.parallel_tool_calls)):
            if value is not None:
                body[name] = value
        if logprobs is not None:
            body.update(logprobs=True, top_logprobs=logprobs)
    else:
        body["prompt"] = request.prompt_ids if request.prompt_ids is not None else request.prompt
        if logprobs is not None:
            body["logprobs"] = logprobs
        if request.params.echo:
            body["echo"] = True
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    return Usage(int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0))


def _choice_text(choice: dict[str, Any], chat: bool) -> str:
    if chat:
        part = choice.get("delta") or choice.get("message") or {}
        return str(part.get("content") or "")
    return str(choice.get("text") or "")


def _tool_calls(choice: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The tool calls of a chat choice (its message's, or its delta's piece of them)."""
    part = choice.get("delta") or choice.get("message") or {}
    calls = part.get("tool_calls") if isinstance(part, dict) else None
    return list(calls) if isinstance(calls, list) and calls else None


def error_message(body: bytes | str) -> str:
    """The message in vLLM's error body ({"error": {...}} or the older flat shape)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()[:500] or "(empty answer)"
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return text.strip()[:500]


def stream_error(event: dict[str, Any], payload: str) -> Exception:
    """The exception for an error event: a server-side failure is 503, else 400."""
    inner = event.get("error")
    code = inner.get("code") if isinstance(inner, dict) else None
    message = f"vLLM failed mid-stream: {error_message(payload)}"
    if isinstance(code, int) and code >= 500:
        return BackendUnavailable(message)
    return BackendRequestError(message)


def generation(data: dict[str, Any], chat: bool) -> Generation:
    """A Generation from vLLM's non-streamed answer."""
    choices = data.get("choices") or []
    if not choices:
        raise BackendUnavailable(f"vLLM answered without choices: {str(data)[:300]}")
    choice = choices[0]
    return Generation(
        text=_choice_text(choice, chat),
        finish_reason=str(choice.get("finish_reason") or "stop"),
        usage=_usage(data.get("usage")) or Usage(),
        logprobs=choice.get("logprobs"),
        tool_calls=_tool_calls(choice) if chat else None,
    )


async def deltas(lines: AsyncIterator[str], chat: bool) -> AsyncIterator[Delta]:
    """Deltas from vLLM's event stream, yielded as the events arrive.

    vLLM sends the finish_reason in one event and, with include_usage, the
    usage in a later one without choices; the last Delta carries both.
    """
    held: Delta | None = None
    async for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        try:
            event = json.loads(payload)
        except json.JSONDecodeError:
            raise BackendUnavailable(f"vLLM sent an unreadable event: {payload[:200]}") from None
        if "error" in event:
            raise stream_error(event, payload)
        usage = _usage(event.get("usage"))
        for choice in event.get("choices") or []:
            text = _choice_text(choice, chat)
            finish = choice.get("finish_reason")
            logprobs = choice.get("logprobs")
            calls = _tool_calls(choice) if chat else None
            if finish:
                held = Delta(text=text, finish_reason=str(finish), logprobs=logprobs,
                             tool_calls=calls)
            elif text or logprobs or calls:
                yield Delta(text=text, logprobs=logprobs, tool_calls=calls)
        if usage is not None and held is not None:
            held.usage = usage
    if held is None:
        raise BackendUnavailable("vLLM's stream ended before the generation finished")
    yield held
