"""Entry point of the built-in "hosted" plugin: a trainer and a backend through litellm.

Cheap to import: litellm (slow to import) loads only when a hosted job runs or
a hosted model serves. Without litellm installed the plugin shows as
unavailable, with the extra that installs it (`pip install 'finetune-gateway[hosted]'`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway import hookimpl

GATEWAY_REQUIRES = ["litellm"]
GATEWAY_EXTRA = "hosted"


@hookimpl
def register_trainers(register: Callable[[type[Any]], None]) -> None:
    from gateway_hosted.trainer import HostedTrainer

    register(HostedTrainer)


@hookimpl
def register_backends(register: Callable[[type[Any]], None]) -> None:
    from gateway_hosted.backend import HostedBackend

    register(HostedBackend)
