"""String evaluators: exact, includes and regex."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from gateway.contracts import GatewayError, Options, PerSampleEvaluator, Sample, Score

from .options import collapse_whitespace, ideals, strip_punctuation


class Exact(PerSampleEvaluator):
    """Passes when the output equals one of the ideals after normalisation.

    `normalize: true` turns on every step below; each step can also be set on
    its own. By default only surrounding whitespace is stripped.
    """

    name: ClassVar[str] = "exact"
    description: ClassVar[str] = "output equals an ideal answer (after optional normalisation)"

    def __init__(self, **options: Any) -> None:
        opts = Options(self.name, options)
        everything = opts.flag("normalize", False)
        self.lowercase = opts.flag("lowercase", everything)
        self.strip = opts.flag("strip", True)
        self.collapse_whitespace = opts.flag("collapse_whitespace", everything)
        self.strip_punctuation = opts.flag("strip_punctuation", everything)
        opts.done()

    def normalise(self, text: str) -> str:
        if self.strip_punctuation:
            text = strip_punctuation(text)
        if self.lowercase:
            text = text.lower()
        if self.collapse_whitespace:
            text = collapse_whitespace(text)
        if self.strip or self.collapse_whitespace:
            text = text.strip()
        return text

    def score(self, sample: Sample) -> Score:
        output = self.normalise(sample.output)
        for ideal in ideals(sample, self.name):
            if output == self.normalise(ideal):
                return Score(value=1.0, passed=True, detail=f"matches {ideal!r}")
        return Score(value=0.0, passed=False, detail=f"{output[:200]!r} matches no ideal")


class Includes(PerSampleEvaluator):
    """Passes when the output contains an ideal (`all: true`: every ideal).

    With `all`, the value is the fraction of ideals found. Matching ignores
    case unless `case_sensitive: true`.
    """

    name: ClassVar[str] = "includes"
    description: ClassVar[str] = "output contains an ideal answer (or all of them)"

    def __init__(self, **options: Any) -> None:
        opts = Options(self.name, options)
        self.all = opts.flag("all", False)
        self.case_sensitive = opts.flag("case_sensitive", False)
        opts.done()

    def score(self, sample: Sample) -> Score:
        wanted = ideals(sample, self.name)
        output = sample.output if self.case_sensitive else sample.output.casefold()
        found = [i for i in wanted if (i if self.case_sensitive else i.casefold()) in output]
        missing = [i for i in wanted if i not in found]
        if self.all:
            value = len(found) / len(wanted)
            detail = f"found {len(found)}/{len(wanted)}"
            if missing:
                detail += f"; missing {missing!r}"
            return Score(value=value, passed=not missing, detail=detail)
        if found:
            return Score(value=1.0, passed=True, detail=f"contains {found[0]!r}")
        return Score(value=0.0, passed=False, detail=f"contains none of {wanted!r}")


_FLAG_LETTERS = {
    "i": re.IGNORECASE,
    "m": re.MULTILINE,
    "s": re.DOTALL,
    "x": re.VERBOSE,
    "a": re.ASCII,
}
_FLAG_NAMES = {flag.name.lower(): flag for flag in _FLAG_LETTERS.values() if flag.name}


def parse_flags(opts: Options, value: Any) -> re.RegexFlag:
    """Flags as letters ("im"), names ("IGNORECASE|MULTILINE") or a list of either."""
    if value is None:
        return re.RegexFlag(0)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise opts.error("flags", f"must be letters such as 'im' or a list of names, got {value!r}")
    flags = re.RegexFlag(0)
    for piece in (p for item in value for p in re.split(r"[\s,|]+", item) if p):
        key = piece.lower()
        if key in _FLAG_NAMES:
            flags |= _FLAG_NAMES[key]
        elif all(letter in _FLAG_LETTERS for letter in key):
            for letter in key:
                flags |= _FLAG_LETTERS[letter]
        else:
            known = ", ".join([*_FLAG_LETTERS, *(n.upper() for n in _FLAG_NAMES)])
            raise opts.error("flags", f"has unknown flag {piece!r} (known: {known})")
    return flags


class Regex(PerSampleEvaluator):
    """Passes when `pattern` (else each ideal, taken as a pattern) matches the output.

    `fullmatch: true` requires the whole output to match; otherwise a match
    anywhere counts (re.search).
    """

    name: ClassVar[str] = "regex"
    description: ClassVar[str] = (
        "output matches a regular expression (option pattern, or the ideal)"
    )

    def __init__(self, **options: Any) -> None:
        opts = Options(self.name, options)
        pattern = opts.text("pattern")
        self.flags = parse_flags(opts, opts.raw("flags"))
        self.fullmatch = opts.flag("fullmatch", False)
        opts.done()
        self.pattern: re.Pattern[str] | None = None
        if pattern is not None:
            try:
                self.pattern = re.compile(pattern, self.flags)
            except re.error as exc:
                raise opts.error("pattern", f"is not a valid regular expression: {exc}") from exc

    def _patterns(self, sample: Sample) -> list[re.Pattern[str]]:
        if self.pattern is not None:
            return [self.pattern]
        compiled = []
        for ideal in ideals(sample, self.name):
            try:
                compiled.append(re.compile(ideal, self.flags))
            except re.error as exc:
                raise GatewayError(
                    f"evaluator 'regex': the ideal of sample {sample.id!r} is not a valid "
                    f"regular expression ({exc}); set the option 'pattern' or fix the ideal"
                ) from exc
        return compiled

    def score(self, sample: Sample) -> Score:
        patterns = self._patterns(sample)
        for pattern in patterns:
            match = (
                pattern.fullmatch(sample.output)
                if self.fullmatch
                else pattern.search(sample.output)
            )
            if match is not None:
                return Score(
                    value=1.0,
                    passed=True,
                    detail=f"{pattern.pattern!r} matched {match.group(0)[:200]!r}",
                )
        shown = ", ".join(repr(p.pattern) for p in patterns)
        return Score(value=0.0, passed=False, detail=f"no match for {shown}")
