"""Prompt variants: the same eval set asked in different ways.

- `none` (or nothing): the rows as written;
- `system:TEXT` or `system:@FILE`: replaces (or sets) the system prompt;
- `fewshot:K` (optionally `fewshot:K:SEED`): K examples drawn with a fixed
  seed from the set's train.jsonl, inserted as prior user/assistant turns.
  Every row gets the same K examples, so the prompt differs from zero-shot
  only by the shots;
- `schema`: the rows as written, decoded under the eval set's `schema:`
  (sent as a json_schema response_format).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError, ValidationError
from gateway.util import sha256_text

DEFAULT_SEED = 0


@dataclass
class PromptVariant:
    spec: str | None  # what the user typed, recorded on the run; None for no variant
    kind: str  # none | system | fewshot | schema
    system: str | None = None
    k: int = 0
    seed: int = DEFAULT_SEED
    shots: list[list[dict[str, Any]]] = field(default_factory=list)

    def fingerprint(self) -> dict[str, Any]:
        """What decides the prompts, for the run's settings (and so for resume)."""
        info: dict[str, Any] = {"kind": self.kind}
        if self.system is not None:
            info["system_sha256"] = sha256_text(self.system)
        if self.kind == "fewshot":
            info.update(k=self.k, seed=self.seed, shots_sha256=sha256_text(json.dumps(self.shots)))
        return info

    def apply(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages to send for one row."""
        if self.kind == "system":
            rest = [m for m in messages if m.get("role") != "system"]
            return [{"role": "system", "content": self.system}, *rest]
        if self.kind == "fewshot":
            system = [m for m in messages if m.get("role") == "system"]
            rest = [m for m in messages if m.get("role") != "system"]
            turns = [turn for shot in self.shots for turn in shot]
            return [*system, *turns, *rest]
        return messages


def display_name(model: str, variant: str | None) -> str:
    """How a run is shown: `smollm2-135m [fewshot:5]`."""
    return f"{model} [{variant}]" if variant and variant != "none" else model


def _training_pairs(train_path: Path) -> list[list[dict[str, Any]]]:
    """The usable examples of an OpenAI chat JSONL file: their user/assistant turns."""
    pool: list[list[dict[str, Any]]] = []
    for line_no, line in enumerate(train_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{train_path}: line {line_no}: invalid JSON: {exc.msg}",
                                  [(line_no, exc.msg)]) from exc
        messages = obj.get("messages") if isinstance(obj, dict) else None
        if not isinstance(messages, list):
            raise ValidationError(f"{train_path}: line {line_no}: needs 'messages'",
                                  [(line_no, "needs 'messages'")])
        turns = [
            {"role": m["role"], "content": m["content"]}
            for m in messages
            if isinstance(m, dict) and m.get("role") in ("user", "assistant")
        ]
        # A shot must end with the answer the model should imitate.
        if turns and turns[0]["role"] == "user" and turns[-1]["role"] == "assistant":
            pool.append(turns)
    return pool


def parse_variant(spec: str | None, train_path: Path | None = None) -> PromptVariant:
    """Parse a variant spec; few-shot examples are drawn from `train_path`."""
    if spec is None or spec.strip() in ("", "none"):
        return PromptVariant(spec=None, kind="none")
    kind, _, arg = spec.partition(":")
    if kind == "system":
        if not arg:
            raise GatewayError("prompt variant system:TEXT needs a text (or system:@FILE)")
        text = arg
        if arg.startswith("@"):
            file = Path(arg[1:]).expanduser()
            try:
                text = file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise GatewayError(f"prompt variant {spec!r}: cannot read {file}: {exc}") from exc
        return PromptVariant(spec=spec, kind="system", system=text)
    if kind == "schema":
        if arg:
            raise GatewayError("prompt variant 'schema' takes no argument: it sends the eval "
                               "set's `schema:` as a json_schema response_format")
        return PromptVariant(spec=spec, kind="schema")
    if kind == "fewshot":
        k_text, _, seed_text = arg.partition(":")
        try:
            k = int(k_text)
            seed = int(seed_text) if seed_text else DEFAULT_SEED
        except ValueError:
            raise GatewayError(f"prompt variant {spec!r}: use fewshot:K or fewshot:K:SEED") from None
        if k < 0:
            raise GatewayError(f"prompt variant {spec!r}: K must be 0 or more")
        if k and train_path is None:
            raise GatewayError(f"prompt variant {spec!r} needs an eval set with a 'train' file")
        pool = _training_pairs(train_path) if k and train_path else []
        if k > len(pool):
            raise GatewayError(
                f"prompt variant {spec!r}: {train_path} has only {len(pool)} usable examples"
            )
        shots = random.Random(seed).sample(pool, k) if k else []
        return PromptVariant(spec=spec, kind="fewshot", k=k, seed=seed, shots=shots)
    raise GatewayError(f"unknown prompt variant {spec!r}; use none, system:TEXT, system:@FILE, "
                       "fewshot:K or schema")
