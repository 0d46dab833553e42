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
- Errors (`GatewayError`, `ConfigError`) and the hardware rules (`choose_dtype`,
  `default_threads`, `read_capabilities`...) that backends and trainers share.
"""

from __future__ import annotations

from gateway.confinement import escape_reason
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
from gateway.contracts.retrieval import BaseRetriever, Hit, Passage, Retriever
from gateway.contracts.serving import (
    Backend,
    BackendContext,
    BackendRateLimited,
    BackendRequestError,
    BackendUnavailable,
    BaseBackend,
    ChatRequest,
    CompletionRequest,
    Delta,
    Generation,
    GenerationParams,
    ModelTarget,
    UnsupportedParameter,
    Usage,
)
from gateway.contracts.training import (
    BaseTrainer,
    CostEstimate,
    JobControl,
    Trainer,
    TrainingEvent,
    TrainingResult,
    TrainingSpec,
)
from gateway.errors import ConfigError, GatewayError
from gateway.hardware import (
    AUTO,
    DTYPES,
    Capabilities,
    choose_dtype,
    default_threads,
    dtype_reason,
    probe_capabilities,
    read_capabilities,
    resolve_dtype,
    threads_reason,
    usable_cores,
)

__all__ = [
    "AUTO",
    "DTYPES",
    "Backend",
    "BackendContext",
    "BackendRateLimited",
    "BackendRequestError",
    "BackendUnavailable",
    "BaseBackend",
    "BaseModel",
    "BaseRetriever",
    "BaseTrainer",
    "Capabilities",
    "ChatFunction",
    "ChatRequest",
    "CompletionRequest",
    "ConfigError",
    "CostEstimate",
    "Delta",
    "Evaluator",
    "GatewayError",
    "Generation",
    "GenerationParams",
    "Hit",
    "JobControl",
    "ModelInfo",
    "ModelTarget",
    "ModelVersion",
    "Options",
    "Passage",
    "PerSampleEvaluator",
    "Retriever",
    "Sample",
    "Score",
    "TokenCounter",
    "Trainer",
    "TrainingEvent",
    "TrainingResult",
    "TrainingSpec",
    "UnsupportedParameter",
    "Usage",
    "choose_dtype",
    "default_threads",
    "dtype_reason",
    "escape_reason",
    "mean_score",
    "probe_capabilities",
    "read_capabilities",
    "resolve_dtype",
    "threads_reason",
    "usable_cores",
]
