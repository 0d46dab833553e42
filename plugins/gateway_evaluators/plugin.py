"""Entry point of the built-in "evaluators" plugin.

Cheap to import: the evaluator modules use the standard library at import
time; sacrebleu (the `evals` extra) and jsonschema load when an evaluator
that needs them is built, so the plugin loads without sacrebleu.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway import hookimpl

from .classification import Classification
from .judge import Judge
from .numeric import Numeric
from .overlap import Bleu, Chrf, RougeL
from .structured import Json
from .terms import Terms
from .text import Exact, Includes, Regex

# Nothing is required to load; only bleu and chrf need the evals extra, and
# they say so when built without it.
GATEWAY_REQUIRES: list[str] = []
GATEWAY_EXTRA = "evals"

EVALUATORS: list[type[Any]] = [
    Exact,
    Includes,
    Regex,
    Terms,
    Numeric,
    Json,
    Classification,
    Bleu,
    Chrf,
    RougeL,
    Judge,
]


@hookimpl
def register_evaluators(register: Callable[[type[Any]], None]) -> None:
    for evaluator in EVALUATORS:
        register(evaluator)
