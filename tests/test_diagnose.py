"""The diagnosis statistics on constructed runs whose effects are known."""

from __future__ import annotations

import random

import pytest

from gateway.evaluation.lever_stats import (
    effect,
    interaction,
    minimal_detectable_effect,
    samples_needed,
    verdict,
)


def run(rate: float, n: int, seed: int) -> list[float]:
    """n pass/fail scores with `rate` passing, in a shuffled but seeded order."""
    passed = round(rate * n)
    scores = [1.0] * passed + [0.0] * (n - passed)
    random.Random(seed).shuffle(scores)
    return scores


def lifted(scores: list[float], extra: int, seed: int) -> list[float]:
    """The same samples with `extra` failures turned into passes (a known paired effect)."""
    out = list(scores)
    failed = [i for i, s in enumerate(out) if s == 0.0]
    for i in random.Random(seed).sample(failed, extra):
        out[i] = 1.0
    return out


N = 100
BASE = run(0.3, N, 1)


@pytest.mark.parametrize(("ft_extra", "r_extra", "expected"), [
    (40, 0, "behaviour"), (0, 40, "knowledge"), (40, 40, "both"), (0, 0, "neither"),
])
def test_each_verdict_branch(ft_extra: int, r_extra: int, expected: str) -> None:
    ft = effect("fine-tuning", BASE, lifted(BASE, ft_extra, 2))
    retrieval = effect("retrieval", BASE, lifted(BASE, r_extra, 3))
    assert ft.interval.estimate == pytest.approx(ft_extra / N)
    result = verdict(ft, retrieval)
    assert result.kind == expected, result.sentence
    if expected == "behaviour":
        assert result.sentence.startswith("behaviour problem: fine-tuning helps (+0.400, 95% CI")


def test_too_few_samples_is_said_with_the_detectable_effect() -> None:
    base = run(0.4, 12, 4)
    ft = effect("fine-tuning", base, lifted(base, 2, 5))  # +0.167 on 12 samples: not conclusive
    retrieval = effect("retrieval", base, base)
    result = verdict(ft, retrieval)
    assert result.kind == "unclear"
    assert "not enough samples to tell: fine-tuning +0.167" in result.sentence
    assert "smallest detectable effect" in result.sentence and "needs about" in result.sentence


def test_minimal_detectable_effect_and_samples_needed() -> None:
    diffs = [1.0, 0.0] * 50  # sd 0.5025
    # (1.960 + 0.842) * 0.5025 / 10
    assert minimal_detectable_effect(diffs) == pytest.approx(2.8016 * 0.50252 / 10, rel=1e-3)
    assert samples_needed(diffs, 0.1) == 199  # (2.8016 * 0.50252 / 0.1) ** 2 = 198.2
    assert minimal_detectable_effect([1.0]) is None and samples_needed([1.0, 1.0], 0.2) == 2


def test_interaction_is_the_difference_of_the_retrieval_effects() -> None:
    ft = lifted(BASE, 30, 6)
    base_r = lifted(BASE, 20, 7)
    ft_r = lifted(ft, 20, 8)
    same = interaction(BASE, base_r, ft, ft_r)
    assert same.interval.estimate == pytest.approx(0.0)
    weaker = interaction(BASE, base_r, ft, ft)  # retrieval adds nothing to the fine-tune
    assert weaker.interval.estimate == pytest.approx(-0.2) and weaker.interval.high < 0
