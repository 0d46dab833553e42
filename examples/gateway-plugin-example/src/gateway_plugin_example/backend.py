"""The `reverse` backend: answers with the last user message (or the prompt) reversed.

It is deterministic and needs no model, which makes it a readable template
for a real backend: what the Backend protocol asks for, how settings arrive,
how streaming ends with finish_reason and usage, and what to raise.
Tokens here are whitespace-separated words.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from gateway.contracts import (
    BackendRequestError,
    ChatRequest,
    CompletionRequest,
    Delta,
    Generation,
    GenerationParams,
    ModelTarget,
    Usage,
)


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or OpenAI content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class ReverseBackend:
    """Serves every base model it is configured for by reversing the input."""

    name: ClassVar[str] = "reverse"
    description: ClassVar[str] = "answers with the last user message reversed (an example)"

    def __init__(self, settings: dict[str, Any]) -> None:
        # The host passes the [backends."<base>"] table of config.toml plus
        # "base", "base_path", "home" and a few more it knows.
        self.base = str(settings.get("base", ""))
        self.prefix = str(settings.get("prefix", ""))
        self.started = False
        self.requests = 0

    async def start(self) -> None:
        # A real backend loads weights or launches a server here, once.
        self.started = True

    async def close(self) -> None:
        self.started = False

    def _answer(self, request: ChatRequest | CompletionRequest) -> tuple[str, str, Usage]:
        if request.target.adapter_path or request.target.remote_id:
            raise BackendRequestError(
                f"the reverse backend serves base models only, not {request.target.requested!r}"
            )
        if isinstance(request, ChatRequest):
            users = [m for m in request.messages if m.get("role") == "user"]
            text = content_text(users[-1].get("content")) if users else ""
            prompt_words = sum(len(content_text(m.get("content")).split()) for m in request.messages)
        else:
            text = request.prompt
            prompt_words = len(text.split())
        output, finish = _limit(self.prefix + text[::-1], request.params)
        self.requests += 1
        return output, finish, Usage(prompt_tokens=prompt_words, completion_tokens=len(output.split()))

    async def chat(self, request: ChatRequest) -> Generation:
        output, finish, usage = self._answer(request)
        return Generation(text=output, finish_reason=finish, usage=usage)

    async def complete(self, request: CompletionRequest) -> Generation:
        output, finish, usage = self._answer(request)
        return Generation(text=output, finish_reason=finish, usage=usage)

    async def stream(self, request: ChatRequest | CompletionRequest) -> AsyncIterator[Delta]:
        # Validate before the first yield, so a bad request fails before any
        # bytes go out (the server can still answer 400 instead of a broken stream).
        output, finish, usage = self._answer(request)
        pieces = _pieces(output)
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            yield Delta(text=piece, finish_reason=finish if last else None, usage=usage if last else None)
        if not pieces:
            yield Delta(text="", finish_reason=finish, usage=usage)

    async def load_adapter(self, target: ModelTarget) -> None:
        raise NotImplementedError("the reverse backend has no adapters")

    async def unload_adapter(self, target: ModelTarget) -> None:
        raise NotImplementedError("the reverse backend has no adapters")

    async def health(self) -> dict[str, Any]:
        return {"status": "ok" if self.started else "stopped", "base": self.base,
                "requests": self.requests}


def _limit(text: str, params: GenerationParams) -> tuple[str, str]:
    """Apply stop sequences and max_tokens (in words); return the text and finish reason."""
    for stop in params.stop:
        if stop and stop in text:
            text = text[: text.index(stop)]
    words = text.split()
    if params.max_tokens is not None and len(words) > params.max_tokens:
        return " ".join(words[: params.max_tokens]), "length"
    return text, "stop"


def _pieces(text: str) -> list[str]:
    """The text cut into word-sized pieces that join back to exactly `text`."""
    pieces: list[str] = []
    for i, word in enumerate(text.split(" ")):
        piece = word if i == 0 else " " + word
        if piece:
            pieces.append(piece)
    return pieces
