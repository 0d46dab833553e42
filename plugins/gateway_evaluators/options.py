"""Option checking and text helpers shared by the built-in evaluators.

An eval set's scorer options arrive as constructor keyword arguments. Every
evaluator reads them through `Options`, so a wrong type or an unknown option
fails early with a message naming the evaluator and the option.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from gateway.contracts import Sample, Score
from gateway.errors import GatewayError


class Options:
    """Reads typed options out of a kwargs dict; `done()` rejects the rest."""

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
        value = self.text(name, default)
        assert value is not None
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


def ideals(sample: Sample, evaluator: str) -> list[str]:
    """The acceptable answers of a sample; an evaluator that needs one fails without it."""
    ideal = sample.ideal
    if ideal is None or ideal == [] or ideal == "":
        raise GatewayError(f"evaluator {evaluator!r}: sample {sample.id!r} has no ideal answer")
    if isinstance(ideal, str):
        return [ideal]
    return [str(i) for i in ideal]


def ideals_or_none(sample: Sample) -> list[str]:
    """The acceptable answers, or an empty list when the sample has none."""
    if sample.ideal is None:
        return []
    return [sample.ideal] if isinstance(sample.ideal, str) else [str(i) for i in sample.ideal]


_WHITESPACE = re.compile(r"\s+")
# ASCII punctuation plus the Unicode punctuation categories (curly quotes, dashes...).
_ASCII_PUNCT = str.maketrans("", "", string.punctuation)


def strip_punctuation(text: str) -> str:
    text = text.translate(_ASCII_PUNCT)
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))


def collapse_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", text)


def threshold_score(value: float, threshold: float | None, detail: str = "") -> Score:
    """A graded score; pass/fail only when the eval set sets a threshold."""
    passed = None if threshold is None else value >= threshold
    return Score(value=value, passed=passed, detail=detail)


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
    """Base of the per-sample evaluators: the corpus score is the mean of the samples'."""

    name: ClassVar[str]
    description: ClassVar[str]
    corpus_level: ClassVar[bool] = False

    def score(self, sample: Sample) -> Score:
        raise NotImplementedError

    def score_corpus(self, samples: list[Sample]) -> Score:
        return mean_score([self.score(s) for s in samples])
