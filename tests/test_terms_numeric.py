"""The terms and numeric evaluators, built by name through the plugin manager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.contracts import Sample
from gateway.errors import GatewayError
from gateway.plugins import get_evaluator_class


def sample(output: str, ideal: str | list[str] | None = None, **metadata: Any) -> Sample:
    return Sample(
        id="s1",
        messages=[{"role": "user", "content": "Tell me about the bond."}],
        ideal=ideal,
        output=output,
        metadata=metadata,
    )


def terms(gateway_home: Path, **options: Any) -> Any:
    return get_evaluator_class("terms")(**options)


def numeric(gateway_home: Path, **options: Any) -> Any:
    return get_evaluator_class("numeric")(**options)


# ---------------------------------------------------------------- terms


def test_terms_match_at_word_boundaries(gateway_home: Path) -> None:
    scorer = terms(gateway_home, required=["risk"])
    assert scorer.score(sample("This fund is risky.")).passed is False
    assert scorer.score(sample("There is some risk.")).passed is True
    assert scorer.score(sample("(risk)")).passed is True
    # A punctuation edge needs no boundary: "risk." followed by a letter still matches.
    dotted = terms(gateway_home, required=["Capital at risk."])
    assert dotted.score(sample("Capital at risk.Thanks")).passed is True
    assert dotted.score(sample("Capital at risk")).passed is False


def test_terms_ignore_case_unless_told(gateway_home: Path) -> None:
    assert terms(gateway_home, required=["APR"]).score(sample("the apr is 5%")).passed is True
    strict = terms(gateway_home, required=["APR"], case_sensitive=True)
    assert strict.score(sample("the apr is 5%")).passed is False
    assert strict.score(sample("the APR is 5%")).passed is True


def test_whitespace_runs_match_any_whitespace(gateway_home: Path) -> None:
    scorer = terms(gateway_home, required=["may go  down as well as up"])
    assert scorer.score(sample("Values may go\ndown as   well\tas up.")).passed is True
    assert scorer.score(sample("Values may go down as well as upward.")).passed is False
    assert scorer.score(sample("Values may godown as well as up.")).passed is False


def test_value_is_the_share_of_checks_and_detail_names_the_misses(gateway_home: Path) -> None:
    scorer = terms(
        gateway_home,
        required=["capital at risk", "may go down as well as up"],
        forbidden=["guaranteed returns", "risk-free"],
    )
    score = scorer.score(sample("Guaranteed returns! It may go down as well as up."))
    assert score.value == pytest.approx(2 / 4) and score.passed is False
    assert score.detail == 'missing: "capital at risk"; forbidden: "guaranteed returns"'
    good = scorer.score(sample("Capital at risk: it may go down as well as up."))
    assert good.value == 1.0 and good.passed is True
    assert good.detail == "4/4 checks satisfied"
    # The forbidden phrase needs word boundaries too.
    assert scorer.score(
        sample("Not risk-freely. Capital at risk; may go down as well as up")
    ).passed


def test_row_metadata_adds_terms(gateway_home: Path) -> None:
    scorer = terms(gateway_home, forbidden=["no risk"])
    row = sample(
        "The bond pays 4.2% AER. There is no risk.",
        required_terms=["AER", "early access charge"],
        forbidden_terms=["penalty"],
    )
    score = scorer.score(row)
    # 2 required (1 missing) + 2 forbidden (1 found): 2 of 4 checks.
    assert score.value == pytest.approx(0.5)
    assert score.detail == 'missing: "early access charge"; forbidden: "no risk"'
    # A term in both the options and the row counts once.
    twice = terms(gateway_home, required=["AER"])
    assert twice.score(sample("4.2% aer", required_terms=["AER"])).detail == "1/1 checks satisfied"
    with pytest.raises(GatewayError, match=r"metadata\.required_terms"):
        scorer.score(sample("x", required_terms=[3]))


def test_terms_without_any_term_is_a_configuration_error(gateway_home: Path) -> None:
    with pytest.raises(GatewayError, match="at least one term"):
        terms(gateway_home)
    with pytest.raises(GatewayError, match="empty term"):
        terms(gateway_home, required=["  "])
    with pytest.raises(GatewayError, match="unknown option"):
        terms(gateway_home, required=["a"], banned=["b"])
    with pytest.raises(GatewayError, match="must be true or false"):
        terms(gateway_home, required=["a"], case_sensitive="yes")


# ---------------------------------------------------------------- numeric


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("$1,250.00", [1250.0]),
        ("30 days", [30.0]),
        ("2.5%", [2.5]),
        ("£4.95 or -3 or +7", [4.95, -3.0, 7.0]),
        ("between 3-5 days, in 12,000 shops", [3.0, 5.0, 12000.0]),
        ("version 4.2.1 on A4 paper", [4.2]),
        ("no numbers here", []),
    ],
)
def test_numbers_are_read_from_the_text(text: str, numbers: list[float]) -> None:
    from gateway_evaluators.numeric import extract_numbers

    assert extract_numbers(text) == numbers


def test_numeric_compares_with_answer_value_or_the_ideal(gateway_home: Path) -> None:
    scorer = numeric(gateway_home)
    score = scorer.score(sample("You have 14 days, or 30 in store.", answer_value=14))
    assert score.value == 1.0 and score.passed is True
    assert score.detail == "expected 14; found 14, 30"
    # answer_value wins over the ideal's numbers.
    assert scorer.score(sample("It costs $1,250.00.", "about 99", answer_value=1250)).passed
    # Without answer_value, the first number of the ideal.
    assert scorer.score(sample("The fee is £4.95.", "£4.95 per return")).passed is True
    missed = scorer.score(sample("The fee is £5.", "£4.95 per return"))
    assert missed.value == 0.0 and missed.passed is False
    assert missed.detail == "expected 4.95; found 5"


def test_numeric_tolerance_and_relative(gateway_home: Path) -> None:
    row = sample("about 103", answer_value=100)
    assert numeric(gateway_home).score(row).passed is False
    assert numeric(gateway_home, tolerance=3).score(row).passed is True
    assert numeric(gateway_home, tolerance=2.5).score(row).passed is False
    assert numeric(gateway_home, relative=0.03).score(row).passed is True
    # The larger allowance applies.
    both = numeric(gateway_home, tolerance=1, relative=0.05).score(row)
    assert both.passed is True and both.detail == "expected 100 (±5); found 103"
    # Float rounding never decides: 0.1 + 0.2 against 0.3.
    assert numeric(gateway_home).score(sample(str(0.1 + 0.2), answer_value=0.3)).passed
    with pytest.raises(GatewayError, match="at least 0"):
        numeric(gateway_home, tolerance=-1)
    with pytest.raises(GatewayError, match="between 0 and 1"):
        numeric(gateway_home, relative=2)


def test_numeric_without_an_expected_number_scores_zero(gateway_home: Path) -> None:
    scorer = numeric(gateway_home)
    for row in (
        sample("14 days"),
        sample("14 days", "two weeks"),
        sample("14", answer_value="n/a"),
    ):
        score = scorer.score(row)
        assert score.value == 0.0 and score.passed is False
        assert "no expected number" in score.detail
    nothing = scorer.score(sample("two weeks", answer_value=14))
    assert nothing.passed is False and nothing.detail == "expected 14; found no number"
