"""Verdicts on a comparison: sentences, the regression gate, JUnit XML.

A scorer regresses when its paired-difference interval (the bootstrap one for
corpus-level scorers) lies wholly below −max_drop. The same rule drives
`gateway regress` (exit 1), `gateway compare --format junit` (a failure
element) and the report's verdict sentences.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.evaluation.compare import Comparison, ScorerComparison


def fmt_signed(x: float) -> str:
    return f"{x:+.3g}" if abs(x) < 1000 else f"{x:+.0f}"


def verdict_sentence(comparison: Comparison, sc: ScorerComparison, max_drop: float = 0.0) -> str:
    """One sentence a person can act on, naming both models and the interval."""
    a, b = comparison.run_a.label, comparison.run_b.label
    found = sc.decision_interval()
    if found is None:
        return f"{sc.scorer}: not enough paired data to compare {b} with {a}"
    est, low, high = found
    ci = f"{fmt_signed(est)} (95% CI {fmt_signed(low)} to {fmt_signed(high)})"
    verdict = sc.verdict(max_drop)
    if verdict == "better":
        return f"{b} is significantly better than {a} on {sc.scorer}: {ci}"
    if verdict == "worse":
        return f"{b} is significantly worse than {a} on {sc.scorer}: {ci}"
    if verdict == "regression":
        return f"{b} drops more than {max_drop:g} below {a} on {sc.scorer}: {ci}"
    return f"no significant difference between {b} and {a} on {sc.scorer}: {ci}"


@dataclass
class Decision:
    passed: bool
    max_drop: float
    reasons: list[str]
    failing: list[str]


def regression_decision(comparison: Comparison, max_drop: float = 0.0) -> Decision:
    """Fail when any scorer's paired-difference interval lies wholly below −max_drop."""
    failing = [
        sc.scorer for sc in comparison.scorers
        if (found := sc.decision_interval()) is not None and found[2] < -max_drop
    ]
    reasons = [verdict_sentence(comparison, sc, max_drop) for sc in comparison.scorers]
    if not comparison.scorers:
        reasons.append("the runs share no scored samples")
    return Decision(passed=not failing, max_drop=max_drop, reasons=reasons, failing=failing)


def to_junit(comparison: Comparison, max_drop: float = 0.0) -> str:
    """JUnit XML: one testcase per scorer, failing when B is significantly worse."""
    from xml.etree import ElementTree as ET

    decision = regression_decision(comparison, max_drop)
    suite = ET.Element(
        "testsuite",
        name=f"{comparison.run_a.evalset}: {comparison.run_b.label} vs {comparison.run_a.label}",
        tests=str(len(comparison.scorers)), failures=str(len(decision.failing)), errors="0",
    )
    for sc, reason in zip(comparison.scorers, decision.reasons, strict=False):
        case = ET.SubElement(
            suite, "testcase", classname=comparison.run_a.evalset, name=sc.scorer
        )
        if sc.scorer in decision.failing:
            failure = ET.SubElement(case, "failure", message=reason, type="regression")
            failure.text = reason
        else:
            ET.SubElement(case, "system-out").text = reason
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
