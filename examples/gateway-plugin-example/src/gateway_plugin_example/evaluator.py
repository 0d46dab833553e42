"""The `max-words` evaluator: passes when an output has at most `max_words` words.

An eval set selects it by name and passes options as keyword arguments:

    scorers:
      - name: max-words
        options: {max_words: 20}

PerSampleEvaluator supplies the corpus score (the mean, with the pass rate);
Options checks the options when the eval set loads, naming a bad one.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.contracts import Options, PerSampleEvaluator, Sample, Score


class MaxWords(PerSampleEvaluator):
    """Scores 1.0 (pass) for outputs within the word limit, 0.0 (fail) otherwise."""

    name: ClassVar[str] = "max-words"
    description: ClassVar[str] = "output has at most max_words words (an example)"

    def __init__(self, **options: Any) -> None:
        reader = Options(self.name, options)
        self.max_words = reader.integer("max_words", 50, minimum=0) or 0
        reader.done()

    def score(self, sample: Sample) -> Score:
        count = len(sample.output.split())
        passed = count <= self.max_words
        return Score(value=1.0 if passed else 0.0, passed=passed,
                     detail=f"{count} words (limit {self.max_words})")
