"""Base models, model versions and what plugins report about model folders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


@dataclass
class BaseModel:
    """A registered base model: a local folder, a hub id, or a converted GGUF."""

    name: str
    source: str
    path: str | None = None
    hf_id: str | None = None
    architecture: str | None = None
    context_length: int | None = None
    parameters: int | None = None
    created: datetime | None = None


@dataclass
class ModelVersion:
    """A fine-tuned version: a local adapter or a hosted fine-tune, immutable once stored."""

    id: str
    name: str
    version: int
    base: str
    kind: str
    provider: str | None = None
    artifact_uri: str | None = None
    remote_id: str | None = None
    trainer: str | None = None
    trainer_version: str | None = None
    job_id: str | None = None
    dataset_sha256: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: datetime | None = None

    @property
    def ref(self) -> str:
        """The human reference, `name@vN`."""
        return f"{self.name}@v{self.version}"


@dataclass
class ModelInfo:
    """What `pull_model`, `import_gguf` and `describe_model` report about a model folder."""

    architecture: str | None = None
    context_length: int | None = None
    parameters: int | None = None


@runtime_checkable
class TokenCounter(Protocol):
    """Counts the tokens one example takes after the model's chat template."""

    context_length: int | None

    def count(self, messages: Sequence[dict[str, Any]],
              tools: Sequence[dict[str, Any]] | None = None) -> int: ...
