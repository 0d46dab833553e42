"""Entry point of the built-in "retrieval" plugin.

Cheap to import: bm25s (with numpy and scipy) and PyStemmer, the
`retrieval` extra, load when an index is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway import hookimpl

from .bm25 import Bm25

GATEWAY_REQUIRES = ["bm25s", "Stemmer"]
GATEWAY_EXTRA = "retrieval"


@hookimpl
def register_retrievers(register: Callable[[type[Any]], None]) -> None:
    register(Bm25)
