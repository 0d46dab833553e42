"""The shipped regulated-wording and policy-knowledge sets: they load, never
repeat an eval input in training, their ideals satisfy their own scorers, the
mandated wording is learnable only from train.jsonl, and the policy facts
asked about in eval are absent from training but present in the corpus."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.contracts import Sample
from gateway.data import validate_chat_file
from gateway.evaluation.corpus import load_corpus
from gateway.evaluation.evalset import EvalSet, load_evalset

ROOT = Path(__file__).resolve().parent.parent
EVALSETS = ROOT / "evalsets"
SIZES = {"regulated-wording": (56, 140), "policy-knowledge": (48, 72)}
BANNED = ["guaranteed returns", "risk-free", "no risk", "you will earn", "penalty"]
MANDATED = ["AER", "early access charge", "eligible deposits", "ongoing charge",
            "may go down as well as up", "Capital at risk."]  # fmt: skip


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def train_pairs(evalset: EvalSet) -> list[tuple[str, str]]:
    assert evalset.train_path is not None
    rows = read_jsonl(evalset.train_path)
    return [(r["messages"][1]["content"], r["messages"][2]["content"]) for r in rows]


def trigrams(text: str) -> set[str]:
    norm = re.sub(r"\d", "0", text.lower())
    norm = re.sub(r"[^a-z0 ]+", " ", re.sub(r"\s+", " ", norm)).strip()
    return {norm[i : i + 3] for i in range(max(len(norm) - 2, 1))}


def sample(row: Any, output: str) -> Sample:
    return Sample(row.id, row.messages, row.ideal, output, row.metadata)


@pytest.fixture(scope="module", params=sorted(SIZES))
def evalset(request: pytest.FixtureRequest) -> EvalSet:
    return load_evalset(EVALSETS / request.param)


def test_rows_and_training_data(evalset: EvalSet) -> None:
    n_eval, n_train = SIZES[evalset.name]
    assert len(evalset.rows) == n_eval == len({row.id for row in evalset.rows})
    assert evalset.train_path is not None
    report = validate_chat_file(evalset.train_path)
    assert report.ok and report.warnings == [] and report.examples == n_train
    system = evalset.rows[0].messages[0]["content"]
    assert all(row.messages[0]["content"] == system for row in evalset.rows)
    assert evalset.train_path.read_text(encoding="utf-8").count(json.dumps(system)) == n_train
    # Short answers: a 135M model generates at most 64 tokens.
    assert max(len(answer.split()) for _, answer in train_pairs(evalset)) <= 45


def test_no_eval_input_appears_in_train(evalset: EvalSet) -> None:
    train = [trigrams(question) for question, _ in train_pairs(evalset)]
    for row in evalset.rows:
        grams = trigrams(row.messages[1]["content"])
        for other in train:
            shared = len(grams & other)
            assert shared / len(grams | other) < 0.8, f"{row.id} near-duplicates a train input"
            assert shared / min(len(grams), len(other)) < 0.9, f"{row.id} is inside a train input"


def test_ideals_score_perfectly_on_the_sets_scorers(evalset: EvalSet, gateway_home: Path) -> None:
    from gateway.evaluation.runner import build_scorers

    scorers = build_scorers(evalset, None)
    expected = {"regulated-wording": ["terms", "chrf"], "policy-knowledge": ["includes", "numeric"]}
    assert [s.spec.id for s in scorers] == expected[evalset.name]
    for row in evalset.rows:
        # policy-knowledge's ideal lists the accepted phrasings; its answer is in metadata.
        output = row.metadata.get("answer", row.ideal)
        assert isinstance(output, str)
        for scorer in scorers:
            score = scorer.evaluator.score(sample(row, output))
            assert score.value == pytest.approx(1.0) and score.passed is not False, (
                scorer.spec.id,
                row.id,
                score.detail,
            )


# ---------------------------------------------------------------- regulated-wording


def test_wording_rules_are_taught_by_train_not_the_prompt(gateway_home: Path) -> None:
    from gateway.plugins import get_evaluator_class

    evalset = load_evalset(EVALSETS / "regulated-wording")
    system = evalset.rows[0].messages[0]["content"]
    assert not any(term.lower() in system.lower() for term in MANDATED + BANNED)
    assert evalset.scorers[0].options == {"forbidden": BANNED}
    terms = get_evaluator_class("terms")(forbidden=BANNED)
    topics = {row.metadata["topic"] for row in evalset.rows}
    assert len(topics) == 7
    # Every train answer follows the rules too; the mandated phrases all occur there.
    answers = [answer for _, answer in train_pairs(evalset)]
    for answer in answers:
        assert terms.score(Sample("t", [], None, answer)).passed, answer
        if "may go down as well as up" in answer:
            assert answer.endswith("Capital at risk.")
    assert all(any(term.lower() in a.lower() for a in answers) for term in MANDATED)
    # Answering with the question itself misses the required terms.
    echoed = [terms.score(sample(row, row.messages[1]["content"])) for row in evalset.rows]
    assert sum(1 for s in echoed if s.passed) < len(echoed) / 4


def test_the_judge_block_is_commented_out_and_valid_when_enabled() -> None:
    text = (EVALSETS / "regulated-wording" / "evalset.yaml").read_text(encoding="utf-8")
    assert "judge" not in [s["name"] for s in yaml.safe_load(text)["scorers"]]
    enabled = re.sub(r"^  # (  |- )", r"  \1", text, flags=re.MULTILINE)
    scorers = yaml.safe_load(enabled)["scorers"]
    judge = [s for s in scorers if s["name"] == "judge"]
    assert len(judge) == 1 and judge[0]["options"]["rubric"] and judge[0]["options"]["model"]


def test_wording_corpus_gives_the_facts_but_not_the_wording() -> None:
    """The product sheets load, and no passage says a mandated or banned phrase
    (nor FSCS's full name or "guaranteed"), so retrieval cannot teach the wording."""
    folder = EVALSETS / "regulated-wording"
    raw = yaml.safe_load((folder / "evalset.yaml").read_text(encoding="utf-8"))
    assert raw["corpus"] == "corpus" and "corpus/" in raw["description"]
    settings = load_evalset(folder).retrieval
    assert settings is not None and settings.corpus == (folder / "corpus").resolve()
    corpus = load_corpus(folder / "corpus")
    assert {p.id.split("#")[0] for p in corpus.passages} == {
        "savings-accounts", "fixed-rate-bonds", "isas", "funds", "deposit-protection"}  # fmt: skip
    assert len(corpus) == 17
    unsaid = [*MANDATED, "FSCS", "Financial Services Compensation Scheme", "eligible",
              "capital at risk", "guaranteed", *BANNED]  # fmt: skip
    for passage in corpus.passages:
        text = passage.text.lower()
        assert not [phrase for phrase in unsaid if phrase.lower() in text], passage.id
        assert len(passage.text.split()) <= 80, passage.id


def test_wording_gold_passages_hold_each_rows_facts() -> None:
    folder = EVALSETS / "regulated-wording"
    evalset = load_evalset(folder)
    corpus = load_corpus(folder / "corpus")
    passages = {p.id: p.text for p in corpus.passages}
    headings = [
        t.split("\n")[0].removeprefix("## ") for t in passages.values() if t.startswith("## ")
    ]
    for row in evalset.rows:
        assert isinstance(row.ideal, str)
        gold = row.metadata["gold_passage"]
        text = passages[gold]  # it exists, and is one product's or fact's section
        assert text.startswith("## "), row.id
        # Every figure the answer states (4.20%, £20,000, 90 days' interest) and
        # every product it names is in the passage, in the sheets' own wording.
        figures = re.findall(r"£[\d,]+|\d+(?:\.\d+)?%|\d+ days' interest", row.ideal)
        names = [h for h in headings if h in row.ideal]
        for key in figures + names:
            assert key in text, (row.id, gold, key)
        if row.metadata["topic"] == "protection":
            # The answer says "the scheme limit"; the sheet gives the figure.
            assert re.search(r"£\d[\d,]* per person", text), (row.id, gold)
        else:
            assert figures or names, row.id
        if row.metadata["topic"] == "savings_rate":
            kind = "fixed" if "fixed" in row.ideal else "variable"
            assert f"a year, {kind}" in text, (row.id, gold)
    # The gold passages are spread over the sheets, not one catch-all section.
    golds = {row.metadata["gold_passage"] for row in evalset.rows}
    assert len(golds) >= 10 and golds <= set(passages)


# ---------------------------------------------------------------- policy-knowledge


def fact_passages() -> dict[str, str]:
    """Each fact's approved answer -> the id of the passage that holds the fact."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from evalset_gen.policy_facts import DOCUMENTS
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    corpus = load_corpus(EVALSETS / "policy-knowledge" / "corpus")
    found = {}
    for doc in DOCUMENTS:
        for fact in doc.facts:
            ids = [p.id for p in corpus.passages
                   if p.id.startswith(f"{doc.name}#") and p.text.startswith(f"## {fact.heading}\n")]  # fmt: skip
            assert len(ids) == 1
            found[fact.answer] = ids[0]
    return found


def test_policy_gold_passages_hold_the_facts() -> None:
    evalset = load_evalset(EVALSETS / "policy-knowledge")
    raw = yaml.safe_load(evalset.path.read_text(encoding="utf-8"))
    assert raw["corpus"] == "corpus" and evalset.cluster == "gold_passage"
    assert raw["generation"] == {"max_tokens": 48, "temperature": 0}
    corpus = load_corpus(EVALSETS / "policy-knowledge" / "corpus")
    passages = {p.id: p.text for p in corpus.passages}
    for row in evalset.rows:
        text = passages[row.metadata["gold_passage"]]
        assert isinstance(row.ideal, list)
        assert any(accepted in text for accepted in row.ideal), row.id
        assert 20 <= len(text.split()) <= 80
        assert re.search(rf"(?<![\d.]){re.escape(str(row.metadata['answer_value']))}", text)


def test_eval_facts_are_absent_from_training() -> None:
    evalset = load_evalset(EVALSETS / "policy-knowledge")
    passage_of = fact_passages()
    eval_facts = {row.metadata["gold_passage"] for row in evalset.rows}
    train_facts = {passage_of[answer] for _, answer in train_pairs(evalset)}
    assert len(eval_facts) == len(train_facts) == 24
    assert not eval_facts & train_facts
    assert eval_facts | train_facts == set(passage_of.values())
    # No training reply states an eval fact's value in its sentence either.
    eval_answers = {row.metadata["answer"] for row in evalset.rows}
    assert not eval_answers & {answer for _, answer in train_pairs(evalset)}
