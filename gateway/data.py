"""Validation of OpenAI chat fine-tuning files (JSONL), with size statistics.

Each non-blank line is one example: `{"messages": [{"role": ..., "content": ...}, ...]}`.
Every problem is collected with its 1-based line number; nothing stops at the
first error. Token counts come from a TokenCounter that a plugin provides
(the core never loads a tokenizer itself); without one, sizes are in characters.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.contracts import TokenCounter
from gateway.data_tools import calls_problems, tools_problems
from gateway.errors import GatewayError, ValidationError

ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id"}

Problem = tuple[int | None, str]


@dataclass
class DataReport:
    """What `validate_chat_file` found. `ok` means no errors (warnings allowed)."""

    path: Path
    examples: int = 0
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    # Token statistics (total, min, mean, p50, p95, max); None without a tokenizer.
    token_stats: dict[str, float] | None = None
    # The same statistics in characters of message content, always computed.
    char_stats: dict[str, float] | None = None
    # Lines whose example is longer than the context (only with a tokenizer).
    too_long: list[int] = field(default_factory=list)
    max_tokens: int | None = None
    sha256: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "examples": self.examples,
            "ok": self.ok,
            "errors": [{"line": line, "message": msg} for line, msg in self.errors],
            "warnings": [{"line": line, "message": msg} for line, msg in self.warnings],
            "token_stats": self.token_stats,
            "char_stats": self.char_stats,
            "max_tokens": self.max_tokens,
            "too_long": self.too_long,
        }


def _open_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    path = Path(path)
    if not path.is_file():
        raise GatewayError(f"training file not found: {path}")
    with open(path, "rb") as fh:
        yield from enumerate(fh, start=1)


def _parse_line(raw: bytes) -> tuple[Any, str | None]:
    """The line's JSON value, or an error message."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
    try:
        return json.loads(text.rstrip("\r\n")), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"


def iter_examples(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, example) for each non-blank line. Raises ValidationError on a bad line."""
    for number, raw in _open_lines(path):
        if not raw.strip():
            continue
        value, error = _parse_line(raw)
        if error is None and not isinstance(value, dict):
            error = f"expected a JSON object, got {type(value).__name__}"
        if error is not None:
            message = f"{path}: line {number}: {error}"
            raise ValidationError(message, [(number, error)])
        yield number, value


def _message_errors(index: int, message: Any) -> list[str]:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        return [f"{where}: expected an object, got {type(message).__name__}"]
    errors: list[str] = []
    role = message.get("role")
    if role == "function" or "function_call" in message:
        errors.append(f"{where}: function messages and 'function_call' are deprecated; use "
                      "'tool_calls' and role 'tool'")
    elif role not in ROLES:
        errors.append(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
    if "tool_calls" in message and role != "assistant":
        errors.append(f"{where}: only assistant messages carry 'tool_calls'")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        errors.append(f"{where}: a tool message needs the 'tool_call_id' it answers")
    content = message.get("content")
    # An assistant message that calls tools may have no content.
    calls_only = role == "assistant" and "tool_calls" in message and content is None
    if not isinstance(content, str) and not calls_only and "function_call" not in message:
        shown = "nothing" if "content" not in message else type(content).__name__
        errors.append(f"{where}: content must be a string, got {shown}")
    if "weight" in message:
        weight = message["weight"]
        if role != "assistant":
            errors.append(f"{where}: weight is only allowed on assistant messages")
        elif isinstance(weight, bool) or weight not in (0, 1):
            errors.append(f"{where}: weight must be 0 or 1, got {json.dumps(weight)}")
    return errors


def example_problems(example: Any) -> tuple[list[str], list[str]]:
    """Errors and warnings of one parsed example (without line numbers)."""
    if not isinstance(example, dict):
        return [f"expected a JSON object, got {type(example).__name__}"], []
    warnings: list[str] = []
    messages = example.get("messages")
    if "messages" not in example:
        return ["missing the 'messages' list"], []
    if not isinstance(messages, list):
        return [f"'messages' must be a list, got {type(messages).__name__}"], []
    if not messages:
        return ["'messages' is empty"], []
    errors, names = tools_problems(example)
    errors_in_tools = bool(errors)
    parallel = example.get("parallel_tool_calls", True) is not False
    calls: set[str] = set()
    for index, message in enumerate(messages):
        errors.extend(_message_errors(index, message))
        if not isinstance(message, dict):
            continue
        extra = sorted(set(message) - MESSAGE_KEYS - {"function_call"})
        if extra:
            warnings.append(f"messages[{index}]: unknown keys ignored: {', '.join(extra)}")
        if message.get("role") == "assistant" and "tool_calls" in message:
            call_errors, ids = calls_problems(f"messages[{index}]", message["tool_calls"],
                                              None if errors_in_tools else names,
                                              "tools" in example, parallel)
            errors.extend(call_errors)
            calls.update(ids)
        elif message.get("role") == "tool" and isinstance(message.get("tool_call_id"), str) \
                and message["tool_call_id"] not in calls:
            errors.append(f"messages[{index}]: tool_call_id {message['tool_call_id']!r} answers no "
                          "earlier tool call")
    assistants = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    if not assistants:
        errors.append("no assistant message: an example needs at least one to learn from")
    elif all(m.get("weight", 1) == 0 for m in assistants):
        warnings.append("every assistant message has weight 0: the example teaches nothing")
    return errors, warnings


def _percentile(ordered: Sequence[int], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def summarize(values: Sequence[int]) -> dict[str, float] | None:
    """total, min, mean, p50, p95 and max of a list of sizes (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return {
        "total": float(sum(ordered)),
        "min": float(ordered[0]),
        "mean": sum(ordered) / len(ordered),
        "p50": _percentile(ordered, 50),
        "p95": _percentile(ordered, 95),
        "max": float(ordered[-1]),
    }


def validate_chat_file(
    path: Path,
    tokenizer: TokenCounter | None = None,
    max_tokens: int | None = None,
    min_examples: int = 10,
) -> DataReport:
    """Check a chat fine-tuning JSONL file against OpenAI's rules and measure it.

    Every problem lands in the report with its line number. With a tokenizer,
    examples longer than `max_tokens` (default: the tokenizer's context length)
    are listed in `too_long` and as warnings: trainers truncate them.
    """
    report = DataReport(path=Path(path))
    digest = hashlib.sha256()
    seen: dict[str, int] = {}
    valid: list[tuple[int, dict[str, Any]]] = []
    for number, raw in _open_lines(path):
        digest.update(raw)
        if not raw.strip():
            continue
        report.examples += 1
        value, error = _parse_line(raw)
        if error is not None:
            report.errors.append((number, error))
            continue
        errors, warnings = example_problems(value)
        report.errors.extend((number, e) for e in errors)
        report.warnings.extend((number, w) for w in warnings)
        if errors:
            continue
        key = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
        if key in seen:
            report.warnings.append((number, f"duplicate of line {seen[key]}"))
        else:
            seen[key] = number
        valid.append((number, value))
    report.sha256 = digest.hexdigest()

    if report.examples == 0:
        report.errors.append((None, "the file has no examples"))
    elif report.examples < min_examples:
        report.errors.append(
            (None, f"the file has {report.examples} examples; at least {min_examples} are required")
        )

    report.char_stats = summarize([sum(len(m.get("content") or "") for m in example["messages"])
                                   for _, example in valid])
    if tokenizer is not None:
        report.max_tokens = max_tokens or tokenizer.context_length
        counts: list[int] = []
        for number, example in valid:
            tools = example.get("tools")
            # Counters written before tools take messages only.
            tokens = tokenizer.count(example["messages"], tools) if tools else \
                tokenizer.count(example["messages"])
            counts.append(tokens)
            if report.max_tokens is not None and tokens > report.max_tokens:
                report.too_long.append(number)
                report.warnings.append(
                    (number, f"{tokens} tokens, longer than the limit of {report.max_tokens}; "
                             "training truncates it")
                )
        report.token_stats = summarize(counts)
    report.warnings.sort(key=lambda p: (p[0] or 0))
    report.errors.sort(key=lambda p: (p[0] is None, p[0] or 0))
    return report
