"""The classification evaluator: per-sample correctness, corpus accuracy and macro-F1."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, ClassVar

from gateway.contracts import GatewayError, Options, PerSampleEvaluator, Sample, Score

from .options import collapse_whitespace, ideals, strip_punctuation


def normalise_label(text: str) -> str:
    """Lowercase; underscores, hyphens and punctuation become spaces."""
    text = re.sub(r"[_\-/]", " ", text.lower())
    return collapse_whitespace(strip_punctuation(text)).strip()


class Classification(PerSampleEvaluator):
    """Maps each output to one of `labels` and scores it against the ideal label.

    An output that is a label after normalisation ("Login-Access." is
    login_access) maps to it; otherwise the label mentioned first wins (the
    longer one when two start at the same place); no label mentioned means no
    prediction, which counts as wrong. The corpus value is macro-F1 over the
    labels that occur as ideal or prediction; the detail holds the accuracy
    and each label's precision, recall, F1 and support as JSON.
    """

    name: ClassVar[str] = "classification"
    description: ClassVar[str] = (
        "maps the output to a label; per-sample correctness, corpus macro-F1 and accuracy"
    )
    corpus_level: ClassVar[bool] = True

    def __init__(self, **options: Any) -> None:
        opts = Options(self.name, options)
        labels = opts.text_list("labels")
        opts.done()
        if labels is None:
            raise opts.error("labels", "is required: the list of allowed labels")
        self.labels = labels
        self._by_normal: dict[str, str] = {}
        for label in labels:
            normal = normalise_label(label)
            if not normal:
                raise opts.error("labels", f"holds a label with no letters or digits: {label!r}")
            if normal in self._by_normal:
                raise opts.error("labels", f"holds {label!r} twice (after normalisation)")
            self._by_normal[normal] = label
        self._pairs: dict[tuple[str, str], tuple[str, str | None]] = {}
        # Longest first so that "account update" wins over "account" at the same position.
        alternatives = sorted(self._by_normal, key=len, reverse=True)
        self._mention = re.compile(
            r"(?<!\w)(" + "|".join(map(re.escape, alternatives)) + r")(?!\w)"
        )

    def predict(self, output: str) -> str | None:
        """The label an output names, or None."""
        normal = normalise_label(output)
        if normal in self._by_normal:
            return self._by_normal[normal]
        match = self._mention.search(normal)
        return self._by_normal[match.group(1)] if match else None

    def gold(self, sample: Sample) -> list[str]:
        """The sample's acceptable labels; an ideal outside the taxonomy is an eval set error."""
        found = []
        for ideal in ideals(sample, self.name):
            label = self._by_normal.get(normalise_label(ideal))
            if label is None:
                raise GatewayError(
                    f"evaluator 'classification': the ideal {ideal!r} of sample {sample.id!r} "
                    f"is not one of the labels ({', '.join(self.labels)})"
                )
            found.append(label)
        return found

    def score(self, sample: Sample) -> Score:
        gold = self.gold(sample)
        predicted = self.predict(sample.output)
        if predicted is None:
            return Score(
                value=0.0, passed=False, detail=f"no label in output; expected {gold[0]!r}"
            )
        if predicted in gold:
            return Score(value=1.0, passed=True, detail=f"predicted {predicted!r}")
        return Score(
            value=0.0, passed=False, detail=f"predicted {predicted!r}, expected {gold[0]!r}"
        )

    def score_corpus(self, samples: list[Sample]) -> Score:
        pairs = []
        for sample in samples:
            # A bootstrap re-scores the same samples many times: map each once.
            key = (sample.output, str(sample.ideal))
            pair = self._pairs.get(key)
            if pair is None:
                gold, predicted = self.gold(sample), self.predict(sample.output)
                pair = self._pairs[key] = (predicted if predicted in gold else gold[0], predicted)
            pairs.append(pair)
        metrics = classification_metrics(pairs, self.labels)
        return Score(value=metrics["macro_f1"], passed=None, detail=json.dumps(metrics))


def classification_metrics(
    pairs: list[tuple[str, str | None]], labels: list[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-label P/R/F1 from (gold, predicted) pairs.

    Macro-F1 averages over the labels that occur as gold or prediction, so a
    label absent from the data neither helps nor hurts. A None prediction is
    a miss for the gold label and a false positive for no label.
    """
    golds = Counter(g for g, _ in pairs)
    predictions = Counter(p for _, p in pairs)
    hits = Counter(g for g, p in pairs if g == p)
    per_label: dict[str, dict[str, float]] = {}
    present = []
    for label in labels:
        tp = hits[label]
        fp = predictions[label] - tp
        fn = golds[label] - tp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
        if tp + fp + fn:
            present.append(f1)
    n = len(pairs)
    return {
        "accuracy": sum(hits.values()) / n if n else 0.0,
        "macro_f1": sum(present) / len(present) if present else 0.0,
        "samples": n,
        "no_label": predictions[None],
        "per_label": per_label,
    }
