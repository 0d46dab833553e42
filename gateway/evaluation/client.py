"""How the runner calls a model: in-process through the Router and the backend
plugins, or over HTTP to any OpenAI-compatible server (--endpoint).

Both retry with exponential backoff on what is worth retrying: HTTP 429 and
5xx, connection errors, and BackendUnavailable.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from gateway.config import Config
from gateway.contracts import (
    BackendUnavailable,
    ChatRequest,
    Generation,
    GenerationParams,
    ModelTarget,
    Usage,
)
from gateway.errors import GatewayError
from gateway.store import Store

if TYPE_CHECKING:
    from gateway.router import Router

API_KEY_ENV = "GATEWAY_API_KEY"
# What a backend's health report says about how it computes; it changes answers.
RUNTIME_KEYS = ("device", "dtype", "threads")
DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 0.5
MAX_BACKOFF = 30.0


class ModelCallError(GatewayError):
    """A model call failed in a way retrying will not fix (HTTP 4xx, a bad request)."""


class RetryableError(Exception):
    """A model call failed in a way that may pass on retry (HTTP 429/5xx, network)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelClient:
    """Calls one model. `identity` keys the response cache; `backend` names what answered."""

    model: str
    identity: str
    backend: str
    version_id: str | None = None
    endpoint: str | None = None

    async def chat(self, messages: list[dict[str, Any]], params: GenerationParams) -> Generation:
        raise NotImplementedError

    async def runtime(self) -> dict[str, Any]:
        """How the model runs (device, dtype, threads) where this process can know it."""
        return {}

    async def close(self) -> None:
        return None


class RouterClient(ModelClient):
    """A registry model run in this process by its backend plugin."""

    def __init__(self, config: Config, store: Store, model: str, router: Router | None = None) -> None:
        from gateway.router import Router

        # A shared router (several runs in one event loop) keeps its backends
        # started, so a model loads once; its owner closes it.
        self.owns_router = router is None
        self.router = router or Router(config, store)
        self.model = model
        self.target: ModelTarget = self.router.resolve(model)
        self.version_id = self.target.version_id
        self.identity = self.target.version_id or self.target.base
        self.backend = self.router.backend_name(self.target)

    async def chat(self, messages: list[dict[str, Any]], params: GenerationParams) -> Generation:
        backend = await self.router.backend_for(self.target)
        return await backend.chat(ChatRequest(target=self.target, messages=messages, params=params))

    async def runtime(self) -> dict[str, Any]:
        """The started backend's device, dtype and threads, from its health report.

        A backend that cannot report yields a marker instead, so answers it gives
        later are never mistaken for answers of a known dtype in the cache."""
        try:
            backend = await self.router.backend_for(self.target)
            report = await backend.health()
        except Exception as exc:
            return {"runtime": f"unknown ({type(exc).__name__})"}
        return {k: report[k] for k in RUNTIME_KEYS if k in report}

    async def close(self) -> None:
        if self.owns_router:
            await self.router.close()


def chat_url(endpoint: str) -> str:
    """`http://h:p` -> `http://h:p/v1/chat/completions`; a URL with a path is a base URL."""
    url = endpoint.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if urlsplit(url).path in ("", "/"):
        url += "/v1"
    return url + "/chat/completions"


class EndpointClient(ModelClient):
    """Any OpenAI-compatible server. The API key is sent, never stored."""

    def __init__(self, endpoint: str, model: str, api_key: str | None = None,
                 version_id: str | None = None, timeout: float = 600.0) -> None:
        self.model = model
        self.endpoint = endpoint
        self.url = chat_url(endpoint)
        self.version_id = version_id
        self.identity = model
        self.backend = "endpoint"
        key = api_key or os.environ.get(API_KEY_ENV)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.AsyncClient(headers=headers, timeout=timeout)

    async def chat(self, messages: list[dict[str, Any]], params: GenerationParams) -> Generation:
        body: dict[str, Any] = {"model": self.model, "messages": messages,
                                "temperature": params.temperature, "top_p": params.top_p}
        if params.max_tokens is not None:
            body["max_tokens"] = params.max_tokens
        if params.stop:
            body["stop"] = params.stop
        if params.seed is not None:
            body["seed"] = params.seed
        if params.response_format is not None:
            body["response_format"] = params.response_format
        body.update({k: v for k, v in params.extra.items() if k not in body})
        try:
            response = await self.http.post(self.url, json=body)
        except httpx.TransportError as exc:
            raise RetryableError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = _retry_after(response.headers.get("retry-after"))
            raise RetryableError(f"HTTP {response.status_code}: {response.text[:300]}", retry_after)
        if response.status_code >= 400:
            raise ModelCallError(f"HTTP {response.status_code} from {self.url}: {response.text[:300]}")
        try:
            data = response.json()
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            return Generation(
                text=choice["message"].get("content") or "",
                finish_reason=choice.get("finish_reason") or "stop",
                usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelCallError(f"{self.url} answered with an unexpected body: {response.text[:300]}") from exc

    async def close(self) -> None:
        await self.http.aclose()


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def make_client(config: Config, store: Store, model: str, *, endpoint: str | None = None,
                api_key: str | None = None, router: Router | None = None) -> ModelClient:
    """An endpoint client when `endpoint` is given, else an in-process one."""
    if endpoint:
        from gateway.errors import NotFoundError
        from gateway.registry import resolve

        try:  # record the version when the name is one of ours; a remote name is fine too
            version_id = resolve(store, model).version_id
        except NotFoundError:
            version_id = None
        return EndpointClient(endpoint, model, api_key, version_id=version_id)
    return RouterClient(config, store, model, router)


async def chat_with_retries(
    client: ModelClient,
    messages: list[dict[str, Any]],
    params: GenerationParams,
    *,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
) -> tuple[Generation, float]:
    """The generation and the latency (ms) of the attempt that succeeded."""
    attempt = 0
    while True:
        start = time.perf_counter()
        try:
            generation = await client.chat(messages, params)
            return generation, (time.perf_counter() - start) * 1000
        except (RetryableError, BackendUnavailable) as exc:
            if attempt >= retries:
                raise
            delay = backoff * (2**attempt) * (0.5 + random.random() / 2)
            hint = exc.retry_after
            if hint is not None:
                delay = max(delay, hint)
            await asyncio.sleep(min(delay, MAX_BACKOFF))
            attempt += 1


def params_from(generation: dict[str, Any]) -> GenerationParams:
    """An eval set's `generation:` as GenerationParams; evals default to temperature 0."""
    stop = generation.get("stop") or []
    return GenerationParams(
        max_tokens=generation.get("max_tokens"),
        temperature=float(generation.get("temperature", 0.0)),
        top_p=float(generation.get("top_p", 1.0)),
        stop=[stop] if isinstance(stop, str) else list(stop),
        seed=generation.get("seed"),
        response_format=generation.get("response_format"),
    )


class EvaluatorChat:
    """The runner's ChatFunction (gateway.contracts) for evaluators with `needs_chat`.

    It calls `model` (None: the model under evaluation) through the same kind
    of client, on the runner's event loop; temperature defaults to 0.
    """

    def __init__(self, make: Callable[[str], ModelClient], default: ModelClient,
                 loop: asyncio.AbstractEventLoop, *, retries: int = DEFAULT_RETRIES,
                 backoff: float = DEFAULT_BACKOFF) -> None:
        self.make = make
        self.default = default
        self.loop = loop
        self.retries = retries
        self.backoff = backoff
        self.clients: dict[str, ModelClient] = {}

    async def _call(self, messages: list[dict[str, Any]], model: str | None,
                    params: GenerationParams) -> str:
        client = self.default
        if model and model != self.default.model:
            if model not in self.clients:
                self.clients[model] = self.make(model)
            client = self.clients[model]
        generation, _ = await chat_with_retries(client, messages, params,
                                                retries=self.retries, backoff=self.backoff)
        return generation.text

    def __call__(self, model: str | None, messages: list[dict[str, Any]], **params: Any) -> str:
        merged = {**asdict(GenerationParams(temperature=0.0)), **params}
        coroutine: Coroutine[Any, Any, str] = self._call(messages, model, GenerationParams(**merged))
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def close(self) -> None:
        """Close the clients made for other models (the default one is the runner's)."""
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            await client.close()
