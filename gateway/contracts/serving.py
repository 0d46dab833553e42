"""What serving backends receive and return, the context they run in, and their base."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from gateway.contracts.models import BaseModel, ModelVersion


@dataclass
class ModelTarget:
    """A resolved model: the base it runs on and, for a fine-tune, its adapter."""

    requested: str
    base: str
    base_path: str | None = None
    version_id: str | None = None
    adapter_name: str | None = None
    adapter_path: str | None = None
    remote_id: str | None = None
    provider: str | None = None


@dataclass
class GenerationParams:
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    # OpenAI's response_format: {"type": "text" | "json_object" | "json_schema", ...}.
    response_format: dict[str, Any] | None = None
    # Log probabilities: None for none; else how many alternatives per token (chat's
    # top_logprobs with logprobs: true, or the completions API's `logprobs`).
    logprobs: int | None = None
    # Completions only: return the prompt with its tokens' logprobs before the answer.
    echo: bool = False
    # Chat only, in OpenAI's shapes: function definitions, and "none" | "auto" | "required" |
    # {"type": "function", "function": {"name": ...}}.
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    # Request parameters the gateway does not interpret, by name, as the client sent them
    # (OpenAI's, or a backend's own such as vLLM's top_k). A backend passes them on or
    # refuses them with UnsupportedParameter; it never drops one silently.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChatRequest:
    target: ModelTarget
    messages: list[dict[str, Any]]
    params: GenerationParams = field(default_factory=GenerationParams)


@dataclass
class CompletionRequest:
    target: ModelTarget
    prompt: str
    params: GenerationParams = field(default_factory=GenerationParams)
    # A prompt given as token ids (then `prompt` is ""); a backend that takes none refuses it.
    prompt_ids: list[int] | None = None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Generation:
    """A finished generation."""

    text: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    # OpenAI's choice.logprobs, in the shape of the route asked: {"content": [...]} for
    # chat, {"tokens", "token_logprobs", "top_logprobs", "text_offset"} for completions.
    logprobs: dict[str, Any] | None = None
    # Chat: the message's tool calls, [{"id", "type": "function", "function": {"name",
    # "arguments"}}] (then `text` may be empty).
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class Delta:
    """One streamed piece. The last one carries finish_reason, usage and, when known, cost."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    cost: float | None = None
    logprobs: dict[str, Any] | None = None  # this piece's part, shaped as Generation.logprobs
    # This piece of the tool calls, as OpenAI streams them: [{"index", "id"?, "type"?,
    # "function": {"name"?, "arguments"}}].
    tool_calls: list[dict[str, Any]] | None = None


class BackendUnavailable(Exception):
    """The backend cannot answer now (starting, restarting). Maps to HTTP 503.

    `retry_after` (seconds), when known, tells clients and the eval runner when to retry.
    """

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendRateLimited(BackendUnavailable):
    """The provider refused for its rate limit. Maps to HTTP 429 with Retry-After."""


class BackendRequestError(Exception):
    """The backend refused the request itself (bad adapter, bad params). HTTP 400."""


class UnsupportedParameter(BackendRequestError):
    """A request parameter this backend cannot honour. HTTP 400 with `param` naming it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class BackendContext:
    """What the host tells a backend about where it runs; kept apart from the user's settings.

    `versions()` is a read-only query of the model versions registered on this
    base; a backend never opens the store itself.
    """

    base: str
    base_model: BaseModel | None = None  # the registry's record; None for an unregistered name
    home: Path = Path(".")
    adapter_roots: tuple[Path, ...] = ()
    serving: bool = False  # True under `gateway serve`, False inside a batch command
    providers: Mapping[str, Any] = field(default_factory=dict)
    list_versions: Callable[[], list[ModelVersion]] = field(default=lambda: [], repr=False)

    @property
    def base_path(self) -> str | None:
        return self.base_model.path if self.base_model else None

    def versions(self) -> list[ModelVersion]:
        return list(self.list_versions())


@runtime_checkable
class Backend(Protocol):
    """Serves models. Registered as a class; built as `Backend(settings, context)`."""

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, settings: dict[str, Any], context: BackendContext) -> None: ...

    async def start(self) -> None:
        """Prepare to serve (load weights, launch a server). Called once."""
        ...

    async def close(self) -> None:
        """Release everything start() took."""
        ...

    async def chat(self, request: ChatRequest) -> Generation: ...

    async def complete(self, request: CompletionRequest) -> Generation: ...

    def stream(self, request: ChatRequest | CompletionRequest) -> AsyncIterator[Delta]: ...

    async def load_adapter(self, target: ModelTarget) -> None:
        """Make target's adapter servable now. Optional: may raise NotImplementedError."""
        ...

    async def unload_adapter(self, target: ModelTarget) -> None:
        """Drop target's adapter from memory. Optional."""
        ...

    async def health(self) -> dict[str, Any]:
        """A small status dict; raising means unhealthy. The eval runner records
        its "device", "dtype" and "threads" with each run."""
        ...


class BaseBackend:
    """Defaults for a Backend: nothing to start or close, no adapters, a plain health.

    A subclass implements `chat`, `complete` and `stream`.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, settings: dict[str, Any], context: BackendContext) -> None:
        self.settings = dict(settings)
        self.context = context

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def chat(self, request: ChatRequest) -> Generation:
        raise NotImplementedError(f"backend {self.name!r} does not implement chat()")

    async def complete(self, request: CompletionRequest) -> Generation:
        raise NotImplementedError(f"backend {self.name!r} does not implement complete()")

    def stream(self, request: ChatRequest | CompletionRequest) -> AsyncIterator[Delta]:
        raise NotImplementedError(f"backend {self.name!r} does not implement stream()")

    async def load_adapter(self, target: ModelTarget) -> None:
        raise BackendRequestError(f"backend {self.name!r} serves no adapters ({target.requested!r})")

    async def unload_adapter(self, target: ModelTarget) -> None:
        raise BackendRequestError(f"backend {self.name!r} serves no adapters ({target.requested!r})")

    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "backend": self.name, "base": self.context.base}
