"""The "vllm" serving backend: proxies to a vLLM OpenAI server, launched by the
gateway or already running (attach mode), and publishes registry adapters to
it through vLLM's runtime LoRA API on first use.

Settings ([backends."BASE"] in config.toml; the base model, home and the
registered versions come in the BackendContext):
- url: attach to this vLLM server instead of launching one;
- python (default: this interpreter), args, host, port (0 picks a free one),
  env, startup_timeout (600 s): how to launch vLLM;
- max_lora_rank: vLLM's --max-lora-rank; launched servers default to the
  smallest vLLM value that covers the base's registered adapters;
- dtype ("auto"): vLLM's --dtype; auto picks what the hardware runs natively, as
  vLLM's own torch reports it (the local backend's rule: bf16 only with native
  support, else float32 on a CPU), unless args already carry --dtype;
- max_loras (4): adapters in one batch; restart (true): restart a dead vLLM;
- request_timeout (600 s), api_key_env (attach mode: the NAME of the environment variable
  holding vLLM's API key; secrets never live in the config), check_adapter_base (true).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import httpx

from gateway.contracts import (
    AUTO,
    BackendContext,
    BackendRequestError,
    BackendUnavailable,
    BaseBackend,
    ChatRequest,
    CompletionRequest,
    ConfigError,
    Delta,
    Generation,
    ModelTarget,
)
from gateway_vllm import protocol
from gateway_vllm.adapters import base_identities, check_adapter, rank_limit, registered_ranks
from gateway_vllm.launcher import (
    VllmProcess,
    check_settings,
    free_port,
    launch_dtype,
    port_is_free,
    server_command,
    server_env,
)

VLLM_DEFAULT_RANK = 16  # vLLM's own --max-lora-rank default, assumed in attach mode
WATCH_INTERVAL_S = 0.5
ATTACH_PROBE_S = 5.0
MAX_BACKOFF_S = 30.0


def _transport_error(base: str, exc: Exception) -> BackendUnavailable:
    return BackendUnavailable(f"vLLM for {base!r} is not reachable ({type(exc).__name__}: {exc})")


class VllmBackend(BaseBackend):
    name: ClassVar[str] = "vllm"
    description: ClassVar[str] = (
        "a vLLM OpenAI server, launched by the gateway or attached by url; "
        "registry adapters are published to it on first use"
    )

    def __init__(self, settings: dict[str, Any], context: BackendContext) -> None:
        super().__init__(settings, context)
        self.base = context.base
        check_settings(self.base, settings)
        self.base_path = context.base_path
        self.home = context.home
        self.attach_url = settings.get("url")
        self.served_name = str(settings.get("served_model_name") or self.base)
        self.host = str(settings.get("host", "127.0.0.1"))
        self.max_loras = int(settings.get("max_loras", 4))
        self.restart = bool(settings.get("restart", True))
        self.check_base = bool(settings.get("check_adapter_base", True))
        default_timeout = 10.0 if self.attach_url else 600.0
        self.startup_timeout = float(settings.get("startup_timeout", default_timeout))
        self.request_timeout = float(settings.get("request_timeout", 600.0))
        self.url = str(self.attach_url).rstrip("/") if self.attach_url else ""
        self.max_rank = int(settings.get("max_lora_rank") or 0)
        # "auto": the dtype the hardware runs natively, as vLLM's own torch reports
        # it, so that vLLM and the local backend compute in the same dtype.
        self.configured_dtype = str(settings.get("dtype", AUTO))
        self.dtype: str | None = None if self.configured_dtype == AUTO else self.configured_dtype
        self.identities: set[str] = {self.base}
        self.restarts = 0
        self.process: VllmProcess | None = None
        self._client: httpx.AsyncClient | None = None
        self._ready = False
        self._closing = False
        self._down_reason = "not started"
        # lora_name -> adapter folder, for adapters vLLM holds now.
        self._loaded: dict[str, str] = {}
        self._publish_locks: dict[str, asyncio.Lock] = {}
        self._watchdog: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        headers = {}
        key_env = self.settings.get("api_key_env")
        if key_env:
            key = os.environ.get(str(key_env))
            if not key:
                raise ConfigError(f'[backends."{self.base}"]: api_key_env names {key_env}, which is not set')
            headers["Authorization"] = f"Bearer {key}"
        # One client for every request: keep-alive connections to vLLM, and a pool
        # larger than any batch vLLM will run.
        self._client = httpx.AsyncClient(
            headers=headers,
            # A launched vLLM is local: proxy variables must not reroute it.
            trust_env=bool(self.attach_url),
            timeout=httpx.Timeout(self.request_timeout, connect=10.0),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
        )
        try:
            self.identities = await asyncio.to_thread(
                base_identities, self.base, self.context.base_model
            )
            if self.attach_url:
                await self._attach()
            else:
                await self._launch()
        except BaseException:
            await self.close()
            raise
        self._watchdog = asyncio.create_task(self._watch())

    async def _attach(self) -> None:
        self.max_rank = self.max_rank or VLLM_DEFAULT_RANK
        deadline = asyncio.get_running_loop().time() + self.startup_timeout
        while True:
            if await self._probe():
                self._ready = True
                return
            if asyncio.get_running_loop().time() > deadline:
                raise BackendUnavailable(f"no vLLM answers at {self.url}/health")
            await asyncio.sleep(0.5)

    async def _launch(self) -> None:
        if not self.max_rank:
            ranks = await asyncio.to_thread(lambda: registered_ranks(self.context.versions()))
            self.max_rank = rank_limit(ranks)
        self.max_rank = self.max_rank or rank_limit([])
        port = int(self.settings.get("port", 0)) or free_port(self.host)
        if not port_is_free(self.host, port):
            # Whatever listens there would answer /health in vLLM's place.
            raise BackendUnavailable(
                f"port {port} on {self.host} is in use; set another port in "
                f'[backends."{self.base}"] or use port = 0'
            )
        self.url = f"http://{self.host}:{port}"
        model = str(self.base_path or self.settings.get("model") or self.base)
        args = [str(a) for a in self.settings.get("args", [])]
        python = str(self.settings.get("python") or sys.executable)
        self.dtype = await asyncio.to_thread(launch_dtype, self.configured_dtype, args, python)
        command = server_command(
            python=python,
            model=model,
            served_name=self.served_name,
            host=self.host,
            port=port,
            max_lora_rank=self.max_rank,
            max_loras=self.max_loras,
            args=args,
            dtype=self.dtype,
        )
        env = server_env(dict(self.settings.get("env", {})), Path(model).is_dir())
        home = Path(str(self.home)) if self.home else Path.cwd()
        self.process = VllmProcess(command, env, home / "logs" / f"vllm-{self.base}.log")
        await self._run_process()

    async def _run_process(self) -> None:
        assert self.process is not None and self._client is not None
        self._down_reason = "vLLM is starting"
        self.process.spawn()
        await self.process.wait_ready(self._client, self.url, self.startup_timeout)
        self._loaded.clear()
        self._ready = True

    async def close(self) -> None:
        self._closing = True
        self._ready = False
        self._down_reason = "the backend is closed"
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if self.process is not None:
            await self.process.stop()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # ------------------------------------------------------------ watchdog

    async def _watch(self) -> None:
        """Launched: restart vLLM when it dies. Attached: forget adapters when it
        stops answering, since a restarted server has none."""
        while not self._closing:
            if self.process is None:
                await asyncio.sleep(ATTACH_PROBE_S)
                if not await self._probe():
                    self._loaded.clear()
                continue
            await asyncio.sleep(WATCH_INTERVAL_S)
            code = self.process.returncode()
            if code is None or self._closing:
                continue
            self._ready = False
            self._loaded.clear()
            self._down_reason = f"vLLM exited with code {code}"
            if not self.restart:
                self._down_reason += "; restart is off for this backend"
                return
            await self._restart_until_ready(code)

    async def _restart_until_ready(self, code: int) -> None:
        assert self.process is not None
        print(f"gateway: vLLM for {self.base!r} exited with code {code}; restarting",
              file=sys.stderr)
        backoff = 1.0
        while not self._closing:
            await self.process.stop()
            self._down_reason = f"vLLM exited with code {code} and is restarting"
            try:
                await self._run_process()
            except BackendUnavailable as exc:
                print(f"gateway: restarting vLLM for {self.base!r} failed: {exc}", file=sys.stderr)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            self.restarts += 1
            return

    async def _probe(self) -> bool:
        try:
            response = await self._http().get(f"{self.url}/health", timeout=5.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    # ------------------------------------------------------------ adapters

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise BackendUnavailable(f"the vllm backend for {self.base!r} is not started")
        return self._client

    def _check_ready(self) -> httpx.AsyncClient:
        client = self._http()
        if not self._ready:
            raise BackendUnavailable(f"vLLM for {self.base!r} is unavailable: {self._down_reason}")
        return client

    def _lora_name(self, target: ModelTarget) -> str:
        return target.adapter_name or target.requested

    async def _model_for(self, target: ModelTarget) -> str:
        """The name vLLM knows target by, publishing its adapter first if needed."""
        self._check_ready()
        if not target.adapter_path:
            if target.base != self.base:
                raise BackendRequestError(
                    f"{target.requested!r} runs on {target.base!r}; this vLLM serves {self.base!r}"
                )
            return self.served_name
        name = self._lora_name(target)
        if name not in self._loaded:
            await self._publish(target, name)
        return name

    async def _publish(self, target: ModelTarget, name: str) -> None:
        lock = self._publish_locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name in self._loaded:
                return
            info = check_adapter(
                target,
                base=self.base,
                base_identities=self.identities,
                base_path=self.base_path,
                max_rank=self.max_rank,
                check_base=self.check_base,
                roots=self.context.adapter_roots,
            )
            folder = str(info.folder.resolve())
            response = await self._post("/v1/load_lora_adapter",
                                        {"lora_name": name, "lora_path": folder})
            message = protocol.error_message(response.content)
            if response.status_code != 200 and "already been loaded" not in message:
                raise BackendRequestError(f"vLLM refused adapter {target.requested!r}: {message}")
            self._loaded[name] = folder

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        client = self._check_ready()
        try:
            response = await client.post(f"{self.url}{path}", json=body)
        except httpx.TransportError as exc:
            raise _transport_error(self.base, exc) from exc
        if response.status_code >= 500:
            raise BackendUnavailable(
                f"vLLM for {self.base!r} failed: {protocol.error_message(response.content)}"
            )
        return response

    async def load_adapter(self, target: ModelTarget) -> None:
        await self._model_for(target)

    async def unload_adapter(self, target: ModelTarget) -> None:
        name = self._lora_name(target)
        if name not in self._loaded:
            raise BackendRequestError(f"adapter {target.requested!r} is not loaded on vLLM")
        response = await self._post("/v1/unload_lora_adapter", {"lora_name": name})
        message = protocol.error_message(response.content)
        if response.status_code != 200 and response.status_code != 404:
            raise BackendRequestError(f"vLLM refused to unload {target.requested!r}: {message}")
        self._loaded.pop(name, None)

    # ------------------------------------------------------------ requests

    async def chat(self, request: ChatRequest) -> Generation:
        return await self._generate(request)

    async def complete(self, request: CompletionRequest) -> Generation:
        return await self._generate(request)

    async def _generate(self, request: ChatRequest | CompletionRequest) -> Generation:
        chat = isinstance(request, ChatRequest)
        path = protocol.request_path(request)
        for attempt in (1, 2):
            model = await self._model_for(request.target)
            response = await self._post(path, protocol.request_body(request, model, stream=False))
            if response.status_code == 200:
                return protocol.generation(response.json(), chat)
            self._raise_for(response.status_code, response.content, request.target, attempt)
        raise AssertionError("unreachable")

    async def stream(self, request: ChatRequest | CompletionRequest) -> AsyncIterator[Delta]:
        chat = isinstance(request, ChatRequest)
        response = await self._open_stream(request)
        try:
            async for delta in protocol.deltas(response.aiter_lines(), chat):
                yield delta
        except httpx.TransportError as exc:
            raise _transport_error(self.base, exc) from exc
        finally:
            await response.aclose()

    async def _open_stream(self, request: ChatRequest | CompletionRequest) -> httpx.Response:
        """The streamed response, its status checked before any event is read."""
        path = protocol.request_path(request)
        for attempt in (1, 2):
            model = await self._model_for(request.target)
            client = self._check_ready()
            outgoing = client.build_request(
                "POST", f"{self.url}{path}", json=protocol.request_body(request, model, stream=True)
            )
            try:
                response = await client.send(outgoing, stream=True)
            except httpx.TransportError as exc:
                raise _transport_error(self.base, exc) from exc
            if response.status_code == 200:
                return response
            content = await response.aread()
            await response.aclose()
            self._raise_for(response.status_code, content, request.target, attempt)
        raise AssertionError("unreachable")

    def _raise_for(self, status: int, content: bytes, target: ModelTarget, attempt: int) -> None:
        """Map vLLM's error answer; returns only when a retry may succeed."""
        message = protocol.error_message(content)
        name = self._lora_name(target)
        if status == 404 and target.adapter_path and attempt == 1:
            # vLLM lost the adapter (restarted behind our back): publish it again.
            self._loaded.pop(name, None)
            return
        if status >= 500:
            raise BackendUnavailable(f"vLLM for {self.base!r} failed: {message}")
        raise BackendRequestError(f"vLLM refused the request: {message}")

    # ------------------------------------------------------------ health

    async def health(self) -> dict[str, Any]:
        self._check_ready()
        if not await self._probe():
            raise BackendUnavailable(f"vLLM at {self.url} does not answer /health")
        return {
            "status": "ok",
            "backend": self.name,
            "base": self.base,
            "mode": "attach" if self.attach_url else "launch",
            "url": self.url,
            "pid": self.process.pid if self.process else None,
            "restarts": self.restarts,
            "max_lora_rank": self.max_rank,
            "dtype": self.dtype,
            "adapters": sorted(self._loaded),
        }
