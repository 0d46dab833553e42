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
    # Hosted trainers: the configured provider's name and settings ([providers.NAME]),
    # and the provider's job id once a first run created it (re-attach, never re-create).
    provider: str | None = None
    provider_settings: dict[str, Any] = field(default_factory=dict)
    remote_job_id: str | None = None


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
    # The hyperparameters the run actually used, when the trainer learns them
    # (a provider reports its own); None keeps the job's resolved ones.
    hyperparameters: dict[str, Any] | None = None


@dataclass
class CostEstimate:
    """What a paid job is expected to cost, shown before it starts (USD)."""

    tokens: int
    epochs: int
    price_per_1m: float
    cost: float
    # True when the epoch count was "auto" and the estimate assumed one.
    epochs_assumed: bool = False


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
        """Run the job, yielding events and finally exactly one TrainingResult.

        A trainer that creates a remote job yields an event whose data holds
        `remote_job_id` as soon as it has one; the host stores it at once and
        passes it back as `spec.remote_job_id` when the job resumes.
        """
        ...

    def cancel(self, spec: TrainingSpec) -> None:
        """Stop the job where it runs (a provider's job); called by `jobs cancel`."""
        ...

    def estimate_cost(self, spec: TrainingSpec) -> CostEstimate | None:
        """The expected price of the job before it is created; None when free or unknown."""
        ...


class BaseTrainer:
    """Defaults for a Trainer: no version, hyperparameters taken as given.

    `needs_provider`: jobs must name a configured provider (hosted trainers).
    `uses_local_compute`: jobs take one of the `[jobs] max_running` slots while
    they run; a trainer that only polls a provider sets it False.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    needs_provider: ClassVar[bool] = False
    uses_local_compute: ClassVar[bool] = True

    @property
    def version(self) -> str | None:
        return None

    def resolve_hyperparameters(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        return dict(hyperparameters)

    def train(
        self, spec: TrainingSpec, control: JobControl
    ) -> Iterator[TrainingEvent | TrainingResult]:
        raise NotImplementedError(f"trainer {self.name!r} does not implement train()")

    def cancel(self, spec: TrainingSpec) -> None:
        """Nothing to do for a job that runs in this machine's processes: the
        running trainer sees the cancel through JobControl."""
        return None

    def estimate_cost(self, spec: TrainingSpec) -> CostEstimate | None:
        return None
