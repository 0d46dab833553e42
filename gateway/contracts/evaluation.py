"""What evaluators (scorers) receive and return, their base and their option reader."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from gateway.errors import GatewayError


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


class ChatFunction(Protocol):
    """The `chat=` an evaluator with `needs_chat = True` is built with.

    `chat(model, messages, **params)` calls `model` (None: the model under
    evaluation) and returns the reply text; params are GenerationParams fields.
    It blocks, so the runner scores such evaluators in a worker thread.
    """

    def __call__(self, model: str | None, messages: list[dict[str, Any]], **params: Any) -> str: ...


@runtime_checkable
class Evaluator(Protocol):
    """Scores outputs. Registered as a class; built with its options as kwargs.

    A per-sample evaluator implements `score`. A corpus-level one sets
    `corpus_level = True` and implements `score_corpus`, returning one Score
    for the whole run (`score` may raise NotImplementedError). `needs_chat`
    adds a `chat=` ChatFunction to the kwargs, `needs_evalset_dir` an
    `evalset_dir=` (for paths relative to the eval set), and the optional
    `needs_evalset_schema` an `evalset_schema=` (the set's `schema:`, or None).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    corpus_level: ClassVar[bool]
    needs_chat: ClassVar[bool]
    needs_evalset_dir: ClassVar[bool]

    def score(self, sample: Sample) -> Score: ...

    def score_corpus(self, samples: list[Sample]) -> Score: ...


def mean_score(scores: Iterator[Score] | list[Score]) -> Score:
    """Corpus summary of a per-sample evaluator: the mean value and pass rate."""
    items = list(scores)
    if not items:
        return Score(value=0.0, passed=None, detail="no samples")
    mean = sum(s.value for s in items) / len(items)
    judged = [s.passed for s in items if s.passed is not None]
    detail = f"mean of {len(items)} samples"
    if judged:
        detail += f"; {sum(judged)}/{len(judged)} passed"
    return Score(value=mean, passed=all(judged) if judged else None, detail=detail)


class PerSampleEvaluator:
    """Defaults for an Evaluator: per-sample, and the corpus score is the mean of the samples'."""

    name: ClassVar[str]
    description: ClassVar[str]
    corpus_level: ClassVar[bool] = False
    needs_chat: ClassVar[bool] = False
    needs_evalset_dir: ClassVar[bool] = False
    needs_evalset_schema: ClassVar[bool] = False

    def score(self, sample: Sample) -> Score:
        raise NotImplementedError

    def score_corpus(self, samples: list[Sample]) -> Score:
        return mean_score([self.score(s) for s in samples])


class Options:
    """Reads an evaluator's typed options out of its kwargs; `done()` rejects the rest,
    so a wrong type or an unknown option fails when the eval set loads, naming both."""

    def __init__(self, evaluator: str, options: dict[str, Any]) -> None:
        self.evaluator = evaluator
        self._options = dict(options)
        self._known: list[str] = []

    def error(self, option: str, problem: str) -> GatewayError:
        return GatewayError(f"evaluator {self.evaluator!r}: option {option!r} {problem}")

    def _take(self, name: str) -> Any:
        self._known.append(name)
        return self._options.pop(name, None)

    def flag(self, name: str, default: bool) -> bool:
        value = self._take(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {value!r}")
        return value

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self._take(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {value!r}")
        return value

    def choice(self, name: str, choices: Sequence[str], default: str) -> str:
        value = self.text(name, default) or default
        if value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def integer(self, name: str, default: int | None, minimum: int | None = None) -> int | None:
        value = self._take(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(name, f"must be at least {minimum}, got {value}")
        return value

    def fraction(self, name: str, default: float | None) -> float | None:
        """A number in [0, 1], such as a pass threshold."""
        value = self._take(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(name, f"must be a number, got {value!r}")
        if not 0.0 <= float(value) <= 1.0:
            raise self.error(name, f"must lie between 0 and 1, got {value}")
        return float(value)

    def text_list(self, name: str) -> list[str] | None:
        value = self._take(name)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
            raise self.error(name, f"must be a non-empty list of strings, got {value!r}")
        return list(value)

    def raw(self, name: str) -> Any:
        return self._take(name)

    def done(self) -> None:
        """Fail on options nobody read."""
        if self._options:
            unknown = ", ".join(repr(k) for k in sorted(self._options))
            known = ", ".join(self._known) or "none"
            raise GatewayError(
                f"evaluator {self.evaluator!r}: unknown option {unknown} (known options: {known})"
            )
