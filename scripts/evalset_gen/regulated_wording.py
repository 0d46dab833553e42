"""regulated-wording: answer savings and investment questions in Harbourline's
mandated wording.

The approved answers follow a small, fixed set of wording rules that the
system prompt does not state, so a model learns them from train.jsonl:
savings rates are quoted as "AER", leaving a product early costs an "early
access charge", protection speaks of "eligible deposits" and the "FSCS",
fund costs are an "ongoing charge", and every investment answer says its
value "may go down as well as up" and ends with "Capital at risk.". The
banned phrases (BANNED) never appear. Question templates are split between
eval and train; the answer for a topic and product is the same in both.

The set ships a corpus (corpus/*.md): Harbourline's internal product sheets,
one file per product area and one short section per product or fact, built
from the same tables as the answers so the figures cannot drift. The sheets
are worded plainly ("Interest rate: 3.40% a year, variable", "costs 90 days'
interest") and never use the mandated or banned phrases, so retrieval
supplies the facts but not the wording: this set is a behaviour problem,
which fine-tuning should help and retrieval should not fix. Each eval row
names the passage holding its facts (metadata.gold_passage). The tables and
the sheets live in wording_facts.py; this module holds the wording rules, the
corpus checks and the rows.
"""

from __future__ import annotations

import random
import re
import tempfile
from pathlib import Path

from .common import Candidate, Split, build_split, holdout
from .wording_facts import (
    ACCOUNT_SHEETS,
    AMOUNTS,
    CLOSERS,
    EARLY_ACCESS,
    FUNDS,
    ISA_ALLOWANCE,
    OPENERS,
    PLATFORM_FEE,
    PRODUCTS,
    QUESTIONS,
    SAVINGS,
    TOPICS,
    fund_list,
    markdown,
    sheets,
)

NAME = "regulated-wording"
PREFIX = "rw"

# Generic on purpose: it names the firm, never the wording rules.
SYSTEM = (
    "You are the customer assistant for Harbourline Savings, a UK savings and investment "
    "provider. Answer the customer's question in one to three sentences."
)

BANNED = ("guaranteed returns", "risk-free", "no risk", "you will earn", "penalty")
INVESTMENT_TERMS = ["may go down as well as up", "Capital at risk."]


def answer(topic: str, product: str) -> str:
    """The approved answer: the topic's fixed wording with the product's facts."""
    if topic == "savings_rate":
        rate, kind = SAVINGS[product]
        if kind == "fixed":
            return f"The {product} pays {rate} AER, fixed for the full term."
        return f"The {product} pays {rate} AER. The rate is variable, so it can change."
    if topic == "isa_allowance":
        rate = SAVINGS["Cash ISA"][0]
        return (
            f"You can pay in up to {ISA_ALLOWANCE} each tax year across all your ISAs. "
            f"Our Cash ISA pays {rate} AER (variable)."
        )
    if topic == "early_withdrawal":
        return (
            f"You can withdraw from the {product} early, but an early access charge "
            f"of {EARLY_ACCESS[product]} applies."
        )
    if topic == "fund_performance":
        return (
            f"Past performance of the {product} is not a guide to future returns. The value "
            "of your investment may go down as well as up, and you may get back less than "
            "you put in. Capital at risk."
        )
    if topic == "fund_charges":
        return (
            f"The {product} has an ongoing charge of {FUNDS[product]} a year. The value of "
            "your investment may go down as well as up. Capital at risk."
        )
    if topic == "investment_isa":
        return (
            f"Our Stocks and Shares ISA holds the {fund_list()} funds, "
            f"with a platform fee of {PLATFORM_FEE} a year. The value of your investments may go "
            "down as well as up. Capital at risk."
        )
    if topic == "protection":
        return (
            "Eligible deposits with Harbourline are protected by the Financial Services "
            "Compensation Scheme (FSCS), up to the scheme limit per person."
        )
    raise ValueError(f"unknown topic {topic!r}")


def required_terms(topic: str) -> list[str]:
    """The mandated terms an answer on this topic must contain."""
    return {
        "savings_rate": ["AER"],
        "isa_allowance": ["AER"],
        "early_withdrawal": ["early access charge"],
        "fund_performance": INVESTMENT_TERMS,
        "fund_charges": ["ongoing charge", *INVESTMENT_TERMS],
        "investment_isa": INVESTMENT_TERMS,
        "protection": ["eligible deposits", "FSCS"],
    }[topic]


# ---------------------------------------------------------------- the corpus

# What no product sheet may say: the mandated customer-facing wording (and the
# scheme's full name) and the banned phrases. Checked case-insensitively.
NOT_IN_SHEETS = (
    "AER", "annual equivalent rate", "early access charge", "eligible deposits", "eligible",
    "FSCS", "Financial Services Compensation Scheme", "ongoing charge",
    "may go down as well as up", "Capital at risk", "guaranteed", *BANNED,
)  # fmt: skip
# A figure an answer states: £20,000, 4.20%, 90 days' interest.
FIGURE = re.compile(r"£[\d,]+|\d+(?:\.\d+)?%|\d+ days' interest")
SECTION_WORDS = (5, 80)  # each section is one short passage


def gold_section(topic: str, product: str) -> tuple[str, str]:
    """(sheet, heading) of the section that holds an answer's facts."""
    if topic in ("savings_rate", "early_withdrawal"):
        if product == "Cash ISA":
            return "isas", "Cash ISA"
        return next(name for name, ps in ACCOUNT_SHEETS.items() if product in ps), product
    if topic in ("fund_performance", "fund_charges"):
        return "funds", product
    if topic == "isa_allowance":
        return "isas", "ISA allowance"
    if topic == "investment_isa":
        return "isas", "Stocks and Shares ISA"
    if topic == "protection":
        return "deposit-protection", "Deposit guarantee"
    raise ValueError(f"unknown topic {topic!r}")


def passage_ids() -> dict[tuple[str, str], str]:
    """(topic, product) -> the id of its gold passage, by the gateway's own chunking rule.

    The sheets are written to a scratch folder and loaded as the gateway loads
    them, so the ids can never drift from what the retriever sees. Checks on
    the way that each gold passage states every figure of its answer and that
    no passage uses the mandated or banned wording.
    """
    from gateway.evaluation.corpus import load_corpus

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for sheet in sheets():
            (folder / f"{sheet.name}.md").write_text(markdown(sheet), encoding="utf-8")
        corpus = load_corpus(folder)
    for passage in corpus.passages:
        lowered = passage.text.lower()
        said = [phrase for phrase in NOT_IN_SHEETS if phrase.lower() in lowered]
        assert not said, (passage.id, said)
    ids: dict[tuple[str, str], str] = {}
    for topic in TOPICS:
        for product in PRODUCTS.get(topic, ("",)):
            name, heading = gold_section(topic, product)
            found = [
                p
                for p in corpus.passages
                if p.id.startswith(f"{name}#") and p.text.startswith(f"## {heading}\n")
            ]
            assert len(found) == 1, (name, heading, [p.id for p in found])
            passage = found[0]
            figures = FIGURE.findall(answer(topic, product))
            missing = [f for f in figures if f not in passage.text]
            assert not missing, (passage.id, topic, product, missing)
            if product:
                assert product in passage.text, (passage.id, product)
            words = len(passage.text.split())
            assert SECTION_WORDS[0] <= words <= SECTION_WORDS[1], (passage.id, words)
            ids[(topic, product)] = passage.id
    return ids


def write_extras(folder: Path) -> None:
    corpus = folder / "corpus"
    corpus.mkdir(exist_ok=True)
    for sheet in sheets():
        (corpus / f"{sheet.name}.md").write_text(markdown(sheet), encoding="utf-8")


# ---------------------------------------------------------------- the rows


def _core(templates: list[str], topic: str, rng: random.Random) -> tuple[str, str]:
    """A filled question template and the product it asks about ("" for none)."""
    product = rng.choice(PRODUCTS[topic]) if topic in PRODUCTS else ""
    template = rng.choice(templates)
    return template.format(product=product, fund=product, amount=rng.choice(AMOUNTS)), product


def _dress(text: str, rng: random.Random) -> str:
    """The question as a customer types it: an optional greeting and thanks."""
    opener = rng.choice(OPENERS)
    first = text.split(" ")[0]
    if opener.endswith(", ") and first != "I" and not first.startswith("I'"):
        text = text[0].lower() + text[1:]  # "Hi, what is..." but "Hi, I need..."
    return opener + text + rng.choice(CLOSERS)


def build(rng: random.Random, n_eval: int = 56, n_train: int = 140) -> Split:
    eval_templates, train_templates = holdout(rng, QUESTIONS)
    gold = passage_ids()

    used: set[str] = set()

    def make(topic: str, index: int, is_eval: bool) -> Candidate:
        pool = (eval_templates if is_eval else train_templates)[topic]
        core, product = _core(pool, topic, rng)
        # Eval rows prefer a question not asked yet, greeting aside, so the
        # set does not ask the same thing twice while unasked ones remain.
        for _ in range(50 if is_eval else 0):
            if core not in used:
                break
            core, product = _core(pool, topic, rng)
        if is_eval:
            used.add(core)
        user = _dress(core, rng)
        metadata: dict[str, object] = {"topic": topic, "required_terms": required_terms(topic)}
        if topic in ("fund_performance", "fund_charges", "investment_isa"):
            # Investment answers must not promise anything, even in passing.
            metadata["forbidden_terms"] = ["guaranteed"]
        metadata["gold_passage"] = gold[(topic, product)]
        return Candidate(user, answer(topic, product), topic, metadata)

    return build_split(make, TOPICS, n_eval, n_train, rng)


def _yaml_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(items) + "]"


YAML = f"""\
name: regulated-wording
description: >-
  Customer questions to Harbourline Savings, a fictional UK savings and investment
  firm: savings rates, the ISA allowance, leaving a fixed-rate bond early, fund
  performance and charges, the Stocks and Shares ISA and deposit protection. The
  approved answers use the firm's mandated wording ("AER" for savings rates, "early
  access charge", "eligible deposits" and "FSCS", "ongoing charge", and in every
  investment answer "may go down as well as up" and a closing "Capital at risk.")
  and never its banned phrases. The system prompt does not state the rules, so a
  model learns them from train.jsonl. Scored by the terms each row requires plus the
  banned phrases, and by chrF overlap with the approved answer. corpus/ holds the
  firm's internal product sheets (one markdown file per product area, one section
  per product; each row names its gold passage): they state the rates, charges and
  limits in plain wording, without the mandated phrases, so retrieval supplies the
  facts but not the wording, while fine-tuning teaches it.
data: eval.jsonl
train: train.jsonl
# Internal product sheets in plain wording: retrieval supplies facts, not the mandated phrasing.
corpus: corpus
generation:
  max_tokens: 64
  temperature: 0
scorers:
  # Each row's metadata.required_terms (and forbidden_terms) add to these.
  - name: terms
    options:
      forbidden: {_yaml_list(BANNED)}
  - name: chrf
  # A judge model can grade compliance too. It needs a model the gateway serves
  # (hosted, with its API key set, or local); to enable it, uncomment the block
  # and set `model`:
  # - name: judge
  #   options:
  #     model: gpt-4o-mini
  #     rubric: >-
  #       The reply answers the customer's question correctly in one to three
  #       sentences, quotes savings rates as AER, calls an early withdrawal cost an
  #       "early access charge", says investments may go down as well as up and ends
  #       investment answers with "Capital at risk.", and never promises returns
  #       (no "guaranteed returns", "risk-free", "no risk" or "you will earn").
"""


def yaml_text() -> str:
    return YAML
