"""Reading request bodies: JSON first, then the completion routes' request models.

A bad value answers 400 with `param` naming the field, as OpenAI does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from gateway.contracts import GenerationParams
from gateway.serving.errors import ApiError
from gateway.serving.requests import (
    ChatCompletionRequest,
    CompletionRequest,
    Sampling,
    extra_params,
    validate,
)


@dataclass
class ParsedRequest:
    """What the completion routes need from a body, before the model is resolved."""

    model: str
    params: GenerationParams
    stream: bool
    include_usage: bool
    messages: list[dict[str, Any]] | None = None
    # /v1/completions: each prompt, text or token ids, becomes one choice.
    prompts: list[str | list[int]] | None = None
    # Recorded in the request log, not sent to the backend.
    user: str | None = None
    metadata: dict[str, str] | None = None


# How deep a request body may nest (OpenAI's bodies need a handful of levels).
MAX_DEPTH = 32


async def read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, f"The request body nests deeper than {MAX_DEPTH} levels.") from None
    except ValueError as exc:  # an integer with more digits than Python converts
        raise ApiError(400, f"The request body has a number that is too large: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    check_text(body)
    return body


def check_text(value: Any, path: str = "", depth: int = 0) -> None:
    """Refuse bodies nested too deep, and strings that are not valid UTF-8 (lone surrogates)."""
    if depth > MAX_DEPTH:
        raise ApiError(400, f"The request body nests deeper than {MAX_DEPTH} levels.",
                       param=path or None)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, f"Invalid value for '{path}': the string is not valid UTF-8 "
                           "(it holds a lone surrogate).", param=path or None) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, path, depth + 1)
            check_text(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{path}[{index}]", depth + 1)


def check_contents(request: ChatCompletionRequest) -> None:
    for index, message in enumerate(request.messages):
        where = f"messages[{index}]"
        if message.content is None and message.role != "assistant":
            raise ApiError(400, f"Invalid value for '{where}.content': expected a "
                           "string or an array of text parts.", param=f"{where}.content")
        if message.tool_calls is not None and message.role != "assistant":
            raise ApiError(400, f"Invalid value for '{where}.tool_calls': only assistant "
                           "messages carry tool calls.", param=f"{where}.tool_calls")
        if message.role == "tool" and not message.tool_call_id:
            raise ApiError(400, f"Missing required parameter: '{where}.tool_call_id'.",
                           param=f"{where}.tool_call_id")


def check_tools(request: ChatCompletionRequest) -> None:
    """tool_choice and parallel_tool_calls need tools; a named function must be one of them."""
    for name, value in (("tool_choice", request.tool_choice),
                        ("parallel_tool_calls", request.parallel_tool_calls)):
        if value is not None and not request.tools:
            raise ApiError(400, f"Invalid value for '{name}': only allowed when 'tools' are "
                           "specified.", param=name)
    choice = request.tool_choice
    if choice is None:
        return
    if isinstance(choice, str):
        return
    names = [tool.function.name for tool in request.tools or []]
    if choice.function.name not in names:
        raise ApiError(400, f"Invalid value for 'tool_choice.function.name': no tool is named "
                       f"{choice.function.name!r} (tools: {', '.join(names)}).",
                       param="tool_choice.function.name")


def _prompts(prompt: str | list[str] | list[int] | list[list[int]]) -> list[str | list[int]]:
    """The prompts of a completions request: one string, strings, token ids or id lists."""
    if isinstance(prompt, str):
        return [prompt]
    if all(isinstance(p, int) for p in prompt):
        return [[int(p) for p in prompt]]  # type: ignore[arg-type]
    return list(prompt)  # type: ignore[arg-type]


def _logprobs(request: Sampling) -> int | None:
    """How many alternatives per token the request asks logprobs for; None for none."""
    if isinstance(request, ChatCompletionRequest):
        if request.top_logprobs is not None and not request.logprobs:
            raise ApiError(400, "Invalid value for 'top_logprobs': only allowed when 'logprobs' "
                           "is true.", param="top_logprobs")
        return (request.top_logprobs or 0) if request.logprobs else None
    assert isinstance(request, CompletionRequest)
    return request.logprobs


def parse_request(body: dict[str, Any], chat: bool) -> ParsedRequest:
    """Check `body` against the chat or completions request model."""
    request: Sampling = validate(ChatCompletionRequest if chat else CompletionRequest, body)
    max_tokens = request.max_tokens
    if isinstance(request, ChatCompletionRequest) and request.max_completion_tokens is not None:
        max_tokens = request.max_completion_tokens
    stop = request.stop
    params = GenerationParams(
        max_tokens=max_tokens,
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        stop=[stop] if isinstance(stop, str) else list(stop or []),
        seed=request.seed,
        response_format=body.get("response_format"),
        logprobs=_logprobs(request),
        echo=isinstance(request, CompletionRequest) and bool(request.echo),
        extra=extra_params(body, chat),
    )
    if params.max_tokens == 0 and not params.echo:
        raise ApiError(400, "Invalid value for 'max_tokens': 0 is only allowed with echo (to score "
                       "the prompt).", param="max_tokens")
    if request.stream_options is not None and not request.stream:
        raise ApiError(400, "Invalid value for 'stream_options': only allowed when 'stream' is "
                       "true.", param="stream_options")
    parsed = ParsedRequest(
        model=request.model, params=params, stream=request.stream,
        include_usage=request.stream_options is not None and request.stream_options.include_usage,
        user=request.user,
    )
    if isinstance(request, ChatCompletionRequest):
        check_contents(request)
        check_tools(request)
        params.tools = body.get("tools")
        params.tool_choice = body.get("tool_choice")
        params.parallel_tool_calls = request.parallel_tool_calls
        parsed.metadata = request.metadata
        # The checked messages as sent: backends read the fields they know.
        parsed.messages = body["messages"]
    else:
        assert isinstance(request, CompletionRequest)
        parsed.prompts = _prompts(request.prompt)
        if request.stream and len(parsed.prompts) > 1:
            raise ApiError(400, "Invalid value for 'prompt': stream one prompt per request (a "
                           "batch of prompts is answered whole).", param="prompt")
    return parsed
