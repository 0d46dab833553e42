"""policy-knowledge: answer questions about Corvell Outfitters' policies.

The set ships a corpus (corpus/*.md, one file per policy area, one section
per fact), so it measures retrieval as well as recall. Each policy area's
facts are split in half: the eval rows ask about one half, train.jsonl about
the other. A fine-tune therefore learns the answer format ("You have 12
days to return a worn item.") but cannot learn the eval facts; only the
corpus holds them.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

from .common import Candidate, Split, near_duplicate, normalize, number_words, trigrams
from .policy_facts import DOCUMENTS, UNITS, Document, Fact

NAME = "policy-knowledge"
PREFIX = "pk"

SYSTEM = (
    "You are the customer assistant for Corvell Outfitters, an outdoor clothing and gear "
    "retailer. Answer the customer's question in one short sentence."
)

EVAL_QUESTIONS_PER_FACT = 2  # of each fact's three; train rows use all three
SECTION_WORDS = (20, 80)  # each section is one short passage
HYPHENATED = ("days", "months", "years", "hours")


def markdown(doc: Document) -> str:
    """One policy file: the title and intro, then a section per fact."""
    parts = [f"# {doc.title}", doc.intro]
    for fact in doc.facts:
        parts += [f"## {fact.heading}", fact.text]
    return "\n\n".join(parts) + "\n"


def accepted(fact: Fact) -> list[str]:
    """The strings an answer may state the fact with (the includes scorer's ideal)."""
    if fact.unit == "£":
        return [f"£{fact.value}"]
    numbers = [fact.value]
    if fact.value.isdigit() and int(fact.value) < 100:
        numbers.append(number_words(int(fact.value)))
    # Stems: "12 day" accepts "12 days"; "12-day" covers "a 12-day window".
    forms = [f"{n}{suffix}" for n in numbers for suffix in UNITS[fact.unit]]
    if fact.unit in HYPHENATED:
        forms += [f"{n}-{UNITS[fact.unit][0].strip()}" for n in numbers]
    return forms


def answer_value(fact: Fact) -> int | float:
    number = float(fact.value)
    return int(number) if number.is_integer() else number


def passage_ids() -> dict[tuple[str, str], str]:
    """(document, heading) -> passage id, by the gateway's own chunking rule.

    The corpus is written to a scratch folder and loaded as the gateway loads
    it, so the ids can never drift from what the retriever sees.
    """
    from gateway.evaluation.corpus import load_corpus

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for doc in DOCUMENTS:
            (folder / f"{doc.name}.md").write_text(markdown(doc), encoding="utf-8")
        corpus = load_corpus(folder)
    ids: dict[tuple[str, str], str] = {}
    for doc in DOCUMENTS:
        for fact in doc.facts:
            prefix = f"## {fact.heading}\n"
            found = [
                p
                for p in corpus.passages
                if p.id.startswith(f"{doc.name}#") and p.text.startswith(prefix)
            ]
            assert len(found) == 1, (doc.name, fact.heading, [p.id for p in found])
            passage = found[0]
            forms = accepted(fact)
            assert any(f in passage.text for f in forms), (passage.id, fact.value)
            assert any(f in fact.answer for f in forms), (fact.answer, forms)
            words = len(passage.text.split())
            assert SECTION_WORDS[0] <= words <= SECTION_WORDS[1], (passage.id, words)
            ids[(doc.name, fact.heading)] = passage.id
    return ids


def _candidate(doc: Document, fact: Fact, question: str, gold: str, is_eval: bool) -> Candidate:
    if not is_eval:
        return Candidate(question, fact.answer, doc.name)
    metadata: dict[str, Any] = {
        "topic": doc.name,
        "gold_passage": gold,
        "answer_value": answer_value(fact),
        "answer": fact.answer,
    }
    # The ideal lists the accepted phrasings of the key fact, for `includes`.
    return Candidate(question, accepted(fact), doc.name, metadata)


def build(rng: random.Random) -> Split:
    ids = passage_ids()
    eval_rows: list[Candidate] = []
    train_rows: list[Candidate] = []
    for doc in DOCUMENTS:
        facts = list(doc.facts)
        rng.shuffle(facts)
        half = len(facts) // 2
        for fact in facts[:half]:
            gold = ids[(doc.name, fact.heading)]
            for question in rng.sample(fact.questions, EVAL_QUESTIONS_PER_FACT):
                eval_rows.append(_candidate(doc, fact, question, gold, True))
        for fact in facts[half:]:
            gold = ids[(doc.name, fact.heading)]
            train_rows += [_candidate(doc, fact, q, gold, False) for q in fact.questions]
    # The facts are disjoint, and so must the wording be: no train question may
    # be an exact or near duplicate of an eval one.
    eval_grams = [trigrams(c.user) for c in eval_rows]
    eval_norms = {normalize(c.user) for c in eval_rows}
    for cand in train_rows:
        grams = trigrams(cand.user)
        clash = normalize(cand.user) in eval_norms or any(
            near_duplicate(grams, g) for g in eval_grams
        )
        assert not clash, f"train question near-duplicates an eval one: {cand.user!r}"
    rng.shuffle(eval_rows)
    rng.shuffle(train_rows)
    return Split(eval_rows, train_rows)


def write_extras(folder: Path) -> None:
    corpus = folder / "corpus"
    corpus.mkdir(exist_ok=True)
    for doc in DOCUMENTS:
        (corpus / f"{doc.name}.md").write_text(markdown(doc), encoding="utf-8")


YAML = """\
name: policy-knowledge
description: >-
  Questions about the invented policies of Corvell Outfitters, an outdoor clothing
  and gear retailer: return windows, delivery charges and times, warranty periods,
  the Trailpoints loyalty scheme, repair prices, gear hire, the price match promise
  and gift cards. The values are unusual (41 days, £3.85), so a model cannot guess
  them. The facts live in corpus/ (one markdown file per policy area, one section per
  fact; each row names its gold passage), and train.jsonl covers only the other half
  of the facts: fine-tuning teaches the answer format, retrieval supplies the fact.
  Scored by whether the answer states the key fact and by the number it gives.
data: eval.jsonl
train: train.jsonl
# The policy documents a retriever searches; metadata.gold_passage names the passage
# that holds each row's fact.
corpus: corpus
# Two questions per fact: cluster by the fact, so the CIs are honest.
cluster: gold_passage
generation:
  max_tokens: 48
  temperature: 0
scorers:
  # The ideal lists the accepted phrasings of the key fact ("12 days", "twelve days").
  - name: includes
  # The number in the answer against metadata.answer_value.
  - name: numeric
    options: {tolerance: 0}
"""


def yaml_text() -> str:
    return YAML
