"""Log probabilities in OpenAI's shapes, from the decode loop's (id, logprob, alternatives).

Chat: `{"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}`.
Completions: `{"tokens", "token_logprobs", "top_logprobs", "text_offset"}`, where
`text_offset` counts characters from the start of the returned text (the prompt's
first character with echo). Values are the served model's (adapter applied),
from its raw logits: before temperature, top_p and any response_format mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.contracts import ChatRequest, CompletionRequest
from gateway_local.serving_batch import TokenLogprob

Decode = Callable[[list[int]], str]


def chat_shaper(decode: Decode) -> Callable[[list[TokenLogprob]], dict[str, Any]]:
    def entry(token: int, logprob: float | None) -> dict[str, Any]:
        text = decode([token])
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    def shape(entries: list[TokenLogprob]) -> dict[str, Any]:
        return {"content": [{**entry(token, logprob), "top_logprobs": [entry(i, v) for i, v in top]}
                            for token, logprob, top in entries], "refusal": None}

    return shape


def completions_shaper(decode: Decode) -> Callable[[list[TokenLogprob]], dict[str, Any]]:
    offset = 0

    def shape(entries: list[TokenLogprob]) -> dict[str, Any]:
        nonlocal offset
        tokens, offsets = [], []
        for token, _, _ in entries:
            text = decode([token])
            tokens.append(text)
            offsets.append(offset)
            offset += len(text)
        return {
            "tokens": tokens,
            "token_logprobs": [logprob for _, logprob, _ in entries],
            "top_logprobs": [{decode([i]): v for i, v in top} if logprob is not None else None
                             for _, logprob, top in entries],
            "text_offset": offsets,
        }

    return shape


def merge(into: dict[str, Any] | None, part: dict[str, Any] | None) -> dict[str, Any] | None:
    """Two pieces' logprobs as one (the lists concatenated)."""
    if part is None:
        return into
    if into is None:
        return {key: list(value) if isinstance(value, list) else value for key, value in part.items()}
    for key, value in part.items():
        if isinstance(value, list):
            into.setdefault(key, []).extend(value)
    return into


def shaper_for(request: ChatRequest | CompletionRequest, decoder: Any) -> Any:
    """The logprobs shaper for the route, or None when none are asked for."""
    if request.params.logprobs is None:
        return None
    decode = decoder.decode
    return chat_shaper(decode) if isinstance(request, ChatRequest) else completions_shaper(decode)
