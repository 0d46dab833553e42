"""The plugin SDK: every type that crosses the plugin boundary, the Protocols
plugins implement, and thin bases that give every optional capability its
default. Import everything from `gateway.contracts`. With `gateway.plugins` (the host) this is all a plugin author reads;
docs/plugins.md walks through it.

- Trainers subclass `BaseTrainer` (optional: `version`, `resolve_hyperparameters`).
- Backends subclass `BaseBackend`; they are built as `Backend(settings, context)`:
  `settings` is the user's `[backends."BASE"]` table, `context` a BackendContext.
- Evaluators subclass `PerSampleEvaluator` (optional: `needs_chat`,
  `needs_evalset_dir`, `corpus_level` with `score_corpus`) and read their
  options through `Options`.
"""

from __future__ import annotations

from gateway.contracts.evaluation import (
    ChatFunction,
    Evaluator,
    Options,
    PerSampleEvaluator,
    Sample,
    Score,
    mean_score,
)
from gateway.contracts.models import (
    BaseModel,
    ModelInfo,
    ModelVersion,
    TokenCounter,
)
from gateway.contracts.serving import (
    Backend,
    BackendContext,
    BackendRequestError,
    BackendUnavailable,
    BaseBackend,
    ChatRequest,
    CompletionRequest,
    Delta,
    Generation,
    GenerationParams,
    ModelTarget,
    Usage,
)
from gateway.contracts.training import (
    BaseTrainer,
    JobControl,
    Trainer,
    TrainingEvent,
    TrainingResult,
    TrainingSpec,
)

__all__ = [
    "Backend",
    "BackendContext",
    "BackendRequestError",
    "BackendUnavailable",
    "BaseBackend",
    "BaseModel",
    "BaseTrainer",
    "ChatFunction",
    "ChatRequest",
    "CompletionRequest",
    "Delta",
    "Evaluator",
    "Generation",
    "GenerationParams",
    "JobControl",
    "ModelInfo",
    "ModelTarget",
    "ModelVersion",
    "Options",
    "PerSampleEvaluator",
    "Sample",
    "Score",
    "TokenCounter",
    "Trainer",
    "TrainingEvent",
    "TrainingResult",
    "TrainingSpec",
    "Usage",
    "mean_score",
]
