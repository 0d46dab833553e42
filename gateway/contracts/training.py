"""What trainers receive, report and return."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable


@dataclass
class TrainingSpec:
    """Everything a trainer needs to run one job."""

    job_id: str
    base: str
    # Local folder of the base model (local trainers) or the remote model id (hosted).
    base_path: str | None
    training_file: Path
    validation_file: Path | None
    suffix: str | None
    hyperparameters: dict[str, Any]
    output_dir: Path
    # The latest checkpoint to resume from, if the job ran before.
    resume_from: Path | None = None


@dataclass
class TrainingEvent:
    """Progress a trainer reports: a logging step, a checkpoint, or a message."""

    type: Literal["metrics", "checkpoint", "message", "status"]
    message: str = ""
    step: int | None = None
    total_steps: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainingResult:
    """What a finished job produced: a local adapter or a remote model id."""

    kind: Literal["local", "hosted"]
    artifact_path: Path | None = None
    remote_id: str | None = None
    provider: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


class JobControl(Protocol):
    """Lets a trainer ask whether it should stop early."""

    def cancelled(self) -> bool: ...


@runtime_checkable
class Trainer(Protocol):
    """A training method. Registered as a class; instantiated with no arguments."""

    name: ClassVar[str]
    description: ClassVar[str]

    @property
    def version(self) -> str | None:
        """Recorded on each version it trains (e.g. its libraries' versions)."""
        ...

    def resolve_hyperparameters(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in and values checked, before the job is stored."""
        ...

    def train(
        self, spec: TrainingSpec, control: JobControl
    ) -> Iterator[TrainingEvent | TrainingResult]:
        """Run the job, yielding events and finally exactly one TrainingResult."""
        ...


class BaseTrainer:
    """Defaults for a Trainer: no version, hyperparameters taken as given."""

    name: ClassVar[str]
    description: ClassVar[str]

    @property
    def version(self) -> str | None:
        return None

    def resolve_hyperparameters(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        return dict(hyperparameters)

    def train(
        self, spec: TrainingSpec, control: JobControl
    ) -> Iterator[TrainingEvent | TrainingResult]:
        raise NotImplementedError(f"trainer {self.name!r} does not implement train()")
