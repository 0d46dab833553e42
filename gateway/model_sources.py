"""Adding base models: local folders, GGUF files and built-in models.

Fetching and converting weights is plugin work (the `pull_model`,
`import_gguf` and `describe_model` hooks); this module records the results in
the registry. `gateway models` and `gateway demo` use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.contracts import BaseModel, ModelInfo
from gateway.errors import GatewayError, NotFoundError, PluginError
from gateway.plugins import get_plugin_manager
from gateway.registry import add_base_model, validate_name
from gateway.store import Store

Progress = Callable[[str], None]
LOCAL_HINT = "install the local plugin: pip install 'finetune-gateway[local]'"


def _metadata(info: ModelInfo | None) -> dict[str, Any]:
    return asdict(info) if info is not None else {}


def _existing(store: Store, name: str) -> BaseModel | None:
    row = store.query_one("SELECT * FROM base_models WHERE name = ?", [name])
    return BaseModel(**row) if row else None


def builtin_models() -> dict[str, str]:
    """Names the installed plugins can pull, with their descriptions."""
    found: dict[str, str] = {}
    get_plugin_manager().hook.register_builtin_models(
        register=lambda name, description: found.setdefault(name, description)
    )
    return found


def add_local_model(store: Store, path: Path, name: str | None = None, replace: bool = False) -> BaseModel:
    """Register a Hugging Face folder (with config.json) as a base model."""
    path = Path(path).expanduser().resolve()
    if not (path / "config.json").is_file():
        raise GatewayError(f"{path} has no config.json: not a Hugging Face model folder")
    meta = get_plugin_manager().hook.describe_model(path=path)
    model = BaseModel(name=name or path.name, source="path", path=str(path), **_metadata(meta))
    return add_base_model(store, model, replace=replace)


def import_gguf_model(
    store: Store, config: Config, gguf: Path, name: str, progress: Progress = print
) -> BaseModel:
    """Convert a GGUF file into config.models_dir/<name> and register it."""
    validate_name(name, "model name")
    if _existing(store, name) is not None:
        raise GatewayError(f"a base model named {name!r} already exists; pick another --name")
    dest = config.models_dir / name
    if dest.exists():
        raise GatewayError(f"{dest} already exists; remove it or pick another --name")
    meta = get_plugin_manager().hook.import_gguf(
        gguf_path=Path(gguf).resolve(), dest=dest, progress=progress
    )
    if meta is None:
        raise PluginError(f"no installed plugin can convert GGUF files; {LOCAL_HINT}")
    model = BaseModel(name=name, source="gguf", path=str(dest), **_metadata(meta))
    return add_base_model(store, model)


def pull_builtin_model(
    store: Store, config: Config, name: str, as_name: str | None = None, progress: Progress = print
) -> tuple[BaseModel, bool]:
    """Make a built-in model available offline. Returns (model, already_available)."""
    known = builtin_models()
    if name not in known:
        listed = ", ".join(sorted(known)) or f"none ({LOCAL_HINT})"
        raise NotFoundError(f"no built-in model named {name!r}. Built-in models: {listed}")
    model_name = validate_name(as_name or name, "model name")
    existing = _existing(store, model_name)
    if existing and existing.path and (Path(existing.path) / "config.json").is_file():
        return existing, True
    if existing and existing.source != "builtin":
        raise GatewayError(
            f"a base model named {model_name!r} already exists ({existing.source}); "
            "pick another --name"
        )
    pm = get_plugin_manager()
    dest = config.models_dir / model_name
    if (dest / "config.json").is_file():
        # Fetched before but not (or no longer) registered: record it again.
        meta = pm.hook.describe_model(path=dest)
        model = BaseModel(name=model_name, source="builtin", path=str(dest), **_metadata(meta))
        return add_base_model(store, model, replace=existing is not None), True
    meta = pm.hook.pull_model(name=name, dest=dest, progress=progress)
    if meta is None:
        raise PluginError(f"no installed plugin can pull {name!r}; {LOCAL_HINT}")
    model = BaseModel(name=model_name, source="builtin", path=str(dest), **_metadata(meta))
    return add_base_model(store, model, replace=existing is not None), False
