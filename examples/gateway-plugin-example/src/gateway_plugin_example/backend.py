"""The `reverse` backend: answers with the last user message (or the prompt) reversed.

It is deterministic and needs no model, which makes it a readable template
for a real backend: it subclasses the SDK's BaseBackend (which supplies
start, close, adapter refusals and health), reads its settings, streams
with finish_reason and usage on the last piece, and raises the SDK's errors.
Tokens here are whitespace-separated words.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from gateway.contracts import (
    BackendContext,
    BackendRequestError,
    BaseBackend,
    ChatRequest,
    CompletionRequest,
    Delta,
    Generation,
    GenerationParams,
    Usage,
)


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or OpenAI content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class ReverseBackend(BaseBackend):
    """Serves every base model it is configured for by reversing the input."""

    name: ClassVar[str] = "reverse"
    description: ClassVar[str] = "answers with the last user message reversed (an example)"

    def __init__(self, settings: dict[str, Any], context: BackendContext) -> None:
        # settings: the [backends."<base>"] table of config.toml, as written;
        # context: the base model, home, adapter roots and registered versions.
        super().__init__(settings, context)
        self.prefix = str(settings.get("prefix", ""))
        self.requests = 0

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

    async def health(self) -> dict[str, Any]:
        return {**await super().health(), "requests": self.requests}


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
