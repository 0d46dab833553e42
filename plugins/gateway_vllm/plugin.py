"""Entry point of the built-in "vllm" plugin. Cheap to import: the backend
module loads on use, and vLLM itself only ever runs in its own process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway import hookimpl

GATEWAY_REQUIRES = ["httpx"]
GATEWAY_EXTRA = "serve"


@hookimpl
def register_backends(register: Callable[[type[Any]], None]) -> None:
    from gateway_vllm.backend import VllmBackend

    register(VllmBackend)
