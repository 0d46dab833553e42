"""Trainer "local": LoRA fine-tuning with torch + peft on this machine.

This module stays free of torch at import; the loop lives in training_loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from gateway.contracts import (
    BaseTrainer,
    GatewayError,
    JobControl,
    TrainingEvent,
    TrainingResult,
    TrainingSpec,
)

# name -> (default, type). None as a default means "not set".
HYPERPARAMETERS: dict[str, tuple[Any, type]] = {
    "lora_r": (8, int),
    "lora_alpha": (16, int),
    "lora_dropout": (0.05, float),
    "target_modules": ("all-linear", str),
    "epochs": (3, int),
    "max_steps": (None, int),
    "learning_rate": (2e-4, float),
    "batch_size": (8, int),
    "grad_accum": (1, int),
    "max_seq_len": (1024, int),
    "seed": (42, int),
    "packing": (False, bool),
    "logging_steps": (10, int),
    "checkpoint_steps": (100, int),
    "warmup_steps": (0, int),
    "weight_decay": (0.0, float),
    "max_grad_norm": (1.0, float),
}
POSITIVE = ("lora_r", "lora_alpha", "epochs", "max_steps", "batch_size", "grad_accum",
            "max_seq_len", "logging_steps", "learning_rate")


def _coerce(name: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        if not isinstance(value, bool):
            raise GatewayError(f"hyperparameter {name} must be true or false, got {value!r}")
        return value
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise GatewayError(f"hyperparameter {name} must be {kind.__name__}, got {value!r}") from None


def resolve(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in, types checked; unknown names are an error."""
    unknown = sorted(set(hyperparameters) - set(HYPERPARAMETERS))
    if unknown:
        raise GatewayError(
            f"unknown hyperparameter(s) for the local trainer: {', '.join(unknown)}. "
            f"Known: {', '.join(HYPERPARAMETERS)}"
        )
    resolved: dict[str, Any] = {}
    for name, (default, kind) in HYPERPARAMETERS.items():
        value = hyperparameters.get(name)
        if value is None:
            resolved[name] = default
        elif name == "target_modules":
            resolved[name] = _targets(value)
        else:
            resolved[name] = _coerce(name, value, kind)
    for name in POSITIVE:
        if resolved[name] is not None and resolved[name] <= 0:
            raise GatewayError(f"hyperparameter {name} must be positive, got {resolved[name]}")
    if not 0 <= resolved["lora_dropout"] < 1:
        raise GatewayError(f"lora_dropout must be in [0, 1), got {resolved['lora_dropout']}")
    return resolved


def _targets(value: Any) -> str | list[str]:
    if isinstance(value, str):
        if value == "all-linear":
            return value
        value = value.split(",")
    names = [str(v).strip() for v in value if str(v).strip()]
    if not names:
        raise GatewayError("target_modules is empty; use 'all-linear' or module names")
    return names


class LocalTrainer(BaseTrainer):
    """LoRA on this machine's GPU (bf16) or CPU, with packing and exact resume."""

    name: ClassVar[str] = "local"
    description: ClassVar[str] = "LoRA fine-tuning with torch + peft on this machine"

    @staticmethod
    def resolve_hyperparameters(hyperparameters: dict[str, Any]) -> dict[str, Any]:
        return resolve(hyperparameters)

    @property
    def version(self) -> str:
        from importlib.metadata import version

        from gateway import __version__

        libs = ", ".join(f"{lib} {version(lib)}" for lib in ("peft", "transformers", "torch"))
        return f"{__version__} ({libs})"

    def train(self, spec: TrainingSpec, control: JobControl) -> Iterator[TrainingEvent | TrainingResult]:
        from gateway_local.training_loop import train

        yield from train(spec, control, resolve(spec.hyperparameters))
