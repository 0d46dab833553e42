"""Prompt variants: the same eval set asked in different ways.

- `none` (or nothing): the rows as written;
- `system:TEXT` or `system:@FILE`: replaces (or sets) the system prompt;
- `fewshot:K` (optionally `fewshot:K:SEED`): K examples drawn with a fixed
  seed from the set's train.jsonl, inserted as prior user/assistant turns.
  Every row gets the same K examples, so the prompt differs from zero-shot
  only by the shots;
- `schema`: the rows as written, decoded under the eval set's `schema:`
  (sent as a json_schema response_format);
- `retrieve:K`: the top K passages of the set's corpus for each row, put into
  its last user message (see gateway/evaluation/retrieval.py).

Variants compose with `+`, each at most once: `fewshot:3+retrieve:4`. The
order of the parts does not matter: the system prompt is set first, then the
passages go into the row's question, then the shots go before it.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError, ValidationError
from gateway.util import sha256_text

DEFAULT_SEED = 0
PARTS = ("system", "fewshot", "schema", "retrieve")
_PART_START = re.compile(r"^(?:none|system|fewshot|schema|retrieve)(?::|$)")


def _split(spec: str) -> list[str]:
    """The parts of a spec; a system text keeps a `+` not followed by a part's name."""
    parts: list[str] = []
    for piece in spec.split("+"):
        if parts and parts[-1].startswith("system:") and not _PART_START.match(piece):
            parts[-1] += "+" + piece
        else:
            parts.append(piece)
    return parts


@dataclass
class PromptVariant:
    spec: str | None  # what the user typed, recorded on the run; None for no variant
    parts: list[str] = field(default_factory=list)  # the levers used, in PARTS order
    system: str | None = None
    k: int = 0
    seed: int = DEFAULT_SEED
    shots: list[list[dict[str, Any]]] = field(default_factory=list)
    schema: bool = False
    retrieve_k: int = 0

    @property
    def kind(self) -> str:
        """`none`, one part's name, or the parts joined with `+`."""
        return "+".join(self.parts) or "none"

    def fingerprint(self) -> dict[str, Any]:
        """What decides the prompts, for the run's settings (and so for resume)."""
        info: dict[str, Any] = {"kind": self.kind}
        if self.system is not None:
            info["system_sha256"] = sha256_text(self.system)
        if "fewshot" in self.parts:
            info.update(k=self.k, seed=self.seed, shots_sha256=sha256_text(json.dumps(self.shots)))
        if self.retrieve_k:
            info["retrieve_k"] = self.retrieve_k
        return info

    def apply(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages to send for one row (passages are put in by the runner first)."""
        if self.system is not None:
            rest = [m for m in messages if m.get("role") != "system"]
            messages = [{"role": "system", "content": self.system}, *rest]
        if "fewshot" in self.parts:
            system = [m for m in messages if m.get("role") == "system"]
            rest = [m for m in messages if m.get("role") != "system"]
            turns = [turn for shot in self.shots for turn in shot]
            messages = [*system, *turns, *rest]
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


def _count(spec: str, arg: str, usage: str) -> int:
    try:
        k = int(arg)
    except ValueError:
        raise GatewayError(f"prompt variant {spec!r}: use {usage}") from None
    if k < 0:
        raise GatewayError(f"prompt variant {spec!r}: K must be 0 or more")
    return k


def _add_part(variant: PromptVariant, part: str, train_path: Path | None) -> None:
    kind, _, arg = part.partition(":")
    if kind == "none":
        return
    if kind not in PARTS:
        raise GatewayError(f"unknown prompt variant {part!r}; use none, system:TEXT, system:@FILE, "
                           "fewshot:K, schema or retrieve:K, joined with + (fewshot:3+retrieve:4)")
    if kind in variant.parts:
        raise GatewayError(f"prompt variant {variant.spec!r} uses {kind} twice")
    variant.parts = [p for p in PARTS if p in (*variant.parts, kind)]
    if kind == "system":
        if not arg:
            raise GatewayError("prompt variant system:TEXT needs a text (or system:@FILE)")
        text = arg
        if arg.startswith("@"):
            file = Path(arg[1:]).expanduser()
            try:
                text = file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise GatewayError(f"prompt variant {part!r}: cannot read {file}: {exc}") from exc
        variant.system = text
    elif kind == "schema":
        if arg:
            raise GatewayError("prompt variant 'schema' takes no argument: it sends the eval "
                               "set's `schema:` as a json_schema response_format")
        variant.schema = True
    elif kind == "retrieve":
        k = _count(part, arg, "retrieve:K")
        if k < 1:
            raise GatewayError(f"prompt variant {part!r}: K must be 1 or more")
        variant.retrieve_k = k
    else:
        k_text, _, seed_text = arg.partition(":")
        k = _count(part, k_text, "fewshot:K or fewshot:K:SEED")
        seed = _count(part, seed_text, "fewshot:K or fewshot:K:SEED") if seed_text else DEFAULT_SEED
        if k and train_path is None:
            raise GatewayError(f"prompt variant {part!r} needs an eval set with a 'train' file")
        pool = _training_pairs(train_path) if k and train_path else []
        if k > len(pool):
            raise GatewayError(
                f"prompt variant {part!r}: {train_path} has only {len(pool)} usable examples"
            )
        variant.k, variant.seed = k, seed
        variant.shots = random.Random(seed).sample(pool, k) if k else []


def parse_variant(spec: str | None, train_path: Path | None = None) -> PromptVariant:
    """Parse a variant spec (parts joined with +); few-shot examples are drawn from `train_path`."""
    if spec is None or spec.strip() in ("", "none"):
        return PromptVariant(spec=None)
    variant = PromptVariant(spec=spec)
    for part in _split(spec):
        _add_part(variant, part, train_path)
    return variant
