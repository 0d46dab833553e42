"""Routes a model name to the backend plugin that serves it.

The server and the eval runner share this: both resolve `model` through the
registry, then ask the Router for the backend instance configured for the
target's base model. Backends are built once per (backend, base) and started
lazily, on first use.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.config import Config
from gateway.contracts import Backend, ModelTarget
from gateway.errors import NotFoundError
from gateway.plugins import get_backend_class
from gateway.registry import resolve
from gateway.store import Store

HOSTED_BACKEND = "hosted"


class Router:
    def __init__(self, config: Config, store: Store, *, serving: bool = False) -> None:
        self.config = config
        self.store = store
        # True under `gateway serve`: backends then leave a core to the HTTP server.
        self.serving = serving
        self._backends: dict[tuple[str, str], Backend] = {}
        self._lock = asyncio.Lock()
        # Adapters loaded at runtime by name (POST /v1/load_lora_adapter with a path).
        self.runtime_targets: dict[str, ModelTarget] = {}

    def resolve(self, model: str) -> ModelTarget:
        """The target for `model`; runtime adapters shadow nothing in the registry."""
        try:
            return resolve(self.store, model)
        except NotFoundError:
            if model in self.runtime_targets:
                target = self.runtime_targets[model]
                return ModelTarget(**{**target.__dict__, "requested": model})
            raise

    def backend_name(self, target: ModelTarget) -> str:
        if target.provider and target.adapter_path is None:
            return HOSTED_BACKEND
        return self.config.backend_for(target.base).backend

    def backend_settings(self, target: ModelTarget) -> dict[str, Any]:
        settings = dict(self.config.backend_for(target.base).settings)
        settings.setdefault("base", target.base)
        settings.setdefault("base_path", target.base_path)
        settings.setdefault("home", str(self.config.home))
        settings.setdefault("adapter_roots", [str(p) for p in self.config.allowed_adapter_roots()])
        settings.setdefault("providers", self.config.providers)
        settings["serving"] = self.serving
        return settings

    async def backend_for(self, target: ModelTarget) -> Backend:
        """The started backend instance that serves `target`."""
        name = self.backend_name(target)
        key = (name, target.base if name != HOSTED_BACKEND else "*")
        backend = self._backends.get(key)
        if backend is not None:
            return backend
        async with self._lock:
            backend = self._backends.get(key)
            if backend is None:
                cls = get_backend_class(name)
                backend = cls(self.backend_settings(target))
                await backend.start()
                self._backends[key] = backend
        return backend

    def started_backends(self) -> dict[tuple[str, str], Backend]:
        return dict(self._backends)

    async def close(self) -> None:
        backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            await backend.close()
