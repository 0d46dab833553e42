"""A pytest plugin for people who write gateway plugins (registered as `pytest11`).

Fixtures:
- `gateway_home`: an empty GATEWAY_HOME for the test, with the plugin manager reset.
- `register_plugin`: registers a plugin object for the test and unregisters it after.
- `gateway_cli`: runs `gateway` commands in-process and returns click's Result.

Helper:
- `backend_context(base, path=None, ...)`: a BackendContext to build a backend
  directly in a test, as the host would (`MyBackend(settings, context)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gateway.contracts import BackendContext, BaseModel, ModelVersion
from gateway.testing.fixtures import gateway_cli, gateway_home, register_plugin

__all__ = ["backend_context", "gateway_cli", "gateway_home", "register_plugin"]


def backend_context(base: str, path: str | Path | None = None, *, home: Path | None = None,
                    versions: Sequence[ModelVersion] = (), serving: bool = False,
                    adapter_roots: Sequence[Path] = ()) -> BackendContext:
    """The context the host gives a backend for the base model `base` (at `path`)."""
    model = BaseModel(name=base, source="path", path=str(path)) if path is not None else None
    listed = list(versions)
    return BackendContext(base=base, base_model=model, home=home or Path.cwd(),
                          adapter_roots=tuple(adapter_roots), serving=serving,
                          list_versions=lambda: list(listed))
