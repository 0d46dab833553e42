"""Entry point of the built-in "local" plugin. Cheap to import: heavy modules load on use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway import hookimpl
from gateway.contracts import ModelInfo

GATEWAY_REQUIRES = ["torch", "transformers", "peft"]
GATEWAY_EXTRA = "local"


# ---------------------------------------------------------------- base models


@hookimpl
def register_builtin_models(register: Callable[[str, str], None]) -> None:
    from gateway_local.models import BUILTIN_MODELS

    for name, description in BUILTIN_MODELS.items():
        register(name, description)


@hookimpl
def pull_model(name: str, dest: Path, progress: Callable[[str], None]) -> ModelInfo | None:
    from gateway_local.models import pull_builtin

    return pull_builtin(name, dest, progress)


@hookimpl
def import_gguf(gguf_path: Path, dest: Path, progress: Callable[[str], None]) -> ModelInfo:
    from gateway_local.models import import_gguf_file

    return import_gguf_file(gguf_path, dest, progress)


@hookimpl
def describe_model(path: Path) -> ModelInfo | None:
    from gateway_local.models import describe

    return describe(path)


@hookimpl
def load_token_counter(model_path: str) -> Any:
    from gateway_local.models import load_counter

    return load_counter(model_path)


# ---------------------------------------------------------------- training


@hookimpl
def register_trainers(register: Callable[[type[Any]], None]) -> None:
    from gateway_local.trainer import LocalTrainer

    register(LocalTrainer)


# ---------------------------------------------------------------- serving


@hookimpl
def register_backends(register: Callable[[type[Any]], None]) -> None:
    from gateway_local.backend import LocalBackend

    register(LocalBackend)
