"""OpenAI's fine-tuning API over the gateway's jobs: requests in, objects out.

POST /v1/fine_tuning/jobs names uploaded files (gateway.files) and OpenAI's
hyperparameters; this module turns them into a job of the configured trainer
(`[fine_tuning] trainer`, default "local") and turns jobs, events and
checkpoints back into `fine_tuning.job`, `fine_tuning.job.event` and
`fine_tuning.job.checkpoint` objects.

OpenAI's hyperparameters map onto the trainer's:

| OpenAI                     | trainer         | "auto" (or absent) means                 |
|----------------------------|-----------------|------------------------------------------|
| `n_epochs`                 | `epochs`        | the trainer's default (local: 3)         |
| `batch_size`               | `batch_size`    | the trainer's default (local: 8)         |
| `learning_rate_multiplier` | `learning_rate` | 1.0 x the trainer's default (local: 2e-4)|

Any other key under `hyperparameters` is one of the trainer's own (for the
local trainer: `max_steps`, `lora_r`, `checkpoint_steps`...), checked by the
trainer like `gateway train --set`; an unknown one is refused by name.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.errors import GatewayError, NotFoundError
from gateway.job_records import Job, job_checkpoints, job_events
from gateway.store import Store

SUPPORTED_METHODS = ("supervised",)
OPENAI_HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")
# Trainer names that the OpenAI names stand for: given directly, they would be ambiguous.
MAPPED = {"epochs": "n_epochs", "learning_rate": "learning_rate_multiplier"}
MAX_METADATA_PAIRS = 16
JOB_FIELDS = ("model", "training_file", "validation_file", "suffix", "seed", "metadata",
              "hyperparameters", "method", "integrations")


class FineTuningRequestError(GatewayError):
    """A request the API refuses with 400; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelNotFound(NotFoundError):
    """The job's `model` is not a registered base model (404, model_not_found)."""


def _unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def requested_hyperparameters(body: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters a create request gives, from `hyperparameters` or `method`."""
    method = body.get("method")
    direct = body.get("hyperparameters")
    if method is None:
        if direct is not None and not isinstance(direct, dict):
            raise FineTuningRequestError("hyperparameters must be an object", "hyperparameters")
        return dict(direct or {})
    if not isinstance(method, dict):
        raise FineTuningRequestError("method must be an object", "method")
    kind = method.get("type")
    if kind not in SUPPORTED_METHODS:
        raise FineTuningRequestError(
            f"method.type {kind!r} is not supported; supported: {', '.join(SUPPORTED_METHODS)}",
            "method.type")
    if direct:
        raise FineTuningRequestError(
            "give hyperparameters either at the top level or under method.supervised, not both",
            "hyperparameters")
    section = method.get(kind) or {}
    found = section.get("hyperparameters", {}) if isinstance(section, dict) else None
    if not isinstance(found, dict):
        raise FineTuningRequestError("method.supervised.hyperparameters must be an object",
                                     "method.supervised.hyperparameters")
    return dict(found)


def _positive(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise FineTuningRequestError(f"{name} must be \"auto\" or a positive number, got {value!r}",
                                     f"hyperparameters.{name}")
    if kind is int and int(value) != value:
        raise FineTuningRequestError(f"{name} must be a whole number, got {value!r}",
                                     f"hyperparameters.{name}")
    return kind(value)


def to_trainer(requested: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The trainer's hyperparameters for OpenAI's; `defaults` are the trainer's own."""
    for name, openai_name in MAPPED.items():
        if name in requested:
            raise FineTuningRequestError(f"use {openai_name}, not {name}", f"hyperparameters.{name}")
    params = {k: v for k, v in requested.items() if k not in OPENAI_HYPERPARAMETERS}
    epochs = requested.get("n_epochs", "auto")
    if epochs != "auto":
        params["epochs"] = _positive("n_epochs", epochs, int)
    batch = requested.get("batch_size", "auto")
    if batch != "auto":
        params["batch_size"] = _positive("batch_size", batch, int)
    multiplier = requested.get("learning_rate_multiplier", "auto")
    if multiplier != "auto":
        if "learning_rate" not in defaults:
            raise FineTuningRequestError("this trainer has no learning rate to multiply",
                                         "hyperparameters.learning_rate_multiplier")
        params["learning_rate"] = _positive("learning_rate_multiplier", multiplier, float) * float(
            defaults["learning_rate"])
    return params


def from_trainer(params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's view of a job's resolved hyperparameters (what "auto" became)."""
    resolved: dict[str, Any] = {}
    if "epochs" in params:
        resolved["n_epochs"] = params["epochs"]
    if "batch_size" in params:
        resolved["batch_size"] = params["batch_size"]
    if params.get("learning_rate") and defaults.get("learning_rate"):
        resolved["learning_rate_multiplier"] = round(
            float(params["learning_rate"]) / float(defaults["learning_rate"]), 6)
    return resolved


def trainer_defaults(trainer: str) -> dict[str, Any]:
    from gateway.plugins import get_trainer

    return get_trainer(trainer)().resolve_hyperparameters({})


def _file_path(store: Store, body: dict[str, Any], field: str) -> Path | None:
    from gateway.files import get_file

    file_id = body.get(field)
    if file_id is None:
        return None
    if not isinstance(file_id, str):
        raise FineTuningRequestError(f"{field} must be a file id", field)
    try:
        return Path(get_file(store, file_id).path)
    except NotFoundError:
        raise FineTuningRequestError(f"invalid {field}: no such file {file_id!r} "
                                     "(upload it with POST /v1/files)", field) from None


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if (not isinstance(value, dict) or len(value) > MAX_METADATA_PAIRS
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        raise FineTuningRequestError(
            f"metadata must be an object of at most {MAX_METADATA_PAIRS} string pairs", "metadata")
    return dict(value)


def create_api_job(config: Config, store: Store, body: dict[str, Any]) -> Job:
    """Store the job a POST /v1/fine_tuning/jobs asks for; `gateway serve` runs it."""
    from gateway.jobs import create_job
    from gateway.registry import get_base_model

    unknown = sorted(set(body) - set(JOB_FIELDS))
    if unknown:
        raise FineTuningRequestError(f"unknown parameter {unknown[0]!r}", unknown[0])
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise FineTuningRequestError("Missing required parameter: 'model'.", "model")
    try:
        get_base_model(store, model)
    except NotFoundError:
        raise ModelNotFound(f"The model `{model}` is not a registered base model "
                            "(see `gateway models list`).") from None
    if body.get("integrations"):
        raise FineTuningRequestError("integrations are not supported", "integrations")
    training = _file_path(store, body, "training_file")
    if training is None:
        raise FineTuningRequestError("Missing required parameter: 'training_file'.", "training_file")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed < 2**31):
        raise FineTuningRequestError("seed must be an integer in [0, 2147483647]", "seed")
    trainer = config.api_trainer
    defaults = trainer_defaults(trainer)
    params = to_trainer(requested_hyperparameters(body), defaults)
    if seed is not None:
        params["seed"] = seed
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
        raise FineTuningRequestError("suffix must be a string of at most 64 characters", "suffix")
    try:
        return create_job(
            config, store, trainer=trainer, base=model, training_file=training,
            validation_file=_file_path(store, body, "validation_file"), suffix=suffix,
            hyperparameters=params,
            api={"source": "api", "training_file": body["training_file"],
                 "validation_file": body.get("validation_file"), "seed": seed,
                 "metadata": _metadata(body.get("metadata"))},
        )
    except FineTuningRequestError:
        raise
    except GatewayError as exc:  # the trainer refused a hyperparameter, or a bad suffix
        raise FineTuningRequestError(str(exc), "hyperparameters") from exc


# ---------------------------------------------------------------- objects


def _error(job: Job) -> dict[str, Any] | None:
    if job.status != "failed":
        return None
    invalid = (job.error or "").startswith("invalid training data")
    return {"code": "invalid_training_file" if invalid else "training_failed",
            "message": job.error or "failed", "param": "training_file" if invalid else None}


def _estimated_finish(job: Job, events: list[dict[str, Any]]) -> int | None:
    if job.status != "running" or job.started is None:
        return None
    for event in reversed(events):
        data, step = event["data"], event["step"]
        if event["type"] == "metrics" and step and data.get("total_steps"):
            elapsed = time.time() - job.started.timestamp()
            return int(job.started.timestamp() + elapsed * float(data["total_steps"]) / step)
    return None


def job_object(job: Job, store: Store) -> dict[str, Any]:
    """`fine_tuning.job`, as OpenAI shapes it."""
    events = job_events(store, job.id)
    defaults = trainer_defaults(job.trainer)
    hyperparameters = from_trainer(job.hyperparameters, defaults)
    return {
        "object": "fine_tuning.job",
        "id": job.id,
        "model": job.base,
        "created_at": _unix(job.created),
        "finished_at": _unix(job.finished),
        "fine_tuned_model": job.model_version_id,
        "organization_id": "gateway",
        "status": job.status,
        "hyperparameters": hyperparameters,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        "training_file": job.api.get("training_file") or job.training_file,
        "validation_file": job.api.get("validation_file") or job.validation_file,
        "result_files": [],
        "trained_tokens": job.trained_tokens,
        "error": _error(job),
        "seed": job.hyperparameters.get("seed", job.api.get("seed")),
        "suffix": job.suffix,
        "metadata": job.api.get("metadata") or None,
        "estimated_finish": _estimated_finish(job, events),
        "integrations": [],
        "user_provided_suffix": job.suffix,
    }


def event_objects(job: Job, store: Store) -> list[dict[str, Any]]:
    """The job's `fine_tuning.job.event`s, newest first (as OpenAI lists them)."""
    found = []
    for event in reversed(job_events(store, job.id)):
        failed = event["type"] == "status" and job.status == "failed" and event["message"] == "failed"
        found.append({
            "object": "fine_tuning.job.event",
            "id": f"ftevent-{job.id.removeprefix('ftjob-')}-{event['seq']}",
            "created_at": _unix(event["created"]),
            "level": "error" if failed else "info",
            "message": event["message"] or event["type"],
            "data": {**event["data"], **({"step": event["step"]} if event["step"] is not None else {})},
            "type": "metrics" if event["type"] == "metrics" else "message",
        })
    return found


def checkpoint_objects(job: Job, store: Store) -> list[dict[str, Any]]:
    """The job's `fine_tuning.job.checkpoint`s, newest first."""
    import json

    found = []
    for row in reversed(job_checkpoints(store, job.id)):
        metrics = json.loads(row["metrics"] or "{}")
        found.append({
            "object": "fine_tuning.job.checkpoint",
            "id": f"ftckpt-{job.id.removeprefix('ftjob-')}-{row['step']}",
            "created_at": _unix(row["created"]),
            "fine_tuned_model_checkpoint": f"{job.model_version_id or job.id}:ckpt-step-{row['step']}",
            "fine_tuning_job_id": job.id,
            "metrics": {"step": row["step"], **({"train_loss": metrics["loss"]} if "loss" in metrics else {})},
            "step_number": row["step"],
        })
    return found


def page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """OpenAI's cursor page: items after the one with id `after`, at most `limit`."""
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}
