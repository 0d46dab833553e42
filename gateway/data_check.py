"""`gateway data check`: training data that would make a model consistently wrong.

Format validation (gateway.data) says whether a file can be trained on; this says
whether it should be. Every finding carries the 1-based line numbers involved.

The measures, on normalised text (lower case, punctuation dropped, runs of whitespace as
one space):
- **input**: every message before the example's last assistant message; the
  **answer**: that last assistant message. System messages are left out of the
  comparisons below except conflicts: a system prompt shared by every example (and
  by the eval set) would make everything look alike.
- **exact duplicate**: the same normalised conversation (input and answer).
- **near duplicate**: Jaccard similarity of the character 5-gram sets of two
  conversations at or above `near` (default 0.8); character n-grams keep short
  texts comparable (one changed word moves a ten-word text only a little). Candidate
  pairs are the ones that share a 5-gram, found through an index, so large files are
  not compared pair by pair.
- **conflict**: the same normalised input with different normalised answers.
- **label balance**: when the answers look like labels (at most 20 distinct,
  each at most 5 words, at least 2 of them), their counts; a label with fewer than
  a tenth of the commonest one's examples is a warning.
- **contamination** (with an eval set): a training input equal to an eval row's
  input (exact), or near it by the same Jaccard rule.
- **scorer failures** (with an eval set): each answer scored by the set's
  per-sample scorers as if it were the model's answer to its own example (the
  ideal is the answer itself), so reference-free checks (a schema, forbidden
  phrases) catch answers that teach what the eval punishes.

Conflicts and contamination are errors (`gateway data check` exits 1); the rest are warnings.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.data import iter_examples

if TYPE_CHECKING:
    from gateway.evaluation.evalset import EvalSet

NEAR = 0.8
SHINGLE = 5
# A 5-gram in more examples than this says nothing about which pairs are alike.
COMMON_SHINGLE = 50
MAX_LABELS, MAX_LABEL_WORDS, RARE_LABEL = 20, 5, 0.1


@dataclass
class Finding:
    kind: str  # duplicate | near-duplicate | conflict | label-balance | contamination | scorer
    lines: list[int]
    message: str
    error: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "lines": self.lines, "message": self.message, "error": self.error}


@dataclass
class CheckReport:
    path: Path
    examples: int = 0
    findings: list[Finding] = field(default_factory=list)
    labels: dict[str, int] | None = None

    @property
    def ok(self) -> bool:
        return not any(f.error for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "examples": self.examples, "ok": self.ok,
                "labels": self.labels, "findings": [f.as_dict() for f in self.findings]}


@dataclass
class _Example:
    line: int
    input: str  # every message before the answer, system prompts included
    turns: str  # the same without system messages
    answer: str
    messages: list[dict[str, Any]]  # the input's messages
    raw_answer: str


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text)).strip().lower()


def _text(messages: Iterable[dict[str, Any]], system: bool = True) -> str:
    return normalise("\n".join(f"{m.get('role')}: {m.get('content') or ''}" for m in messages
                                if system or m.get("role") not in ("system", "developer")))


def _split(line: int, messages: list[dict[str, Any]]) -> _Example | None:
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if last is None:
        return None
    answer = str(messages[last].get("content") or "")
    return _Example(line, _text(messages[:last]), _text(messages[:last], system=False),
                    normalise(answer), messages[:last], answer)


def shingles(text: str) -> frozenset[str]:
    if len(text) < SHINGLE:
        return frozenset({text})
    return frozenset(text[i:i + SHINGLE] for i in range(len(text) - SHINGLE + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class NearIndex:
    """Texts indexed by their 5-grams, to find the ones at least `near` alike."""

    def __init__(self, near: float) -> None:
        self.near = near
        self.sets: list[frozenset[str]] = []
        self.keys: list[int] = []
        self.postings: dict[str, list[int]] = defaultdict(list)

    def add(self, key: int, text: str) -> None:
        index = len(self.sets)
        self.sets.append(shingles(text))
        self.keys.append(key)
        for gram in self.sets[index]:
            self.postings[gram].append(index)

    def similar(self, text: str, below: int | None = None) -> list[tuple[int, float]]:
        """(key, similarity) of the indexed texts alike `text`; with `below`, only those
        added before position `below`."""
        grams = shingles(text)
        candidates: set[int] = set()
        for gram in grams:
            posting = self.postings.get(gram, [])
            if len(posting) <= COMMON_SHINGLE:
                candidates.update(i for i in posting if below is None or i < below)
        found = [(self.keys[i], jaccard(grams, self.sets[i])) for i in sorted(candidates)]
        return [(key, sim) for key, sim in found if sim >= self.near]


def check_file(path: Path, evalset: EvalSet | None = None, near: float = NEAR) -> CheckReport:
    report = CheckReport(path=Path(path))
    examples = []
    for line, example in iter_examples(path):
        report.examples += 1
        item = _split(line, list(example.get("messages") or []))
        if item is not None:
            examples.append(item)
    report.findings += _duplicates(examples, near)
    report.findings += _conflicts(examples)
    report.labels, balance = _label_balance(examples)
    report.findings += balance
    if evalset is not None:
        report.findings += _contamination(examples, evalset, near)
        report.findings += _scorer_failures(examples, evalset)
    report.findings.sort(key=lambda f: (not f.error, f.lines[0] if f.lines else 0))
    return report


def _duplicates(examples: list[_Example], near: float) -> list[Finding]:
    findings: list[Finding] = []
    first: dict[str, int] = {}
    index = NearIndex(near)
    for position, item in enumerate(examples):
        whole = f"{item.turns}\n{item.answer}"
        if whole in first:
            findings.append(Finding("duplicate", [first[whole], item.line],
                                    f"lines {first[whole]} and {item.line} are the same example"))
        else:
            first[whole] = item.line
            alike = index.similar(whole, below=position)
            if alike and not any(other.turns == item.turns for other in examples[:position]):
                line, similarity = max(alike, key=lambda pair: pair[1])
                findings.append(Finding("near-duplicate", [line, item.line],
                                        f"lines {line} and {item.line} are {similarity:.0%} alike "
                                        "(character 5-grams)"))
        index.add(item.line, whole)
    return findings


def _conflicts(examples: list[_Example]) -> list[Finding]:
    by_input: dict[str, list[_Example]] = defaultdict(list)
    for item in examples:
        by_input[item.input].append(item)
    findings = []
    for group in by_input.values():
        answers = {item.answer for item in group}
        if len(answers) > 1:
            lines = [item.line for item in group]
            findings.append(Finding("conflict", lines, f"lines {', '.join(map(str, lines))} have the "
                                    f"same input and {len(answers)} different answers", error=True))
    return findings


def _label_balance(examples: list[_Example]) -> tuple[dict[str, int] | None, list[Finding]]:
    counts = Counter(item.answer for item in examples)
    if not 2 <= len(counts) <= MAX_LABELS or any(len(a.split()) > MAX_LABEL_WORDS for a in counts):
        return None, []
    labels = dict(counts.most_common())
    top = max(counts.values())
    findings = []
    for label, count in labels.items():
        if count < RARE_LABEL * top:
            lines = [item.line for item in examples if item.answer == label]
            findings.append(Finding("label-balance", lines[:20], f"label {label!r} has {count} "
                                    f"examples, against {top} for the commonest"))
    return labels, findings


def _contamination(examples: list[_Example], evalset: EvalSet, near: float) -> list[Finding]:
    rows = NearIndex(near)
    exact: dict[str, str] = {}
    for position, row in enumerate(evalset.rows):
        text = _text(row.messages, system=False)
        exact.setdefault(text, row.id)
        rows.add(position, text)
    findings = []
    for item in examples:
        if item.turns in exact:
            findings.append(Finding("contamination", [item.line], f"line {item.line}'s input is eval "
                                    f"row {exact[item.turns]!r} of {evalset.name}", error=True))
            continue
        alike = rows.similar(item.turns)
        if alike:
            position, similarity = max(alike, key=lambda pair: pair[1])
            row = evalset.rows[position]
            findings.append(Finding("contamination", [item.line], f"line {item.line}'s input is "
                                    f"{similarity:.0%} alike eval row {row.id!r} of {evalset.name}",
                                    error=True))
    return findings


def _scorer_failures(examples: list[_Example], evalset: EvalSet) -> list[Finding]:
    from gateway.contracts import Sample
    from gateway.evaluation.runner import build_scorers

    scorers = [s for s in build_scorers(evalset, chat=None) if not s.needs_chat and not s.corpus_level]
    findings = []
    for item in examples:
        sample = Sample(id=f"line {item.line}", messages=item.messages, ideal=item.raw_answer,
                        output=item.raw_answer)
        for scorer in scorers:
            score = scorer.evaluator.score(sample)
            if score.passed is False:
                detail = f": {score.detail}" if score.detail else ""
                findings.append(Finding("scorer", [item.line], f"line {item.line}'s answer fails "
                                        f"{evalset.name}'s scorer {scorer.spec.id}{detail}"))
    return findings
