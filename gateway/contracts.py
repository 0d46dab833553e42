"""The types that cross the plugin boundary: what trainers, backends and
evaluators receive and return. Plugins implement the Protocols; the core only
ever talks to these shapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

# ---------------------------------------------------------------- training


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

    def train(
        self, spec: TrainingSpec, control: JobControl
    ) -> Iterator[TrainingEvent | TrainingResult]:
        """Run the job, yielding events and finally exactly one TrainingResult."""
        ...


# ---------------------------------------------------------------- serving


@dataclass
class ModelTarget:
    """A resolved model: the base it runs on and, for a fine-tune, its adapter."""

    requested: str
    base: str
    base_path: str | None = None
    version_id: str | None = None
    adapter_name: str | None = None
    adapter_path: str | None = None
    remote_id: str | None = None
    provider: str | None = None


@dataclass
class GenerationParams:
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class ChatRequest:
    target: ModelTarget
    messages: list[dict[str, Any]]
    params: GenerationParams = field(default_factory=GenerationParams)


@dataclass
class CompletionRequest:
    target: ModelTarget
    prompt: str
    params: GenerationParams = field(default_factory=GenerationParams)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Generation:
    """A finished generation."""

    text: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None


@dataclass
class Delta:
    """One streamed piece. The last one carries finish_reason and usage."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None


class BackendUnavailable(Exception):
    """The backend cannot answer now (starting, restarting). Maps to HTTP 503."""


class BackendRequestError(Exception):
    """The backend refused the request itself (bad adapter, bad params). HTTP 400."""


@runtime_checkable
class Backend(Protocol):
    """Serves models. Registered as a class; built with its settings dict."""

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, settings: dict[str, Any]) -> None: ...

    async def start(self) -> None:
        """Prepare to serve (load weights, launch a server). Called once."""
        ...

    async def close(self) -> None:
        """Release everything start() took."""
        ...

    async def chat(self, request: ChatRequest) -> Generation: ...

    async def complete(self, request: CompletionRequest) -> Generation: ...

    def stream(self, request: ChatRequest | CompletionRequest) -> AsyncIterator[Delta]: ...

    async def load_adapter(self, target: ModelTarget) -> None:
        """Make target's adapter servable now. Optional: may raise NotImplementedError."""
        ...

    async def unload_adapter(self, target: ModelTarget) -> None:
        """Drop target's adapter from memory. Optional."""
        ...

    async def health(self) -> dict[str, Any]:
        """A small status dict; raising means unhealthy."""
        ...


# ---------------------------------------------------------------- evaluation


@dataclass
class Sample:
    """One eval row with the model's output."""

    id: str
    messages: list[dict[str, Any]]
    ideal: str | list[str] | None
    output: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Score:
    value: float
    passed: bool | None = None
    detail: str = ""


@runtime_checkable
class Evaluator(Protocol):
    """Scores outputs. Registered as a class; built with its options as kwargs.

    A per-sample evaluator implements `score`. A corpus-level one sets
    `corpus_level = True` and implements `score_corpus`, returning one Score
    for the whole run (per-sample scores may still be given by `score`).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    corpus_level: ClassVar[bool]

    def score(self, sample: Sample) -> Score: ...

    def score_corpus(self, samples: list[Sample]) -> Score: ...
