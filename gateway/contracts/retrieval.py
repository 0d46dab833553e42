"""What retrievers (the `retrieve:K` prompt variant's search) receive and return."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable


@dataclass(frozen=True)
class Passage:
    """One chunk of a corpus document; `id` is `DOC#N` (see docs/plugins.md)."""

    id: str
    text: str


@dataclass(frozen=True)
class Hit:
    """One retrieved passage and the retriever's score for it (higher is better)."""

    id: str
    score: float


@runtime_checkable
class Retriever(Protocol):
    """Finds the passages of a corpus that best match a query.

    Registered as a class with a unique `name` (what `retriever:` in
    evalset.yaml or `--retriever` picks) and built as `Retriever(**options)`.
    `fingerprint()` names everything that changes the ranking (model,
    parameters), for the run's fingerprint and the cache key. `index` is
    called once per corpus with a folder that is the retriever's own for that
    corpus and these settings: save the index there and load it from there
    next time (the host keys the folder by the corpus hash). `search` then
    answers a batch of queries with the top `k` hits each, best first.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def fingerprint(self) -> dict[str, Any]: ...

    def index(self, passages: list[Passage], cache_dir: Path) -> None: ...

    def search(self, queries: list[str], k: int) -> list[list[Hit]]: ...


class BaseRetriever:
    """Defaults for a Retriever: no options, so an empty fingerprint."""

    name: ClassVar[str]
    description: ClassVar[str]

    def fingerprint(self) -> dict[str, Any]:
        return {}

    def index(self, passages: list[Passage], cache_dir: Path) -> None:
        raise NotImplementedError

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        raise NotImplementedError
