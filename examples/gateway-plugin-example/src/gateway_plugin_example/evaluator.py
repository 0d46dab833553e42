"""The `max-words` evaluator: passes when an output has at most `max_words` words.

An eval set selects it by name and passes options as keyword arguments:

    scorers:
      - name: max-words
        options: {max_words: 20}
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.contracts import Sample, Score
from gateway.errors import GatewayError

DEFAULT_MAX_WORDS = 50


class MaxWords:
    """Scores 1.0 (pass) for outputs within the word limit, 0.0 (fail) otherwise."""

    name: ClassVar[str] = "max-words"
    description: ClassVar[str] = "output has at most max_words words (an example)"
    corpus_level: ClassVar[bool] = False

    def __init__(self, max_words: Any = DEFAULT_MAX_WORDS, **unknown: Any) -> None:
        # Fail when the eval set is loaded, with a message naming the option,
        # rather than on the first sample.
        if unknown:
            raise GatewayError(
                f"evaluator 'max-words': unknown option {', '.join(sorted(unknown))} "
                "(known options: max_words)"
            )
        if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 0:
            raise GatewayError(
                f"evaluator 'max-words': option 'max_words' must be a whole number >= 0, "
                f"got {max_words!r}"
            )
        self.max_words = max_words

    def score(self, sample: Sample) -> Score:
        count = len(sample.output.split())
        passed = count <= self.max_words
        return Score(value=1.0 if passed else 0.0, passed=passed,
                     detail=f"{count} words (limit {self.max_words})")

    def score_corpus(self, samples: list[Sample]) -> Score:
        """The pass rate over the run; passes when every sample does."""
        scores = [self.score(s) for s in samples]
        passed = sum(1 for s in scores if s.passed)
        value = passed / len(scores) if scores else 0.0
        return Score(value=value, passed=passed == len(scores),
                     detail=f"{passed}/{len(scores)} within {self.max_words} words")
