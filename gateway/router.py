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
from gateway.contracts import Backend, BackendContext, BaseModel, ModelTarget, ModelVersion
from gateway.errors import NotFoundError
from gateway.plugins import get_backend_class
from gateway.registry import get_base_model, list_versions, resolve
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
            configured = self.configured_hosted_models().get(model)
            if configured is not None:
                return configured
            raise

    def configured_hosted_models(self) -> dict[str, ModelTarget]:
        """Models served by a provider as configured: `[backends."NAME"] backend = "hosted"`
        with `provider` and `model` (the provider's model id, default NAME)."""
        found = {}
        for name, entry in self.config.backends.items():
            if entry.backend == HOSTED_BACKEND:
                found[name] = ModelTarget(
                    requested=name, base=name, provider=str(entry.settings.get("provider", "")),
                    remote_id=str(entry.settings.get("model", name)),
                )
        return found

    def backend_name(self, target: ModelTarget) -> str:
        if target.provider and target.adapter_path is None:
            return HOSTED_BACKEND
        return self.config.backend_config(target.base).backend

    def backend_settings(self, target: ModelTarget) -> dict[str, Any]:
        """The user's [backends."BASE"] table, as written."""
        return dict(self.config.backend_config(target.base).settings)

    def backend_context(self, target: ModelTarget) -> BackendContext:
        """What the backend for `target` is told about where it runs."""
        store, base = self.store, target.base
        try:
            base_model: BaseModel | None = get_base_model(store, base)
        except NotFoundError:
            base_model = None  # a name the registry does not know (a hosted model)

        def versions() -> list[ModelVersion]:
            return [v for v in list_versions(store) if v.base == base]

        return BackendContext(
            base=base, base_model=base_model, home=self.config.home,
            adapter_roots=tuple(self.config.allowed_adapter_roots()), serving=self.serving,
            providers=dict(self.config.providers), list_versions=versions,
        )

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
                backend = cls(self.backend_settings(target), self.backend_context(target))
                await backend.start()
                self._backends[key] = backend
        return backend

    def started_backends(self) -> dict[tuple[str, str], Backend]:
        return dict(self._backends)

    async def close(self) -> None:
        backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            await backend.close()
