"""The shipped eval sets under evalsets/: they load, their training data is valid
chat data that never repeats an eval input, labels are balanced, JSON ideals
follow the schema, the scorers they name accept their ideals, and the seeded
generator reproduces them byte for byte."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.contracts import Sample
from gateway.data import validate_chat_file
from gateway.evaluation.evalset import EvalSet, load_evalset

ROOT = Path(__file__).resolve().parent.parent
EVALSETS = ROOT / "evalsets"
SETS = ("support-tickets", "json-extraction", "house-style")
YAML_KEYS = {"name", "description", "data", "train", "cluster", "schema", "generation", "scorers"}
TICKET_LABELS = [
    "billing",
    "refund",
    "login_access",
    "bug_report",
    "feature_request",
    "shipping",
    "cancellation",
    "account_update",
]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def user_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["content"] for m in messages if m["role"] == "user")


def trigrams(text: str) -> set[str]:
    norm = re.sub(r"\d", "0", text.lower())
    norm = re.sub(r"[^a-z0 ]+", " ", re.sub(r"\s+", " ", norm)).strip()
    return {norm[i : i + 3] for i in range(max(len(norm) - 2, 1))}


@pytest.fixture(scope="module", params=SETS)
def evalset(request: pytest.FixtureRequest) -> EvalSet:
    return load_evalset(EVALSETS / request.param)


def train_rows(evalset: EvalSet) -> list[dict[str, Any]]:
    assert evalset.train_path is not None
    return read_jsonl(evalset.train_path)


def test_yaml_follows_the_documented_schema(evalset: EvalSet) -> None:
    raw = yaml.safe_load(evalset.path.read_text(encoding="utf-8"))
    assert set(raw) <= YAML_KEYS
    assert raw["name"] == evalset.path.parent.name
    assert raw["data"] == "eval.jsonl" and raw["train"] == "train.jsonl"
    assert len(raw["description"]) > 150
    assert raw["generation"]["temperature"] == 0 and raw["generation"]["max_tokens"] > 0
    for scorer in raw["scorers"]:
        assert set(scorer) <= {"name", "id", "options"}


def test_eighty_eval_rows_with_unique_ids(evalset: EvalSet) -> None:
    assert len(evalset.rows) == 80
    ids = [row.id for row in evalset.rows]
    assert len(set(ids)) == 80
    assert all(re.fullmatch(r"[a-z]{2}-\d{3}", i) for i in ids)
    for row in evalset.rows:
        assert [m["role"] for m in row.messages] == ["system", "user"]
        assert isinstance(row.ideal, str) and row.ideal.strip()
        if evalset.cluster:
            assert row.metadata[evalset.cluster]
    if evalset.cluster:
        # Clusters hold several samples each, or clustering means nothing.
        sizes = Counter(row.metadata[evalset.cluster] for row in evalset.rows)
        assert len(sizes) >= 10 and min(sizes.values()) >= 2


def test_train_is_valid_openai_chat_data(evalset: EvalSet) -> None:
    assert evalset.train_path is not None
    report = validate_chat_file(evalset.train_path)
    assert report.ok, report.errors
    assert report.warnings == []  # no duplicate lines either
    assert 180 <= report.examples <= 220
    system = evalset.rows[0].messages[0]["content"]
    for example in train_rows(evalset):
        roles = [m["role"] for m in example["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert example["messages"][0]["content"] == system  # same prompt as the eval
        assert example["messages"][2]["content"].strip()


def test_no_eval_input_appears_in_train(evalset: EvalSet) -> None:
    train = [user_text(e["messages"]) for e in train_rows(evalset)]
    eval_inputs = [user_text(row.messages) for row in evalset.rows]
    assert not set(train) & set(eval_inputs)
    train_grams = [trigrams(t) for t in train]
    for row, text in zip(evalset.rows, eval_inputs, strict=True):
        grams = trigrams(text)
        for other in train_grams:
            shared = len(grams & other)
            assert shared / len(grams | other) < 0.8, f"{row.id} near-duplicates a train input"
            assert shared / min(len(grams), len(other)) < 0.9, f"{row.id} is inside a train input"


@pytest.mark.parametrize(
    ("name", "key"),
    [("support-tickets", "label"), ("json-extraction", "intent"), ("house-style", "doc_type")],
)
def test_strata_are_balanced(name: str, key: str) -> None:
    evalset = load_evalset(EVALSETS / name)
    counts = Counter(row.metadata[key] for row in evalset.rows)
    assert len(counts) >= 5
    assert max(counts.values()) <= 2 * min(counts.values())


def test_ticket_labels_are_balanced_and_in_the_taxonomy() -> None:
    evalset = load_evalset(EVALSETS / "support-tickets")
    options = evalset.scorers[0].options
    assert evalset.scorers[0].name == "classification" and options["labels"] == TICKET_LABELS
    system = evalset.rows[0].messages[0]["content"]
    assert all(f"- {label}:" in system for label in TICKET_LABELS)
    eval_counts = Counter(str(row.ideal) for row in evalset.rows)
    train_counts = Counter(e["messages"][-1]["content"] for e in train_rows(evalset))
    for counts in (eval_counts, train_counts):
        assert set(counts) == set(TICKET_LABELS)
        assert max(counts.values()) <= 2 * min(counts.values())
    # Short tickets, so a 135M model trains on them in minutes on a CPU.
    assert max(len(user_text(row.messages)) for row in evalset.rows) < 400


def test_json_ideals_validate_against_the_schema() -> None:
    folder = EVALSETS / "json-extraction"
    schema = json.loads((folder / "schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    evalset = load_evalset(folder)
    answers = [str(row.ideal) for row in evalset.rows]
    answers += [e["messages"][-1]["content"] for e in train_rows(evalset)]
    for answer in answers:
        value = json.loads(answer)
        assert list(validator.iter_errors(value)) == [], answer
        # Compact JSON, so the fine-tune learns the short form.
        assert answer == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    intents = Counter(json.loads(a)["intent"] for a in answers)
    assert len(intents) == 5
    assert sum(1 for a in answers if json.loads(a)["items"]) > len(answers) / 3


def test_house_style_ideals_follow_the_rules() -> None:
    evalset = load_evalset(EVALSETS / "house-style")
    rows = [(user_text(row.messages), str(row.ideal)) for row in evalset.rows]
    rows += [(user_text(e["messages"]), e["messages"][-1]["content"]) for e in train_rows(evalset)]
    banned = re.compile(
        r"!|\bclients?\b|colour|organis|centre|cancelled|catalogue|favourite|prioritis|analysed"
        r"|customis|recognis|licence|behaviour|\butili[sz]e|prior to|in order to|commence"
        r"|\bassist\b|approximately|due to the fact|\b(two|three|four|five|six|seven|eight|nine"
        r"|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)\b",
        re.IGNORECASE,
    )
    for text, ideal in rows:
        assert text != ideal
        assert not banned.search(ideal), ideal
        assert ideal.count("\n") == text.count("\n")  # line structure is kept


def scorer_sample(row: Any, output: str) -> Sample:
    return Sample(
        id=row.id, messages=row.messages, ideal=row.ideal, output=output, metadata=row.metadata
    )


def test_named_scorers_accept_the_ideals(evalset: EvalSet, gateway_home: Path) -> None:
    """Built by the runner from the YAML as written, every scorer gives a perfect
    score to the ideal answers (the set is scorable and self-consistent)."""
    from gateway.evaluation.runner import build_scorers

    scorers = build_scorers(evalset, None)
    assert [s.spec.id for s in scorers] == [
        {"support-tickets": "classification", "json-extraction": "json"}.get(evalset.name, "chrf"),
        *{
            "support-tickets": ["exact"],
            "json-extraction": ["json-fields"],
            "house-style": ["rouge-l", "regex"],
        }[evalset.name],
    ]
    samples = [scorer_sample(row, str(row.ideal)) for row in evalset.rows]
    for scorer in scorers:
        if scorer.corpus_level:
            assert scorer.evaluator.score_corpus(samples).value == pytest.approx(1.0)
        for sample in samples:
            score = scorer.evaluator.score(sample)
            assert score.value == pytest.approx(1.0) and score.passed is not False, (
                scorer.spec.id,
                sample.id,
                score.detail,
            )


def test_house_style_inputs_score_below_their_ideals(gateway_home: Path) -> None:
    from gateway.plugins import get_evaluator_class

    evalset = load_evalset(EVALSETS / "house-style")
    regex = get_evaluator_class("regex")(pattern="^[^!]*$")
    chrf = get_evaluator_class("chrf")()
    samples = [scorer_sample(row, user_text(row.messages)) for row in evalset.rows]
    failed = [s for s in samples if regex.score(s).passed is False]
    assert len(failed) == sum("!" in s.output for s in samples) > 10
    # chrF sees case and punctuation, so even a heading-case-only fix counts.
    assert all(chrf.score(s).value < 1.0 for s in samples)


def test_generator_reproduces_the_shipped_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_evalsets.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    shipped = sorted(p.relative_to(EVALSETS) for p in EVALSETS.rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert shipped == fresh
    for rel in shipped:
        assert (tmp_path / rel).read_bytes() == (EVALSETS / rel).read_bytes(), rel
