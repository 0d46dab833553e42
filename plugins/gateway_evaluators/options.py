"""Text and scoring helpers shared by the built-in evaluators.

Option checking (`Options`) and the per-sample base (`PerSampleEvaluator`)
are the SDK's, in gateway.contracts.
"""

from __future__ import annotations

import re
import string
import unicodedata

from gateway.contracts import GatewayError, Sample, Score


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
