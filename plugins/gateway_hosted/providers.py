"""Providers from `[providers.NAME]`, as litellm and the openai SDK want them.

An entry names the litellm provider (`openai`, `azure` or `vertex_ai`), its
`api_base`, and the NAME of the environment variable that holds the key
(`api_key_env`); the key itself is read from the environment on each call and
never stored, logged or put in an error message (`Provider.redact`).

Optional prices, in USD per million tokens: `input_cost_per_1m`,
`output_cost_per_1m` (serving, used when litellm does not know the model) and
`training_cost_per_1m` (the cost estimate before a paid job).
Optional polling settings of hosted jobs, in seconds: `poll_interval` (first
wait, default 5), `poll_max_interval` (backoff cap, 60), `job_timeout` (give up
after, 86400), `max_outage` (how long the provider may be unreachable or answer
5xx before the job fails, 1800). `timeout` (60) bounds each request.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.contracts import ConfigError

# litellm fetches a price map from the internet at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

T = TypeVar("T")
PRICE_KEYS = ("input_cost_per_1m", "output_cost_per_1m", "training_cost_per_1m")
# The shortest run of a key's characters worth hiding (prefixes servers echo back).
MIN_SECRET_RUN = 6


@dataclass(frozen=True)
class Provider:
    name: str
    kind: str
    api_base: str | None
    api_key_env: str | None
    api_version: str | None
    settings: dict[str, Any]

    @classmethod
    def from_settings(cls, name: str, settings: dict[str, Any]) -> Provider:
        if not settings:
            raise ConfigError(f"provider {name!r} is not configured ([providers.{name}] in config.toml)")
        for key in PRICE_KEYS:
            if key in settings and not isinstance(settings[key], (int, float)):
                raise ConfigError(f"[providers.{name}] {key} must be a number (USD per 1M tokens)")
        return cls(
            name=name, kind=str(settings.get("provider", "openai")),
            api_base=settings.get("api_base"), api_key_env=settings.get("api_key_env"),
            api_version=settings.get("api_version"), settings=dict(settings),
        )

    def number(self, key: str, default: float) -> float:
        return float(self.settings.get(key, default))

    def price(self, key: str) -> float | None:
        value = self.settings.get(key)
        return float(value) if value is not None else None

    @property
    def api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if key is None:
            raise ConfigError(f"provider {self.name!r}: the environment variable "
                              f"{self.api_key_env} (api_key_env) is not set")
        return key

    def litellm_kwargs(self) -> dict[str, Any]:
        """What every litellm call for this provider takes."""
        kwargs: dict[str, Any] = {"custom_llm_provider": self.kind}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        key = self.api_key
        if key is not None:
            kwargs["api_key"] = key
        if self.api_version:
            kwargs["api_version"] = self.api_version
        return kwargs

    def redact(self, text: str) -> str:
        """`text` with the key, and any long enough piece of it, replaced by ***."""
        try:
            key = self.api_key
        except ConfigError:
            key = None
        if not key:
            return text
        pieces = {key[i:j] for i in range(len(key)) for j in range(i + MIN_SECRET_RUN, len(key) + 1)}
        for piece in sorted(pieces, key=len, reverse=True):
            if piece in text:
                text = text.replace(piece, "***")
        return text

    def openai_client(self) -> Any:
        """The openai SDK client for what litellm has no call for (job events, checkpoints).

        None for vertex_ai, whose fine-tuning API is not OpenAI's.
        """
        import openai

        timeout = self.number("timeout", 60.0)
        if self.kind == "openai":
            return openai.OpenAI(base_url=self.api_base, api_key=self.api_key or "none",
                                 max_retries=0, timeout=timeout)
        if self.kind == "azure":
            return openai.AzureOpenAI(azure_endpoint=self.api_base or "", api_key=self.api_key,
                                      api_version=self.api_version, max_retries=0, timeout=timeout)
        return None


def import_litellm() -> Any:
    """litellm, told not to print its provider list and debug hints on stdout."""
    import litellm

    litellm.suppress_debug_info = True
    return litellm


class EventLoop:
    """A private event loop for litellm's async calls from synchronous code.

    `close()` cancels what litellm left running on it (its logging worker)
    before closing: a task left pending on a closed loop crashes the
    interpreter when it is garbage-collected at exit.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def close(self) -> None:
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


def retry_after(exc: BaseException) -> float | None:
    """The Retry-After a provider sent with an error, in seconds, when it sent one."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    if value and re.fullmatch(r"\d+(\.\d+)?", str(value).strip()):
        return float(value)
    return None


def is_transient(exc: BaseException) -> bool:
    """An outage or an overload: unreachable, timed out, 5xx or 429. Worth retrying."""
    import openai

    litellm = import_litellm()
    transient = (
        litellm.APIConnectionError, litellm.Timeout, litellm.ServiceUnavailableError,
        litellm.InternalServerError, litellm.BadGatewayError, litellm.RateLimitError,
        openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError,
        openai.RateLimitError,
    )
    if isinstance(exc, transient):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status >= 500 or status == 429)
