"""Reading request bodies: JSON, then OpenAI's parameters, each checked by name.

A bad value answers 400 with `param` naming the field, as OpenAI does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from gateway.contracts import GenerationParams
from gateway.serving.errors import ApiError

MAX_STOP = 4


@dataclass
class ParsedRequest:
    """What the completion routes need from a body, before the model is resolved."""

    model: str
    params: GenerationParams
    stream: bool
    include_usage: bool
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None


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


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, f"Invalid value for '{param}': {message}", param=param)


# The longest `model` and stop string taken (they land in every log row).
MAX_NAME_CHARS = 256
MAX_STOP_CHARS = 256


def _string(body: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"Missing required parameter: '{name}'.", param=name)
        return None
    if not isinstance(value, str) or (required and not value):
        raise _bad(name, "expected a non-empty string.")
    if len(value) > MAX_NAME_CHARS:
        raise _bad(name, f"at most {MAX_NAME_CHARS} characters.")
    return value


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(name, "expected a number.")
    if not low <= value <= high:
        raise _bad(name, f"must be between {low:g} and {high:g}, got {value}.")
    return float(value)


# A 64-bit signed integer, as OpenAI's and vLLM's `seed` (torch takes no more).
SEED_RANGE = (-(2**63), 2**63 - 1)
# Integers past this are refused before any arithmetic on them.
MAX_INTEGER = 2**63 - 1


def _integer(
    body: dict[str, Any], name: str, low: int | None = None, high: int = MAX_INTEGER
) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, "expected an integer.")
    if low is not None and value < low:
        raise _bad(name, f"must be at least {low}, got {value}.")
    if value > high:
        raise _bad(name, f"must be at most {high}.")
    return value


def _boolean(body: dict[str, Any], name: str, param: str | None = None) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad(param or name, "expected true or false.")
    return value


def _stop(body: dict[str, Any]) -> list[str]:
    value = body.get("stop")
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if (
        isinstance(stops, list)
        and len(stops) <= MAX_STOP
        and all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in stops)
    ):
        return list(stops)
    raise _bad("stop", f"expected a string or a list of up to {MAX_STOP} non-empty strings of at "
               f"most {MAX_STOP_CHARS} characters.")


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    value = body.get("messages")
    if value is None:
        raise ApiError(400, "Missing required parameter: 'messages'.", param="messages")
    if not isinstance(value, list) or not value:
        raise _bad("messages", "expected a non-empty array of messages.")
    for i, message in enumerate(value):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad(param, "expected an object.")
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise _bad(f"{param}.role", f"unknown role {role!r}.")
        content = message.get("content")
        if content is None and role == "assistant":
            continue
        if isinstance(content, list):
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                raise _bad(f"{param}.content", "only text content parts are supported.")
            for j, part in enumerate(content):
                if not isinstance(part.get("text"), str):
                    raise _bad(f"{param}.content[{j}].text", "a text part needs a string `text`.")
            continue
        if not isinstance(content, str):
            raise _bad(f"{param}.content", "expected a string or an array of text parts.")
    return value


def _prompt(body: dict[str, Any]) -> str:
    value = body.get("prompt")
    if value is None:
        raise ApiError(400, "Missing required parameter: 'prompt'.", param="prompt")
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    if not isinstance(value, str):
        raise _bad("prompt", "expected a string (one prompt per request).")
    return value


def parse_request(body: dict[str, Any], chat: bool) -> ParsedRequest:
    """Check `body` against the chat or completions parameters."""
    model = _string(body, "model", required=True)
    assert model is not None
    n = _integer(body, "n", low=1)
    if n is not None and n != 1:
        raise _bad("n", "only n=1 is supported.")
    max_tokens = _integer(body, "max_tokens", low=1)
    if chat:
        max_completion = _integer(body, "max_completion_tokens", low=1)
        max_tokens = max_completion if max_completion is not None else max_tokens
    temperature = _number(body, "temperature", 0.0, 2.0)
    top_p = _number(body, "top_p", 0.0, 1.0)
    params = GenerationParams(
        max_tokens=max_tokens,
        temperature=1.0 if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        stop=_stop(body),
        seed=_integer(body, "seed", low=SEED_RANGE[0], high=SEED_RANGE[1]),
    )
    stream = _boolean(body, "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise _bad("stream_options", "expected an object.")
        if not stream:
            raise _bad("stream_options", "only allowed when 'stream' is true.")
        include_usage = _boolean(options, "include_usage", "stream_options.include_usage")
    parsed = ParsedRequest(model=model, params=params, stream=stream, include_usage=include_usage)
    if chat:
        parsed.messages = _messages(body)
    else:
        parsed.prompt = _prompt(body)
    return parsed
