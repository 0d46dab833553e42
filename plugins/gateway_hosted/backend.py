"""The "hosted" backend: serves hosted fine-tunes and provider models through litellm.

A target names its provider (`[providers.NAME]`) and the provider's model id:
a hosted model version carries both (its `remote_id`); a model configured as
`[backends."NAME"] backend = "hosted"` with `provider` and `model` does too. Each
request goes to `litellm.acompletion` (or `atext_completion`) with the
provider's settings and the provider's `timeout`. A 429 becomes a 429 with
Retry-After; an unreachable provider or a 5xx becomes a 503. Each generation's
cost comes from litellm's price map when it knows the model, else from the
provider's `input_cost_per_1m` and `output_cost_per_1m`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from gateway.contracts import (
    BackendContext,
    BackendRateLimited,
    BackendRequestError,
    BackendUnavailable,
    BaseBackend,
    ChatRequest,
    CompletionRequest,
    Delta,
    Generation,
    ModelTarget,
    UnsupportedParameter,
    Usage,
)
from gateway_hosted.providers import Provider, import_litellm, is_transient, retry_after


def _configured_cost(provider: Provider, usage: Usage) -> float | None:
    """The cost at the provider's configured prices (USD per 1M tokens); None without prices."""
    prompt, completion = provider.price("input_cost_per_1m"), provider.price("output_cost_per_1m")
    if prompt is None and completion is None:
        return None
    return (usage.prompt_tokens * (prompt or 0.0) + usage.completion_tokens * (completion or 0.0)) / 1e6


def _plain(value: Any) -> Any:
    """litellm's response objects as plain JSON values (None stays None, empty becomes None)."""
    if not value:
        return None
    if isinstance(value, list):
        return [_plain(item) for item in value]
    dump = getattr(value, "model_dump", None)
    return dump(exclude_none=True) if callable(dump) else value


class HostedBackend(BaseBackend):
    name: ClassVar[str] = "hosted"
    description: ClassVar[str] = "hosted models and fine-tunes through litellm (openai, azure, vertex_ai)"

    def __init__(self, settings: dict[str, Any], context: BackendContext) -> None:
        super().__init__(settings, context)
        self.requests = 0

    def _provider(self, target: ModelTarget) -> Provider:
        name = target.provider or ""
        if name not in self.context.providers:
            raise BackendRequestError(f"{target.requested!r} needs provider {name!r}, which is not "
                                      "configured ([providers.NAME] in config.toml)")
        return Provider.from_settings(name, dict(self.context.providers[name]))

    def _arguments(self, request: ChatRequest | CompletionRequest) -> tuple[Provider, dict[str, Any]]:
        target, params = request.target, request.params
        provider = self._provider(target)
        arguments: dict[str, Any] = {
            "model": target.remote_id or target.base, "temperature": params.temperature,
            "top_p": params.top_p, "timeout": provider.number("timeout", 60.0), "num_retries": 0,
            **provider.litellm_kwargs(),
        }
        if params.max_tokens is not None:
            arguments["max_tokens"] = params.max_tokens
        if params.stop:
            arguments["stop"] = list(params.stop)
        if params.seed is not None:
            arguments["seed"] = params.seed
        if params.response_format is not None:
            arguments["response_format"] = params.response_format
        if isinstance(request, ChatRequest):
            if params.logprobs is not None:
                arguments.update(logprobs=True, top_logprobs=params.logprobs)
            for name, value in (("tools", params.tools), ("tool_choice", params.tool_choice),
                                ("parallel_tool_calls", params.parallel_tool_calls)):
                if value is not None:
                    arguments[name] = value
        else:
            if params.logprobs is not None:
                arguments["logprobs"] = params.logprobs
            if params.echo:
                arguments["echo"] = True
        # Passed on as sent; litellm refuses what the provider does not take (UnsupportedParamsError).
        arguments.update({k: v for k, v in params.extra.items() if k not in arguments})
        return provider, arguments

    def _failure(self, provider: Provider, exc: Exception) -> Exception:
        message = provider.redact(f"{provider.name}: {type(exc).__name__}: {exc}")
        litellm = import_litellm()

        if isinstance(exc, litellm.RateLimitError):
            return BackendRateLimited(message, retry_after=retry_after(exc))
        if is_transient(exc):
            return BackendUnavailable(message, retry_after=retry_after(exc))
        return BackendRequestError(message)

    def _cost(self, provider: Provider, response: Any, usage: Usage) -> float | None:
        litellm = import_litellm()

        try:
            cost = litellm.completion_cost(completion_response=response)
            if cost:
                return float(cost)
        except Exception:  # litellm does not know the model (a fine-tune, a private model)
            pass
        return _configured_cost(provider, usage)

    @staticmethod
    def _usage(response: Any) -> Usage:
        usage = getattr(response, "usage", None)
        return Usage(prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                     completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0))

    async def chat(self, request: ChatRequest) -> Generation:
        litellm = import_litellm()
        return await self._generate(request, litellm.acompletion, messages=request.messages)

    async def complete(self, request: CompletionRequest) -> Generation:
        litellm = import_litellm()
        if request.prompt_ids is not None:
            raise UnsupportedParameter("prompt", "token-id prompts are not supported by the hosted "
                                       "backend; send the prompt as text")
        return await self._generate(request, litellm.atext_completion, prompt=request.prompt)

    async def _generate(self, request: ChatRequest | CompletionRequest, call: Any, **body: Any) -> Generation:
        """One non-streamed call (acompletion or atext_completion) as a Generation."""
        provider, arguments = self._arguments(request)
        try:
            response = await call(**body, **arguments)
        except Exception as exc:
            raise self._failure(provider, exc) from None
        self.requests += 1
        choice = response.choices[0]
        message = getattr(choice, "message", None)
        text = message.content if message is not None else choice.text
        usage = self._usage(response)
        return Generation(text=text or "", finish_reason=choice.finish_reason or "stop",
                          usage=usage, cost=self._cost(provider, response, usage),
                          logprobs=_plain(getattr(choice, "logprobs", None)),
                          tool_calls=_plain(getattr(message, "tool_calls", None)))

    async def stream(self, request: ChatRequest | CompletionRequest) -> AsyncIterator[Delta]:
        litellm = import_litellm()

        if isinstance(request, CompletionRequest):
            raise BackendRequestError("stream: streamed /v1/completions are not supported by the "
                                      "hosted backend; stream /v1/chat/completions instead")
        provider, arguments = self._arguments(request)
        arguments["messages"] = request.messages
        try:
            chunks = await litellm.acompletion(stream=True, stream_options={"include_usage": True},
                                               **arguments)
            usage, finish = Usage(), "stop"
            async for chunk in chunks:
                if getattr(chunk, "usage", None):
                    usage = self._usage(chunk)
                for choice in chunk.choices or []:
                    finish = choice.finish_reason or finish
                    text = getattr(choice.delta, "content", None)
                    calls = _plain(getattr(choice.delta, "tool_calls", None))
                    logprobs = _plain(getattr(choice, "logprobs", None))
                    if text or calls or logprobs:
                        yield Delta(text=text or "", tool_calls=calls, logprobs=logprobs)
        except (BackendRequestError, BackendUnavailable):
            raise
        except Exception as exc:
            raise self._failure(provider, exc) from None
        self.requests += 1
        yield Delta(text="", finish_reason=finish, usage=usage, cost=_configured_cost(provider, usage))

    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "backend": self.name, "providers": sorted(self.context.providers),
                "device": "remote", "dtype": "remote", "threads": 0, "requests": self.requests}
