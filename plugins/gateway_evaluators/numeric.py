"""The numeric evaluator: the amount in the answer against the expected one."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from gateway.contracts import Options, PerSampleEvaluator, Sample, Score

from .options import ideals_or_none

# A number: an optional sign, digits (with thousands commas only in groups of
# three: "1,250"), optional decimals. It may not follow a word character or a
# dot, so "A4" and the "1" of "version 4.2.1" are no numbers. What surrounds
# it (currency symbols, "%", units) is ignored: "$1,250.00" -> 1250.0,
# "30 days" -> 30, "2.5%" -> 2.5. Ranges read as two numbers: "3-5" -> 3, 5.
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")


def extract_numbers(text: str) -> list[float]:
    """Every number in `text`, in order, by the NUMBER rule."""
    return [float(m.group(0).replace(",", "")) for m in NUMBER.finditer(text)]


def _show(number: float) -> str:
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def _non_negative(opts: Options, name: str) -> float:
    value = opts.raw(name)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise opts.error(name, f"must be a number of at least 0, got {value!r}")
    return float(value)


def expected_number(sample: Sample) -> float | None:
    """`metadata.answer_value` when present, else the first number in the ideal(s)."""
    value = sample.metadata.get("answer_value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):  # "£4.95" in hand-written data
        found = extract_numbers(value)
        return found[0] if found else None
    if value is not None:
        return None
    for ideal in ideals_or_none(sample):
        found = extract_numbers(ideal)
        if found:
            return found[0]
    return None


class Numeric(PerSampleEvaluator):
    """Passes when any number in the output is close enough to the expected one.

    The expected number is `metadata.answer_value`, else the first number in
    the ideal. Numbers are read by the NUMBER pattern of this module (sign,
    thousands commas, decimals; currency symbols, "%" and units ignored).
    Options: `tolerance` (absolute, default 0) and `relative` (a fraction of
    |expected|, default 0); the allowed difference is the larger of the two.
    The value is 1 or 0. A row with no expected number scores 0 and says so.
    """

    name: ClassVar[str] = "numeric"
    description: ClassVar[str] = (
        "a number in the output equals the expected one (within a tolerance)"
    )

    def __init__(self, **options: Any) -> None:
        opts = Options(self.name, options)
        self.tolerance = _non_negative(opts, "tolerance")
        self.relative = opts.fraction("relative", 0.0) or 0.0
        opts.done()

    def score(self, sample: Sample) -> Score:
        expected = expected_number(sample)
        if expected is None:
            return Score(
                value=0.0,
                passed=False,
                detail="no expected number: set metadata.answer_value or put a number in the ideal",
            )
        allowed = max(self.tolerance, self.relative * abs(expected))
        # A hair of slack so that 0.1 + 0.2 style float rounding never decides a pass.
        slack = 1e-9 * max(1.0, abs(expected))
        found = extract_numbers(sample.output)
        shown = ", ".join(_show(n) for n in found) or "no number"
        detail = f"expected {_show(expected)}"
        if allowed:
            detail += f" (±{_show(allowed)})"
        detail += f"; found {shown}"
        passed = any(abs(n - expected) <= allowed + slack for n in found)
        return Score(value=float(passed), passed=passed, detail=detail)
