"""Reference-overlap evaluators: bleu and chrf (sacrebleu) and rouge-l (built in).

Values are on a 0..1 scale (sacrebleu reports 0..100). They are graded, so a
sample passes or fails only when the eval set gives a `threshold`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from gateway.contracts import GatewayError, Options, PerSampleEvaluator, Sample, Score

from .options import ideals, threshold_score

INSTALL_HINT = "pip install 'finetune-gateway[evals]'"


def _import_sacrebleu(evaluator: str) -> Any:
    try:
        import sacrebleu
    except ImportError as exc:
        raise GatewayError(f"evaluator {evaluator!r} needs sacrebleu: {INSTALL_HINT}") from exc
    return sacrebleu


class _SacreBleuMetric(PerSampleEvaluator):
    """Corpus score from sacrebleu's corpus statistics; sentence scores per sample."""

    name: ClassVar[str]
    description: ClassVar[str]
    corpus_level: ClassVar[bool] = True

    corpus_metric: Any
    sentence_metric: Any
    threshold: float | None
    _cache: dict[tuple[str, tuple[str, ...]], list[Any]]

    def score(self, sample: Sample) -> Score:
        result = self.sentence_metric.sentence_score(sample.output, ideals(sample, self.name))
        return threshold_score(result.score / 100.0, self.threshold, str(result))

    def score_corpus(self, samples: list[Sample]) -> Score:
        if not samples:
            return Score(value=0.0, passed=None, detail="no samples")
        stats = [self._statistics(s.output, tuple(ideals(s, self.name))) for s in samples]
        # Summing per-sample statistics is exactly what corpus_score does; keeping
        # them lets a bootstrap over resampled samples re-score in microseconds.
        result = self.corpus_metric._aggregate_and_compute(stats)
        return threshold_score(result.score / 100.0, self.threshold, str(result))

    def _statistics(self, output: str, references: tuple[str, ...]) -> list[Any]:
        key = (output, references)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            streams = [[r] for r in references]
            found = self._cache[key] = self.corpus_metric._extract_corpus_statistics(
                [output], streams
            )[0]
        return found


class Bleu(_SacreBleuMetric):
    """Corpus BLEU (sacrebleu's defaults: 13a tokenizer, exp smoothing); per sample,
    sentence BLEU with effective order. Options: tokenize, lowercase,
    smooth_method, threshold."""

    name: ClassVar[str] = "bleu"
    description: ClassVar[str] = "BLEU against the ideal(s), corpus-level via sacrebleu, 0..1"

    def __init__(self, **options: Any) -> None:
        opts = Options(self.name, options)
        tokenize = opts.text("tokenize", None)
        lowercase = opts.flag("lowercase", False)
        smooth = opts.choice("smooth_method", ("exp", "floor", "add-k", "none"), "exp")
        self.threshold = opts.fraction("threshold", None)
        opts.done()
        sacrebleu = _import_sacrebleu(self.name)
        known = sacrebleu.BLEU.TOKENIZERS
        if tokenize is not None and tokenize not in known:
            raise opts.error("tokenize", f"must be one of {', '.join(known)}, got {tokenize!r}")
        settings = {"tokenize": tokenize, "lowercase": lowercase, "smooth_method": smooth}
        self.corpus_metric = sacrebleu.BLEU(**settings)
        self.sentence_metric = sacrebleu.BLEU(**settings, effective_order=True)
        self._cache = {}


class Chrf(_SacreBleuMetric):
    """Corpus chrF (chrF++ with word_order: 2) via sacrebleu; per sample, sentence chrF.
    Options: char_order, word_order, beta, lowercase, whitespace, threshold."""

    name: ClassVar[str] = "chrf"
    description: ClassVar[str] = "chrF against the ideal(s), corpus-level via sacrebleu, 0..1"

    def __init__(self, **options: Any) -> None:
        opts = Options(self.name, options)
        settings = {
            "char_order": opts.integer("char_order", 6, minimum=1),
            "word_order": opts.integer("word_order", 0, minimum=0),
            "beta": opts.integer("beta", 2, minimum=0),
            "lowercase": opts.flag("lowercase", False),
            "whitespace": opts.flag("whitespace", False),
        }
        self.threshold = opts.fraction("threshold", None)
        opts.done()
        sacrebleu = _import_sacrebleu(self.name)
        self.corpus_metric = sacrebleu.CHRF(**settings)
        self.sentence_metric = self.corpus_metric
        self._cache = {}


_TOKEN = re.compile(r"\w+")


def tokens(text: str, lowercase: bool = True) -> list[str]:
    return _TOKEN.findall(text.lower() if lowercase else text)


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, two rows)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(candidate: list[str], reference: list[str]) -> tuple[float, float, float]:
    """ROUGE-L (Lin 2004) precision, recall and F1 (beta = 1) over tokens."""
    if not candidate and not reference:
        return 1.0, 1.0, 1.0
    if not candidate or not reference:
        return 0.0, 0.0, 0.0
    lcs = lcs_length(candidate, reference)
    if lcs == 0:
        return 0.0, 0.0, 0.0
    precision, recall = lcs / len(candidate), lcs / len(reference)
    return precision, recall, 2 * precision * recall / (precision + recall)


class RougeL(PerSampleEvaluator):
    """ROUGE-L F1 per sample: the longest common token subsequence with the
    ideal (the best ideal when there are several). Words are \\w+ runs,
    lowercased unless `lowercase: false`. Options: lowercase, threshold."""

    name: ClassVar[str] = "rouge-l"
    description: ClassVar[str] = (
        "ROUGE-L F1 (longest common token subsequence) against the ideal(s)"
    )

    def __init__(self, **options: Any) -> None:
        opts = Options(self.name, options)
        self.lowercase = opts.flag("lowercase", True)
        self.threshold = opts.fraction("threshold", None)
        opts.done()

    def score(self, sample: Sample) -> Score:
        candidate = tokens(sample.output, self.lowercase)
        best = (0.0, 0.0, 0.0)
        for ideal in ideals(sample, self.name):
            scores = rouge_l(candidate, tokens(ideal, self.lowercase))
            if scores[2] >= best[2]:
                best = scores
        precision, recall, f1 = best
        return threshold_score(f1, self.threshold, f"P={precision:.4f} R={recall:.4f} F1={f1:.4f}")
