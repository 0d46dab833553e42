"""The built-in evaluators, each checked against values worked out by hand
(or, for BLEU and chrF, against sacrebleu's own functions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import sacrebleu
from gateway_evaluators.classification import Classification, classification_metrics
from gateway_evaluators.judge import Judge, parse_grade, parse_verdict
from gateway_evaluators.overlap import Bleu, Chrf, RougeL, lcs_length
from gateway_evaluators.plugin import EVALUATORS
from gateway_evaluators.structured import Json, extract_json
from gateway_evaluators.text import Exact, Includes, Regex

from gateway.contracts import Evaluator, Sample
from gateway.errors import GatewayError
from gateway.plugins import get_evaluator_class, plugin_infos

NAMES = [
    "exact", "includes", "regex", "terms", "numeric", "json", "classification", "bleu", "chrf",
    "rouge-l", "judge",
]  # fmt: skip


def sample(output: str, ideal: str | list[str] | None = None, id: str = "s1") -> Sample:
    return Sample(
        id=id,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        ideal=ideal,
        output=output,
    )


def no_chat(model: str, messages: list[dict[str, Any]]) -> str:
    raise AssertionError("not called")


# ---------------------------------------------------------------- the plugin


def test_plugins_list_shows_every_evaluator(gateway_home: Path, gateway_cli: Any) -> None:
    result = gateway_cli("plugins", "list", "--format", "json")
    assert result.exit_code == 0
    rows = [r for r in json.loads(result.output) if r["name"] == "evaluators"]
    assert len(rows) == 1
    assert rows[0]["kind"] == "evaluator" and rows[0]["status"] == "loaded"
    assert rows[0]["provides"].split(", ") == NAMES


def test_every_evaluator_resolves_by_name_and_fits_the_contract(gateway_home: Path) -> None:
    options: dict[str, dict[str, Any]] = {
        "classification": {"labels": ["a", "b"]},
        "terms": {"required": ["Paris"]},
        "judge": {"rubric": "correct", "model": "m", "chat": no_chat},
    }
    for name in NAMES:
        cls = get_evaluator_class(name)
        assert cls.name == name and cls.description and isinstance(cls.corpus_level, bool)
        assert isinstance(cls(**options.get(name, {})), Evaluator)
    assert [cls.name for cls in EVALUATORS] == NAMES
    assert {c.name for c in EVALUATORS if c.corpus_level} == {"classification", "bleu", "chrf"}
    assert getattr(get_evaluator_class("judge"), "needs_chat", False) is True


def test_plugin_loads_without_sacrebleu(
    gateway_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes `import sacrebleu` raise ImportError.
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    info = next(i for i in plugin_infos() if i.name == "evaluators")
    assert info.status == "loaded" and "bleu" in info.kinds["evaluator"]
    for cls in (Bleu, Chrf):
        with pytest.raises(
            GatewayError, match=r"needs sacrebleu: pip install 'finetune-gateway\[evals\]'"
        ):
            cls()
    assert RougeL().score(sample("a b", "a b")).value == 1.0


# ---------------------------------------------------------------- options


@pytest.mark.parametrize("cls", EVALUATORS, ids=lambda c: c.name)
def test_unknown_option_names_evaluator_and_option(cls: Any) -> None:
    with pytest.raises(GatewayError) as info:
        cls(labels=["a"], rubric="r", model="m", chat=no_chat, colour="blue")
    message = str(info.value)
    assert (
        f"evaluator {cls.name!r}" in message
        and "'colour'" in message
        and "known options" in message
    )


@pytest.mark.parametrize(
    ("cls", "options", "expected"),
    [
        (Exact, {"lowercase": "yes"}, "option 'lowercase' must be true or false"),
        (Includes, {"all": 1}, "option 'all' must be true or false"),
        (Regex, {"pattern": "(unclosed"}, "option 'pattern' is not a valid regular expression"),
        (Regex, {"pattern": 5}, "option 'pattern' must be a string"),
        (Regex, {"flags": "q"}, "option 'flags' has unknown flag 'q'"),
        (Json, {"schema": 7}, "option 'schema' must be a JSON schema or the path of one"),
        (Json, {"schema": {"type": "no-such-type"}}, "option 'schema' is not a valid JSON schema"),
        (Json, {"schema": "missing.json"}, "option 'schema' names"),
        (Json, {"fields": ["a"], "match_fields": False}, "option 'fields' needs match_fields"),
        (Classification, {}, "option 'labels' is required"),
        (Classification, {"labels": "billing"}, None),
        (
            Classification,
            {"labels": ["Billing", "billing"]},
            "option 'labels' holds 'billing' twice",
        ),
        (Classification, {"labels": [1, 2]}, "option 'labels' must be a non-empty list of strings"),
        (Bleu, {"tokenize": "klingon"}, "option 'tokenize' must be one of"),
        (Bleu, {"smooth_method": "magic"}, "option 'smooth_method' must be one of exp, floor"),
        (Chrf, {"char_order": 0}, "option 'char_order' must be at least 1"),
        (Chrf, {"threshold": 1.5}, "option 'threshold' must lie between 0 and 1"),
        (RougeL, {"threshold": "high"}, "option 'threshold' must be a number"),
        (Judge, {"model": "m", "chat": no_chat}, "option 'rubric' is required"),
        (Judge, {"rubric": "r", "chat": no_chat}, "option 'model' is required"),
        (
            Judge,
            {"rubric": "r", "model": "m", "scale": 1, "chat": no_chat},
            "option 'scale' must be at least 2",
        ),
        (
            Judge,
            {"rubric": "r", "model": "m", "threshold": 0.7, "chat": no_chat},
            "option 'threshold' needs a scale",
        ),
        (Judge, {"rubric": "r", "model": "m"}, "needs a chat function"),
    ],
)
def test_bad_options(cls: Any, options: dict[str, Any], expected: str | None) -> None:
    if expected is None:  # accepted: a single label string becomes a one-item list
        cls(**options)
        return
    with pytest.raises(GatewayError) as info:
        cls(**options)
    assert f"evaluator {cls.name!r}" in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize("cls", [Exact, Includes, Bleu, Chrf, RougeL], ids=lambda c: c.name)
def test_missing_ideal_names_the_sample(cls: Any) -> None:
    with pytest.raises(GatewayError, match=r"sample 'row-7' has no ideal answer"):
        cls().score(sample("anything", None, id="row-7"))


# ---------------------------------------------------------------- exact / includes / regex


def test_exact_defaults_strip_only() -> None:
    exact = Exact()
    assert exact.score(sample(" Paris\n", "Paris")).passed is True
    assert exact.score(sample("paris", "Paris")).passed is False
    assert exact.score(sample("Paris.", "Paris")).value == 0.0
    assert exact.score(sample("Lyon", ["Paris", "Lyon"])).detail == "matches 'Lyon'"


def test_exact_normalisation_steps() -> None:
    assert Exact(lowercase=True).score(sample("PARIS", "paris")).passed is True
    assert (
        Exact(collapse_whitespace=True).score(sample("New  York\n City", "New York City")).passed
        is True
    )
    assert Exact(strip_punctuation=True).score(sample("“Paris!”", "Paris")).passed is True
    everything = Exact(normalize=True)
    assert everything.score(sample("  The   Paris, FRANCE! ", "the paris france")).passed is True
    # normalize turns every step on; a step can still be turned off.
    assert Exact(normalize=True, lowercase=False).score(sample("PARIS", "paris")).passed is False
    assert Exact(strip=False).score(sample(" Paris", "Paris")).passed is False


def test_includes_any_all_and_case() -> None:
    output = "Paris is the capital; Lyon is larger than Nice."
    assert Includes().score(sample(output, ["Berlin", "paris"])).passed is True
    assert Includes(case_sensitive=True).score(sample(output, "paris")).passed is False
    score = Includes(all=True).score(sample(output, ["Paris", "Lyon", "Marseille", "Nice"]))
    assert (score.value, score.passed) == (0.75, False)
    assert "'Marseille'" in score.detail
    assert Includes(all=True).score(sample(output, ["Paris", "Lyon"])).passed is True


def test_regex_pattern_ideal_fullmatch_and_flags() -> None:
    house = Regex(pattern="^[^!]*$")
    assert house.score(sample("Your order has shipped.", None)).passed is True
    assert house.score(sample("Great news!\nIt shipped.", None)).passed is False
    assert Regex(pattern=r"\d{3}").score(sample("call 555-1234", None)).passed is True
    assert (
        Regex(pattern=r"\d{3}", fullmatch=True).score(sample("call 555-1234", None)).passed is False
    )
    assert Regex(pattern=r"paris", flags="i").score(sample("PARIS", None)).passed is True
    assert Regex(pattern=r"^b$", flags=["MULTILINE"]).score(sample("a\nb\nc", None)).passed is True
    assert Regex(pattern=r"^b$").score(sample("a\nb\nc", None)).passed is False
    # Without a pattern, each ideal is a pattern.
    by_ideal = Regex(fullmatch=True)
    assert by_ideal.score(sample("ORD-12345", [r"ORD-\d{5}"])).passed is True
    assert by_ideal.score(sample("ORD-123", [r"ORD-\d{5}", "INV-.*"])).passed is False
    with pytest.raises(
        GatewayError, match=r"ideal of sample 's1' is not a valid regular expression"
    ):
        by_ideal.score(sample("x", "(bad"))


def test_per_sample_corpus_score_is_the_mean() -> None:
    samples = [sample("a", "a"), sample("b", "a"), sample("a", ["b", "a"]), sample("c", "d")]
    corpus = Exact().score_corpus(samples)
    assert corpus.value == 0.5 and corpus.passed is False and "2/4 passed" in corpus.detail


# ---------------------------------------------------------------- json


def test_extract_json_from_fences_and_prose() -> None:
    assert extract_json('Here you go:\n```json\n{"a": [1, 2]}\n```\nAnything else?') == {
        "a": [1, 2]
    }
    assert extract_json('The result is {"a": 1} and {"b": 2}.') == {"a": 1}
    assert extract_json("[1, 2] then more") == [1, 2]
    # A brace that starts no JSON is skipped.
    assert extract_json('use {braces} wisely: {"ok": true}') == {"ok": True}
    with pytest.raises(ValueError, match="no JSON object or array"):
        extract_json("no json here")
    with pytest.raises(ValueError, match="output is not JSON"):
        extract_json('```json\n{"a": 1}\n```', strict=True)
    assert extract_json('  {"a": 1}\n', strict=True) == {"a": 1}


def test_json_validity_and_strict() -> None:
    assert Json().score(sample('Sure! ```json\n{"name": "Ada"}\n```')).passed is True
    bad = Json().score(sample('{"name": "Ada",}'))
    assert (bad.value, bad.passed) == (0.0, False)
    assert Json(strict=True).score(sample('Result: {"name": "Ada"}')).passed is False
    assert Json(strict=True).score(sample('{"name": "Ada"}')).passed is True


SCHEMA = {
    "type": "object",
    "required": ["name", "quantity"],
    "properties": {"name": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}},
}


def test_json_schema_inline_and_relative_path(tmp_path: Path) -> None:
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "schema.yaml").write_text("type: object\nrequired: [name]\n")
    for scorer in (
        Json(schema=SCHEMA),
        Json(schema="schema.json", evalset_dir=tmp_path),
        Json(schema=json.dumps(SCHEMA)),
    ):
        assert (
            scorer.score(sample('{"name": "mug", "quantity": 2}')).detail
            == "valid JSON matching the schema"
        )
        wrong = scorer.score(sample('{"name": "mug", "quantity": 0}'))
        assert (wrong.value, wrong.passed) == (0.0, False)
        assert (
            wrong.detail
            == "does not match the schema: 0 is less than the minimum of 1 (at /quantity)"
        )
        assert "'quantity' is a required property" in scorer.score(sample('{"name": "mug"}')).detail
    from_yaml = Json(schema="schema.yaml", evalset_dir=str(tmp_path))
    assert from_yaml.score(sample('{"name": 1}')).passed is True
    assert from_yaml.score(sample('{"nom": 1}')).passed is False
    with pytest.raises(
        GatewayError, match=r"option 'schema' names '.*nope.json', which cannot be read"
    ):
        Json(schema="nope.json", evalset_dir=tmp_path)
    (tmp_path / "broken.json").write_text("{oops")
    with pytest.raises(GatewayError, match=r"option 'schema' file '.*broken.json' does not parse"):
        Json(schema="broken.json", evalset_dir=tmp_path)


def test_json_field_match_fraction() -> None:
    ideal = '{"name": "Ada Lovelace", "email": "ada@example.com", "quantity": 3, "gift": false}'
    scorer = Json(match_fields=True)
    # name and quantity match (3 == 3.0; surrounding whitespace ignored), email differs, gift missing.
    score = scorer.score(
        sample(
            '```json\n{"name": " Ada  Lovelace", "email": "ADA@example.com", "quantity": 3.0}\n```',
            ideal,
        )
    )
    assert score.value == 0.5 and score.passed is False
    assert score.detail.startswith("matched 2/4 fields; wrong: email")
    assert "gift (got missing, want false)" in score.detail
    assert (
        Json(match_fields=True, ignore_case=True)
        .score(
            sample(
                '{"name": "ada lovelace", "email": "ADA@example.com", "quantity": 3, "gift": false}',
                ideal,
            )
        )
        .passed
        is True
    )
    # true is not 1.
    assert Json(match_fields=True).score(sample('{"gift": 0}', '{"gift": false}')).value == 0.0
    # Restricting to fields (dotted for nested ones) implies match_fields.
    restricted = Json(fields=["name", "address.city"])
    nested_ideal = '{"name": "Ada", "address": {"city": "London", "zip": "N1"}, "note": "x"}'
    score = restricted.score(
        sample('{"name": "Ada", "address": {"city": "London", "zip": "E2"}}', nested_ideal)
    )
    assert (score.value, score.passed, score.detail) == (1.0, True, "matched 2/2 fields")
    # The ideal can be an object, and one of several alternatives: the best one counts.
    as_object = Sample(id="o", messages=[], ideal={"a": 1, "b": 2}, output='{"a": 1, "b": 3}')  # type: ignore[arg-type]
    assert scorer.score(as_object).value == 0.5
    assert (
        scorer.score(sample('{"a": 1, "b": 3}', ['{"a": 2, "b": 2}', '{"a": 1, "b": 3}'])).passed
        is True
    )
    # Invalid output JSON scores 0; an ideal that is not JSON is an eval set error.
    assert scorer.score(sample("no json", ideal)).value == 0.0
    with pytest.raises(GatewayError, match="ideal of sample 's1' is not JSON"):
        scorer.score(sample("{}", "not json"))


def test_json_schema_failure_overrides_field_match() -> None:
    scorer = Json(schema=SCHEMA, match_fields=True)
    ideal = '{"name": "mug", "quantity": 2}'
    assert scorer.score(sample('{"name": "mug", "quantity": 2}', ideal)).passed is True
    assert scorer.score(sample('{"name": "mug", "quantity": "2"}', ideal)).value == 0.0


# ---------------------------------------------------------------- classification

LABELS = ["billing", "refund", "shipping", "login_access", "cancellation"]


def test_classification_maps_outputs_to_labels() -> None:
    scorer = Classification(labels=LABELS)
    assert scorer.predict("Billing.") == "billing"
    assert scorer.predict("  LOGIN-ACCESS ") == "login_access"
    assert scorer.predict("login access") == "login_access"
    # Not a bare label: the first label mentioned wins.
    assert scorer.predict("This looks like a refund request, not billing.") == "refund"
    assert scorer.predict("Category: shipping") == "shipping"
    # Whole words only: "refunds" names no label.
    assert scorer.predict("refunds are slow") is None
    assert scorer.predict("I don't know") is None
    assert scorer.score(sample("Refund", "refund")).passed is True
    wrong = scorer.score(sample("billing", "refund"))
    assert (wrong.value, wrong.passed, wrong.detail) == (
        0.0,
        False,
        "predicted 'billing', expected 'refund'",
    )
    assert scorer.score(sample("hmm", "refund")).detail == "no label in output; expected 'refund'"
    with pytest.raises(
        GatewayError, match=r"the ideal 'sales' of sample 's1' is not one of the labels"
    ):
        scorer.score(sample("billing", "sales"))


def test_classification_macro_f1_on_a_hand_computed_table() -> None:
    # gold -> predicted:  billing->billing x3, billing->refund x1,
    # refund->refund x2, refund->billing x1, shipping->shipping x1, shipping->(none) x1.
    #   billing:  tp 3, fp 1, fn 1 -> P 3/4, R 3/4, F1 3/4
    #   refund:   tp 2, fp 1, fn 1 -> P 2/3, R 2/3, F1 2/3
    #   shipping: tp 1, fp 0, fn 1 -> P 1,   R 1/2, F1 2/3
    # login_access and cancellation never occur, so they stay out of the mean:
    #   macro-F1 = (3/4 + 2/3 + 2/3) / 3 = 25/36;  accuracy = 6/9.
    rows = [
        ("billing", "billing"),
        ("billing", "Billing."),
        ("billing", "It is a billing question"),
        ("billing", "refund"),
        ("refund", "REFUND"),
        ("refund", "refund"),
        ("refund", "billing"),
        ("shipping", "shipping"),
        ("shipping", "no idea"),
    ]
    samples = [sample(out, gold, id=f"t{i}") for i, (gold, out) in enumerate(rows)]
    scorer = Classification(labels=LABELS)
    assert [scorer.score(s).passed for s in samples] == [
        True,
        True,
        True,
        False,
        True,
        True,
        False,
        True,
        False,
    ]
    corpus = scorer.score_corpus(samples)
    assert corpus.value == pytest.approx(25 / 36)
    detail = json.loads(corpus.detail)
    assert detail["accuracy"] == pytest.approx(6 / 9)
    assert detail["macro_f1"] == pytest.approx(25 / 36)
    assert detail["no_label"] == 1 and detail["samples"] == 9
    assert detail["per_label"]["billing"] == pytest.approx(
        {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4}
    )
    assert detail["per_label"]["refund"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    assert detail["per_label"]["shipping"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    )
    assert detail["per_label"]["cancellation"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
    }


def test_classification_metrics_edge_cases() -> None:
    assert classification_metrics([], ["a"])["macro_f1"] == 0.0
    perfect = classification_metrics([("a", "a"), ("b", "b")], ["a", "b", "c"])
    assert perfect["macro_f1"] == 1.0 and perfect["accuracy"] == 1.0
    # A label predicted but never gold counts (precision 0), and lowers the mean.
    assert classification_metrics([("a", "a"), ("a", "b")], ["a", "b"])[
        "macro_f1"
    ] == pytest.approx((2 / 3 + 0) / 2)


# ---------------------------------------------------------------- bleu / chrf / rouge-l

HYPOTHESES = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over a lazy dog.",
    "Customers must confirm their address before we ship the order.",
    "Thank you for your patience.",
]
REFERENCES = [
    ["The cat is sitting on the mat.", "A cat sat on the mat."],
    ["The quick brown fox jumped over the lazy dog."],
    ["The customer must confirm the delivery address before we ship."],
    ["Thanks for your patience."],
]


def overlap_samples() -> list[Sample]:
    return [
        sample(h, r if len(r) > 1 else r[0], id=f"o{i}")
        for i, (h, r) in enumerate(zip(HYPOTHESES, REFERENCES, strict=True))
    ]


def reference_streams() -> list[list[str | None]]:
    return [[refs[i] if i < len(refs) else None for refs in REFERENCES] for i in range(2)]


def test_bleu_matches_sacrebleu() -> None:
    scorer = Bleu()
    expected = sacrebleu.corpus_bleu(HYPOTHESES, reference_streams()).score / 100  # type: ignore[arg-type]
    corpus = scorer.score_corpus(overlap_samples())
    assert corpus.value == pytest.approx(expected, abs=1e-12)
    assert (
        0.0 < corpus.value < 1.0 and corpus.passed is None and corpus.detail.startswith("BLEU = ")
    )
    for s, h, refs in zip(overlap_samples(), HYPOTHESES, REFERENCES, strict=True):
        assert scorer.score(s).value == pytest.approx(
            sacrebleu.sentence_bleu(h, refs).score / 100, abs=1e-12
        )
    # A resampled corpus (as a bootstrap draws it) scores like sacrebleu on the same rows.
    picks = [2, 2, 0, 3]
    resampled = [overlap_samples()[i] for i in picks]
    streams = [
        [REFERENCES[i][0] for i in picks],
        [REFERENCES[i][1] if len(REFERENCES[i]) > 1 else None for i in picks],
    ]
    expected = sacrebleu.corpus_bleu([HYPOTHESES[i] for i in picks], streams).score / 100  # type: ignore[arg-type]
    assert scorer.score_corpus(resampled).value == pytest.approx(expected, abs=1e-12)
    assert Bleu().score(
        sample("the same words here", "the same words here")
    ).value == pytest.approx(1.0)
    lowered = Bleu(lowercase=True).score_corpus(
        [sample("THE CAT SAT ON THE MAT", "the cat sat on the mat")]
    )
    assert lowered.value == pytest.approx(1.0)


def test_chrf_matches_sacrebleu() -> None:
    expected = sacrebleu.corpus_chrf(HYPOTHESES, reference_streams()).score / 100  # type: ignore[arg-type]
    assert Chrf().score_corpus(overlap_samples()).value == pytest.approx(expected, abs=1e-12)
    plus = sacrebleu.corpus_chrf(HYPOTHESES, reference_streams(), word_order=2).score / 100  # type: ignore[arg-type]
    assert Chrf(word_order=2).score_corpus(overlap_samples()).value == pytest.approx(
        plus, abs=1e-12
    )
    for s, h, refs in zip(overlap_samples(), HYPOTHESES, REFERENCES, strict=True):
        assert Chrf().score(s).value == pytest.approx(
            sacrebleu.sentence_chrf(h, refs).score / 100, abs=1e-12
        )
    graded = Chrf(threshold=0.5)
    assert (
        graded.score(sample("Thank you for your patience.", "Thanks for your patience.")).passed
        is True
    )
    assert graded.score(sample("Goodbye.", "Thanks for your patience.")).passed is False


def test_rouge_l_worked_examples() -> None:
    # Lin (2004): reference "police killed the gunman".
    #   "police kill the gunman": LCS "police the gunman" = 3 -> P = R = 3/4, F1 = 0.75
    #   "the gunman kill police": LCS "the gunman" = 2     -> P = R = 2/4, F1 = 0.5
    scorer = RougeL()
    assert scorer.score(
        sample("police kill the gunman", "police killed the gunman")
    ).value == pytest.approx(0.75)
    assert scorer.score(
        sample("the gunman kill police", "police killed the gunman")
    ).value == pytest.approx(0.5)
    # Unequal lengths: candidate 7 tokens, reference 6, LCS "the cat on the mat" = 5:
    #   P = 5/7, R = 5/6, F1 = 2PR/(P+R) = 10/13.
    score = scorer.score(sample("The cat, on the mat today please!", "the cat sat on the mat"))
    assert score.value == pytest.approx(10 / 13)
    assert score.detail == "P=0.7143 R=0.8333 F1=0.7692"
    # The best of several ideals counts; case matters only when asked.
    assert scorer.score(sample("a b c", ["x y", "A B C"])).value == 1.0
    assert RougeL(lowercase=False).score(sample("a b c", "A B C")).value == 0.0
    assert (
        RougeL(threshold=0.6)
        .score(sample("police kill the gunman", "police killed the gunman"))
        .passed
        is True
    )
    assert scorer.score(sample("", "words")).value == 0.0
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4


# ---------------------------------------------------------------- judge


class FakeJudge:
    """A deterministic stand-in for the judge model: records calls, replies from a script."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []

    def __call__(self, model: str, messages: list[dict[str, Any]]) -> str:
        self.calls.append((model, messages))
        return self.replies[(len(self.calls) - 1) % len(self.replies)]


def test_judge_pass_fail_and_prompt() -> None:
    chat = FakeJudge(
        "The reply names Paris, as the reference does.\nVERDICT: PASS",
        "Wrong city.\nVerdict: **FAIL**",
    )
    judge = Judge(rubric="The reply names the right city.", model="judge-model@prod", chat=chat)
    passed = judge.score(sample("It is Paris.", "Paris"))
    assert (passed.value, passed.passed) == (1.0, True)
    assert (
        passed.detail
        == "judge-model@prod: The reply names Paris, as the reference does. VERDICT: PASS"
    )
    failed = judge.score(sample("It is Lyon.", "Paris"))
    assert (failed.value, failed.passed) == (0.0, False)
    model, messages = chat.calls[0]
    assert model == "judge-model@prod"
    assert [m["role"] for m in messages] == ["system", "user"]
    prompt = messages[1]["content"]
    for part in (
        "user: What is the capital of France?",
        "[Reply to grade]\nIt is Paris.",
        "[Reference answer]\nParis",
        "[Rubric]\nThe reply names the right city.",
        "VERDICT: PASS",
    ):
        assert part in prompt
    Judge(rubric="r", model="m", chat=chat).score(sample("x", ["A", "B"]))
    assert "[Acceptable reference answers]\n- A\n- B" in chat.calls[-1][1][1]["content"]
    Judge(rubric="r", model="m", chat=chat).score(sample("x", None))
    assert "Reference" not in chat.calls[-1][1][1]["content"]


def test_judge_scale() -> None:
    chat = FakeJudge(
        "Mostly right.\nSCORE: 4", "Half there. Score: 3/5", "I'd say 2 out of 5.", "5"
    )
    judge = Judge(rubric="accurate", model="m", scale=5, chat=chat)
    values = [judge.score(sample("x", "y")) for _ in range(4)]
    assert [(s.value, s.passed) for s in values] == [
        (0.75, True),
        (0.5, True),
        (0.25, False),
        (1.0, True),
    ]
    strict = Judge(rubric="accurate", model="m", scale=5, threshold=0.8, chat=FakeJudge("SCORE: 4"))
    assert strict.score(sample("x", "y")).passed is False
    assert "from 1 (worst) to 5 (best)" in judge.messages(sample("x"))[1]["content"]


@pytest.mark.parametrize("scale", [None, 5])
def test_judge_unparseable_reply(scale: int | None) -> None:
    judge = Judge(rubric="r", model="m", scale=scale, chat=FakeJudge("I cannot decide, sorry."))
    score = judge.score(sample("x", "y"))
    assert (score.value, score.passed) == (0.0, False)
    assert score.detail == "unparseable judge reply: I cannot decide, sorry."


def test_judge_reply_parsing() -> None:
    assert parse_verdict("VERDICT: PASS") is True
    assert parse_verdict("verdict = fail") is False
    assert parse_verdict("Pass.") is True
    assert parse_verdict("**FAIL**") is False
    # The last explicit verdict wins over words in the reasoning.
    assert parse_verdict("It would FAIL a stricter rubric, but here: VERDICT: PASS") is True
    assert parse_verdict("It does not fail or pass anything") is None
    assert parse_verdict("PASS on tone, FAIL on facts") is None
    assert parse_grade("SCORE: 10", 10) == 1.0
    assert parse_grade("score: 7 out of 10", 5) == pytest.approx(6 / 9)
    assert parse_grade("SCORE: 0", 5) is None
    assert parse_grade("SCORE: 6", 5) is None
    assert parse_grade("great answer", 5) is None
