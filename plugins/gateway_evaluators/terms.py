"""The terms evaluator: required wording present, forbidden wording absent."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from gateway.contracts import GatewayError, Options, PerSampleEvaluator, Sample, Score

_WORD = re.compile(r"\w")
_SPACES = re.compile(r"\s+")


def term_pattern(term: str, case_sensitive: bool = False) -> re.Pattern[str]:
    """The pattern that finds `term`, by the rule in the Terms docstring."""
    stripped = term.strip()
    body = r"\s+".join(re.escape(piece) for piece in _SPACES.split(stripped))
    # Only a word-character edge needs a boundary: "risk" must not match "risky",
    # but "Capital at risk." may be followed by anything.
    if _WORD.match(stripped[0]):
        body = r"(?<!\w)" + body
    if _WORD.match(stripped[-1]):
        body += r"(?!\w)"
    return re.compile(body, 0 if case_sensitive else re.IGNORECASE)


def _row_terms(sample: Sample, key: str) -> list[str]:
    """A row's own terms from metadata[key]: a string or a list of strings."""
    value = sample.metadata.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise GatewayError(
            f"evaluator 'terms': metadata.{key} of sample {sample.id!r} must be a list of "
            f"non-empty strings, got {value!r}"
        )
    return list(value)


def _merge(first: list[str], second: list[str], case_sensitive: bool) -> list[str]:
    """Both lists in order, each term once (so a term in the options and the row counts once)."""
    merged: dict[str, str] = {}
    for term in (*first, *second):
        key = " ".join(term.split())
        merged.setdefault(key if case_sensitive else key.casefold(), term)
    return list(merged.values())


def _quoted(terms: list[str]) -> str:
    return ", ".join(f'"{t}"' for t in terms)


class Terms(PerSampleEvaluator):
    """Checks mandated wording: each required term present, each forbidden one absent.

    Options: `required` and `forbidden` (lists of terms; at least one term in
    all) and `case_sensitive` (default false). A row's `metadata.required_terms`
    and `metadata.forbidden_terms` add to the options' lists.

    Matching rule: a term matches at word boundaries: an edge of the term that
    is a word character must not touch another word character in the output
    ("risk" does not match "risky"), while an edge that is punctuation needs
    no boundary ("Capital at risk." matches before anything). Any run of
    whitespace in the term matches any run of whitespace in the output. Case
    is ignored unless `case_sensitive: true`.

    The value is the share of checks satisfied (one per required term, one per
    forbidden term); the sample passes when all are.
    """

    name: ClassVar[str] = "terms"
    description: ClassVar[str] = "required terms present and forbidden phrases absent"

    def __init__(self, **options: Any) -> None:
        opts = Options(self.name, options)
        required = opts.text_list("required") or []
        forbidden = opts.text_list("forbidden") or []
        self.case_sensitive = opts.flag("case_sensitive", False)
        opts.done()
        for option, terms in (("required", required), ("forbidden", forbidden)):
            if any(not t.strip() for t in terms):
                raise opts.error(option, f"has an empty term: {terms!r}")
        if not required and not forbidden:
            raise opts.error("required", "or 'forbidden' must name at least one term")
        self.required = _merge(required, [], self.case_sensitive)
        self.forbidden = _merge(forbidden, [], self.case_sensitive)

    def _found(self, term: str, output: str) -> bool:
        return term_pattern(term, self.case_sensitive).search(output) is not None

    def score(self, sample: Sample) -> Score:
        required = _merge(self.required, _row_terms(sample, "required_terms"), self.case_sensitive)
        forbidden = _merge(
            self.forbidden, _row_terms(sample, "forbidden_terms"), self.case_sensitive
        )
        missing = [t for t in required if not self._found(t, sample.output)]
        present = [t for t in forbidden if self._found(t, sample.output)]
        checks = len(required) + len(forbidden)
        failed = len(missing) + len(present)
        parts = []
        if missing:
            parts.append(f"missing: {_quoted(missing)}")
        if present:
            parts.append(f"forbidden: {_quoted(present)}")
        detail = "; ".join(parts) or f"{checks}/{checks} checks satisfied"
        return Score(value=(checks - failed) / checks, passed=not failed, detail=detail)
