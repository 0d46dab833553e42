"""Paired statistics for comparing eval runs, in plain Python.

Choices, stated once:

- Confidence intervals of a mean use Student's t with n - 1 degrees of
  freedom (it tends to the normal interval as n grows, and is honest for the
  small eval sets people really have). A pass rate (scores that are all 0 or
  1) uses the Wilson score interval instead, which stays inside [0, 1] and
  behaves at 0% and 100%; a clustered pass rate keeps its cluster-robust t
  interval, cut to [0, 1].
- A paired difference is B − A per shared sample; its SE is sd(d)/sqrt(n).
- With clusters (several samples from one source document, conversation...),
  the SE is cluster-robust (CR1): residuals are summed within each cluster,
  V = G/(G−1) · Σ_g (Σ_{i∈g} (d_i − d̄))² / n², and the interval uses t with
  G − 1 degrees of freedom.
- McNemar's test is exact: a two-sided binomial test on the discordant pairs.
- The paired bootstrap resamples sample indices (the same indices for both
  runs) and recomputes a corpus-level metric; its interval is the percentile
  interval and its p-value is two-sided: 2·min(P(Δ* ≤ 0), P(Δ* ≥ 0)), each
  with add-one smoothing, capped at 1.

Heavy aggregation happens in DuckDB; the *_from_moments functions take the
sums it returns, so nothing here ever loops over a million rows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any, TypeVar

T = TypeVar("T")

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate with its standard error and confidence interval.

    se/low/high are None when they cannot be computed (fewer than two
    observations, or a single cluster).
    """

    estimate: float
    se: float | None
    low: float | None
    high: float | None
    n: int
    df: float | None = None
    method: str = "t"
    clusters: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "estimate": self.estimate, "se": self.se, "low": self.low, "high": self.high,
            "n": self.n, "df": self.df, "method": self.method, "clusters": self.clusters,
        }


@dataclass(frozen=True)
class BootstrapResult:
    """A paired bootstrap of a corpus-level metric: B − A with its interval."""

    a: float
    b: float
    diff: float
    low: float
    high: float
    p_value: float
    resamples: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b, "diff": self.diff, "low": self.low, "high": self.high,
            "p_value": self.p_value, "resamples": self.resamples, "seed": self.seed,
        }


# ---------------------------------------------------------------- distributions


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(x: float, df: float) -> float:
    """P(T ≤ x) for Student's t with df degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + x * x))
    return 1.0 - tail if x > 0 else tail


def t_quantile(p: float, df: float | None) -> float:
    """The p-quantile of Student's t (the normal one when df is None)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    z = NormalDist().inv_cdf(p)
    if df is None or df > 1e7:
        return z
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    # Bisection on the monotone CDF; the t quantile lies above the normal one.
    lo, hi = z, max(2.0 * z, 1.0)
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------- means and diffs


def interval_from_moments(
    n: int,
    mean: float,
    variance: float | None,
    confidence: float = CONFIDENCE,
    method: str = "t",
) -> Interval:
    """A t interval for a mean from n, the mean and the sample variance (n − 1)."""
    if n < 2 or variance is None or math.isnan(variance):
        return Interval(mean, None, None, None, n, None, method)
    se = math.sqrt(max(variance, 0.0) / n)
    df = float(n - 1)
    half = t_quantile(0.5 + confidence / 2.0, df) * se
    return Interval(mean, se, mean - half, mean + half, n, df, method)


def run_mean_interval(n: int, mean: float, variance: float | None, binary: bool) -> Interval:
    """One run's mean with its 95% interval: Wilson for a pass rate (all 0/1), else t."""
    if binary and n:
        return wilson_interval(round(mean * n), n)
    return interval_from_moments(n, mean, variance)


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The Wilson score interval for a proportion successes/n."""
    if n < 1:
        raise ValueError("no observations")
    p = successes / n
    z = t_quantile(0.5 + confidence / 2.0, None)
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    se = math.sqrt(p * (1 - p) / n)
    # Exact bounds at the edges: 0/n and n/n must not show floating-point residue.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, se, low, high, n, None, "wilson")


def clamp(interval: Interval, lo: float, hi: float) -> Interval:
    """The interval cut to [lo, hi]: for means of bounded scores (pass rates)."""
    if interval.low is None or interval.high is None:
        return interval
    return replace(interval, low=max(lo, interval.low), high=min(hi, interval.high))


def clustered_from_sums(
    n: int,
    mean: float,
    clusters: int,
    residual_square_sum: float,
    confidence: float = CONFIDENCE,
) -> Interval:
    """A cluster-robust (CR1) interval for a mean.

    `residual_square_sum` is Σ_g (Σ_{i∈g} (x_i − mean))² over the G clusters.
    """
    if clusters < 2 or n < 2:
        return Interval(mean, None, None, None, n, None, "cluster-robust", clusters)
    variance = clusters / (clusters - 1) * residual_square_sum / (n * n)
    se = math.sqrt(max(variance, 0.0))
    df = float(clusters - 1)
    half = t_quantile(0.5 + confidence / 2.0, df) * se
    return Interval(mean, se, mean - half, mean + half, n, df, "cluster-robust", clusters)


def _mean_var(values: Sequence[float]) -> tuple[float, float | None]:
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    return mean, math.fsum((v - mean) ** 2 for v in values) / (n - 1)


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of `values` with its t confidence interval."""
    mean, var = _mean_var(values)
    return interval_from_moments(len(values), mean, var, confidence)


def cluster_robust(
    values: Sequence[float], clusters: Sequence[Any], confidence: float = CONFIDENCE
) -> Interval:
    """The mean of `values` with a CR1 cluster-robust interval."""
    if len(values) != len(clusters):
        raise ValueError("values and clusters differ in length")
    mean, _ = _mean_var(values)
    sums: dict[Any, float] = {}
    for value, cluster in zip(values, clusters, strict=True):
        sums[cluster] = sums.get(cluster, 0.0) + (value - mean)
    square_sum = math.fsum(s * s for s in sums.values())
    return clustered_from_sums(len(values), mean, len(sums), square_sum, confidence)


def paired_diff(
    a: Sequence[float],
    b: Sequence[float],
    clusters: Sequence[Any] | None = None,
    confidence: float = CONFIDENCE,
) -> Interval:
    """B − A over paired samples: mean difference, paired SE and interval."""
    if len(a) != len(b):
        raise ValueError("paired runs must have the same number of samples")
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    if clusters is not None:
        return cluster_robust(diffs, clusters, confidence)
    mean, var = _mean_var(diffs)
    return interval_from_moments(len(diffs), mean, var, confidence, "paired-t")


def win_tie_loss(a: Sequence[float], b: Sequence[float]) -> tuple[int, int, int]:
    """How often B beats, ties and loses to A, sample by sample."""
    wins = ties = losses = 0
    for x, y in zip(a, b, strict=True):
        if y > x:
            wins += 1
        elif y < x:
            losses += 1
        else:
            ties += 1
    return wins, ties, losses


# ---------------------------------------------------------------- tests


def _log_binom_half(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2.0)


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts b and c.

    Under H0 the b + c discordant pairs split as Binomial(b + c, 1/2);
    p = min(1, 2·P(X ≤ min(b, c))).
    """
    if b < 0 or c < 0:
        raise ValueError("counts must be non-negative")
    n, k = b + c, min(b, c)
    if n == 0 or b == c:
        return 1.0
    if n <= 1000:
        # Exact integer arithmetic: no rounding until the final division.
        tail = sum(math.comb(n, i) for i in range(k + 1))
        return min(1.0, 2.0 * tail / float(2**n))
    # Large n: sum the tail in log space downward from k; terms fall geometrically.
    first = _log_binom_half(n, k)
    total, term, i = 1.0, 1.0, k
    while i > 0:
        term *= i / (n - i + 1)
        total += term
        if term < total * 1e-17:
            break
        i -= 1
    return min(1.0, 2.0 * math.exp(first + math.log(total)))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation, like numpy's default."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


def paired_bootstrap(
    a_items: Sequence[T],
    b_items: Sequence[T],
    metric: Callable[[list[T]], float],
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> BootstrapResult:
    """Paired bootstrap of metric(B) − metric(A).

    Each resample draws n sample indices with replacement (random.Random(seed))
    and applies them to both runs, so the pairing is kept.
    """
    n = len(a_items)
    if n != len(b_items):
        raise ValueError("paired runs must have the same number of samples")
    if n == 0 or resamples < 1:
        raise ValueError("need at least one sample and one resample")
    rng = random.Random(seed)
    a_value, b_value = metric(list(a_items)), metric(list(b_items))
    diffs: list[float] = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        diffs.append(metric([b_items[i] for i in idx]) - metric([a_items[i] for i in idx]))
    alpha = 1.0 - confidence
    low, high = percentile(diffs, 100 * alpha / 2), percentile(diffs, 100 * (1 - alpha / 2))
    at_or_below = sum(1 for d in diffs if d <= 0)
    at_or_above = sum(1 for d in diffs if d >= 0)
    p = min(1.0, 2.0 * (min(at_or_below, at_or_above) + 1) / (resamples + 1))
    return BootstrapResult(a_value, b_value, b_value - a_value, low, high, p, resamples, seed)
