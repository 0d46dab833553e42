"""Paired statistics against values computed by hand (the working is in the comments)."""

from __future__ import annotations

import math

import pytest

from gateway.evaluation import stats


def test_t_quantiles_match_printed_tables() -> None:
    assert stats.t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    assert stats.t_quantile(0.975, 4) == pytest.approx(2.776445, abs=1e-6)
    assert stats.t_quantile(0.975, 10) == pytest.approx(2.228139, abs=1e-6)
    assert stats.t_quantile(0.975, 30) == pytest.approx(2.042272, abs=1e-6)
    assert stats.t_quantile(0.025, 4) == pytest.approx(-2.776445, abs=1e-6)
    assert stats.t_quantile(0.975, None) == pytest.approx(1.959964, abs=1e-6)


def test_mean_ci_by_hand() -> None:
    # [1, 2, 3, 4]: mean 2.5; squared deviations 2.25+0.25+0.25+2.25 = 5, var = 5/3;
    # se = sqrt(5/3 / 4) = 0.645497; t(0.975, 3) = 3.182446; half = 2.054260.
    ci = stats.mean_ci([1.0, 2.0, 3.0, 4.0])
    assert ci.estimate == 2.5
    assert ci.se == pytest.approx(0.645497, abs=1e-6)
    assert ci.low == pytest.approx(0.445740, abs=1e-5)
    assert ci.high == pytest.approx(4.554260, abs=1e-5)
    assert ci.df == 3


def test_mean_ci_of_one_value_has_no_interval() -> None:
    ci = stats.mean_ci([0.7])
    assert (ci.estimate, ci.se, ci.low, ci.high) == (0.7, None, None, None)


def test_paired_difference_by_hand() -> None:
    # d = b - a = [0.3, 0.2, -0.1, 0.3, 0.3]; mean 0.2; deviations 0.1, 0, -0.3, 0.1, 0.1;
    # squares sum 0.12, var = 0.03, se = sqrt(0.03/5) = 0.0774597;
    # t(0.975, 4) = 2.776445 -> half = 0.215062 -> CI (-0.015062, 0.415062).
    a = [0.2, 0.4, 0.5, 0.7, 0.9]
    b = [0.5, 0.6, 0.4, 1.0, 1.2]
    diff = stats.paired_diff(a, b)
    assert diff.estimate == pytest.approx(0.2)
    assert diff.se == pytest.approx(0.0774597, abs=1e-7)
    assert diff.low == pytest.approx(-0.015062, abs=1e-6)
    assert diff.high == pytest.approx(0.415062, abs=1e-6)
    assert diff.method == "paired-t"
    # The same numbers from moments, the path compare takes with DuckDB's aggregates.
    again = stats.interval_from_moments(5, 0.2, 0.03)
    assert again.low == pytest.approx(diff.low) and again.high == pytest.approx(diff.high)
    assert stats.win_tie_loss(a, b) == (4, 0, 1)


def test_cluster_robust_se_by_hand() -> None:
    # d = [1..6], clusters x x y y z z: mean 3.5, residuals -2.5 -1.5 | -0.5 0.5 | 1.5 2.5;
    # cluster sums -4, 0, 4 -> squares 32; V = G/(G-1) * 32 / n^2 = 1.5 * 32 / 36 = 4/3;
    # se = 1.154701; t(0.975, G-1=2) = 4.302653 -> half = 4.968275.
    d = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    ci = stats.cluster_robust(d, ["x", "x", "y", "y", "z", "z"])
    assert ci.se == pytest.approx(math.sqrt(4 / 3))
    assert ci.clusters == 3 and ci.df == 2
    assert ci.low == pytest.approx(3.5 - 4.968275, abs=1e-5)
    assert ci.high == pytest.approx(3.5 + 4.968275, abs=1e-5)
    # Clustering widens the interval here: unclustered se = sqrt(3.5/6) = 0.763763.
    assert stats.mean_ci(d).se == pytest.approx(0.763763, abs=1e-6)
    # paired_diff with clusters goes through the same path.
    zeros = [0.0] * 6
    assert stats.paired_diff(zeros, d, clusters=list("xxyyzz")).se == pytest.approx(ci.se)
    # One cluster: no interval at all rather than a false one.
    assert stats.cluster_robust(d, ["x"] * 6).low is None


def test_mcnemar_exact_known_tables() -> None:
    # b=2, c=8: 2 * (C(10,0)+C(10,1)+C(10,2)) / 2^10 = 2 * 56/1024 = 0.109375.
    assert stats.mcnemar_exact(2, 8) == pytest.approx(0.109375, abs=1e-12)
    assert stats.mcnemar_exact(8, 2) == pytest.approx(0.109375, abs=1e-12)
    # b=0, c=5: 2 * 1/32.
    assert stats.mcnemar_exact(0, 5) == pytest.approx(0.0625)
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(4, 4) == 1.0
    # Large n takes the log-space path; check it against exact integers.
    n, k = 1500, 700
    exact = 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    assert stats.mcnemar_exact(k, n - k) == pytest.approx(exact, rel=1e-9)


def test_percentiles_interpolate_like_numpy() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert stats.percentile(values, 50) == 2.5
    assert stats.percentile(values, 95) == pytest.approx(3.85)
    assert stats.percentile(values, 0) == 1.0 and stats.percentile(values, 100) == 4.0


def accuracy(items: list[tuple[str, str]]) -> float:
    return sum(1 for out, ideal in items if out == ideal) / len(items)


def test_paired_bootstrap_is_seeded_and_stable() -> None:
    ideal = ["x"] * 40
    a = [("x" if i % 2 else "y", ideal[i]) for i in range(40)]  # 20/40 right
    b = [("x" if i % 4 else "y", ideal[i]) for i in range(40)]  # 30/40 right, a superset
    first = stats.paired_bootstrap(a, b, accuracy, resamples=500, seed=7)
    second = stats.paired_bootstrap(a, b, accuracy, resamples=500, seed=7)
    assert first == second
    assert (first.a, first.b, first.diff) == (0.5, 0.75, 0.25)
    # B is right wherever A is, so no resample can favour A: p = 2·(0+1)/(500+1).
    assert first.low > 0
    assert first.p_value == pytest.approx(2 / 501)
    # Pinned: the interval this seed gives (random.Random is stable across versions).
    assert (round(first.low, 4), round(first.high, 4)) == (0.1, 0.375)
    other = stats.paired_bootstrap(a, b, accuracy, resamples=500, seed=8)
    assert other.low == pytest.approx(first.low, abs=0.05)


def test_paired_bootstrap_agrees_with_t_interval_for_a_mean() -> None:
    a = [float(i % 7) for i in range(200)]
    b = [x + (1.0 if i % 3 else -0.5) for i, x in enumerate(a)]
    t = stats.paired_diff(a, b)
    boot = stats.paired_bootstrap(a, b, lambda xs: sum(xs) / len(xs), resamples=1000, seed=1)
    assert boot.diff == pytest.approx(t.estimate)
    assert t.low is not None and t.high is not None
    assert boot.low == pytest.approx(t.low, abs=0.05)
    assert boot.high == pytest.approx(t.high, abs=0.05)


def test_no_difference_gives_large_p() -> None:
    a = [("x", "x"), ("y", "x")] * 10
    boot = stats.paired_bootstrap(a, list(a), accuracy, resamples=200, seed=0)
    assert boot.diff == 0 and boot.low == 0 and boot.high == 0
    assert boot.p_value == 1.0


def test_wilson_interval_by_hand() -> None:
    # 8 of 10: z = 1.959964, z²/n = 0.384146; centre = (0.8 + 0.192073) / 1.384146 = 0.716740;
    # half = z·sqrt(0.016 + 0.00960365) / 1.384146 = 0.313616 / 1.384146 = 0.226578
    # -> (0.490162, 0.943318).
    ci = stats.wilson_interval(8, 10)
    assert ci.estimate == 0.8 and ci.method == "wilson"
    assert ci.low == pytest.approx(0.490162, abs=1e-5)
    assert ci.high == pytest.approx(0.943318, abs=1e-5)
    # 100% still gets an interval below 1, unlike the t interval (which collapses to 1–1).
    full = stats.wilson_interval(12, 12)
    assert full.high == 1.0 and full.low is not None and full.low < 0.8


def test_clamp_cuts_only_the_bounds() -> None:
    # 7 of 8: se = sqrt(0.125/8) = 0.125, t(0.975, 7) = 2.364624 -> 0.579422 to 1.170578.
    ci = stats.clamp(stats.mean_ci([1.0] * 7 + [0.0]), 0.0, 1.0)
    assert ci.estimate == 0.875 and ci.high == 1.0
    assert ci.low == pytest.approx(0.579422, abs=1e-6)
    assert stats.clamp(stats.mean_ci([0.5]), 0.0, 1.0).low is None
