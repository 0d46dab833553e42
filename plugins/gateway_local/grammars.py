"""Structured outputs on the local backend: `response_format` as a token mask, with llguidance.

llguidance (the Rust grammar engine vLLM also offers as its `guidance`
backend) compiles a JSON schema into a grammar once; each decode step asks a
per-request matcher which tokens may come next and masks the rest. It has no
dependencies (xgrammar, vLLM's default, pulls in triton, about 1 GB per
environment). JSON is emitted compact, without whitespace between tokens, so a
small model cannot pad it until max_tokens runs out.

Compiled grammars are cached by the schema's hash; a schema over the size or
the compile limits, or one that does not compile, is refused with 400 naming
`response_format`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

import torch

from gateway.contracts import UnsupportedParameter

# The largest schema taken, as compact JSON, and how many compiled grammars are kept.
MAX_SCHEMA_BYTES = 64 * 1024
CACHED_GRAMMARS = 256
# Bounds on compiling a grammar and on each step's mask (llguidance's fuel units).
INITIAL_LEXER_FUEL = 1_000_000
STEP_LEXER_FUEL = 200_000
MAX_GRAMMAR_SIZE = 200_000


def _limits() -> Any:
    import llguidance

    return llguidance.LLParserLimits(initial_lexer_fuel=INITIAL_LEXER_FUEL,
                                     step_lexer_fuel=STEP_LEXER_FUEL,
                                     max_grammar_size=MAX_GRAMMAR_SIZE)


def _refuse(message: str) -> UnsupportedParameter:
    return UnsupportedParameter("response_format", message)


def schema_of(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema a `response_format` asks for; None for plain text."""
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise _refuse("json_schema needs an object with `name` and a `schema` object")
        schema = spec.get("schema") or {}
        return dict(schema)
    raise _refuse(f"type {kind!r} is not supported; use text, json_object or json_schema")


class Grammars:
    """Compiles response formats for one tokenizer and hands out matchers (thread-safe)."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_ids: list[int]) -> None:
        self._hf_tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.eos_ids = eos_ids
        self._tokenizer: Any = None
        self._compiled: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def _ll_tokenizer(self) -> Any:
        import llguidance.hf

        if self._tokenizer is None:  # about a second: built on the first constrained request
            self._tokenizer = llguidance.hf.from_tokenizer(
                self._hf_tokenizer, n_vocab=self.vocab_size, eos_token=self.eos_ids or None)
        return self._tokenizer

    def compile(self, response_format: dict[str, Any] | None) -> str | None:
        """The grammar for `response_format` (cached), or None when it asks for plain text."""
        import llguidance

        schema = schema_of(response_format)
        if schema is None:
            return None
        text = json.dumps(schema, sort_keys=True, separators=(",", ":"))
        if len(text.encode()) > MAX_SCHEMA_BYTES:
            raise _refuse(f"the schema has {len(text.encode())} bytes; the limit is {MAX_SCHEMA_BYTES}")
        key = hashlib.sha256(text.encode()).hexdigest()
        with self._lock:
            if key in self._compiled:
                self._compiled.move_to_end(key)
                return self._compiled[key]
            tokenizer = self._ll_tokenizer()
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                text, overrides={"whitespace_flexible": False})
        except ValueError as exc:
            raise _refuse(f"the schema is not valid: {exc}") from None
        problem = llguidance.LLMatcher.validate_grammar(
            grammar, tokenizer, limits=_limits())
        if problem and not problem.startswith("WARNING"):
            raise _refuse(f"the schema cannot be used: {problem}")
        with self._lock:
            self._compiled[key] = grammar
            while len(self._compiled) > CACHED_GRAMMARS:
                self._compiled.popitem(last=False)
        return grammar

    def matcher(self, grammar: str) -> Any:
        import llguidance

        return llguidance.LLMatcher(self._ll_tokenizer(), grammar, log_level=0, limits=_limits())


def mask_logits(logits: torch.Tensor, rows: list[tuple[int, Any]]) -> torch.Tensor:
    """`logits` (float32) with the tokens each row's matcher forbids set to -inf.

    `rows` pairs a row index with its matcher; other rows are left alone."""
    import llguidance.torch

    if not rows:
        return logits
    vocab = logits.shape[-1]
    bitmask = llguidance.torch.allocate_token_bitmask(len(rows), vocab)
    for slot, (_, matcher) in enumerate(rows):
        llguidance.torch.fill_next_token_bitmask(matcher, bitmask, slot)
    bits = torch.arange(32, dtype=torch.int32)
    allowed = ((bitmask.unsqueeze(-1) >> bits) & 1).bool().view(len(rows), -1)[:, :vocab]
    index = torch.tensor([row for row, _ in rows], dtype=torch.long)
    logits[index] = logits[index].masked_fill(~allowed.to(logits.device), float("-inf"))
    return logits
