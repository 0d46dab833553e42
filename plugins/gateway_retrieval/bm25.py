"""The `bm25` retriever: sparse lexical ranking with bm25s, no server.

Text is lowercased, split into word tokens of two or more characters,
English stopwords are dropped and the rest stemmed (Snowball, PyStemmer);
queries go through the same steps. Passages that share no term with the
query score 0 and are never returned, so a query may get fewer than K.
The index is saved in the folder the host gives (keyed by the corpus hash)
and loaded from there next time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from gateway.contracts import BaseRetriever, GatewayError, Hit, Options, Passage

METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


class Bm25(BaseRetriever):
    name: ClassVar[str] = "bm25"
    description: ClassVar[str] = "BM25 over stemmed word tokens (bm25s); the index is cached per corpus"

    def __init__(self, **options: Any) -> None:
        read = Options(self.name, options)
        self.k1 = _number(read, "k1", 1.5)
        self.b = _number(read, "b", 0.75)
        self.method = read.choice("method", METHODS, "lucene")
        self.stemming = read.flag("stemming", True)
        read.done()
        self._model: Any = None
        self._ids: list[str] = []

    def fingerprint(self) -> dict[str, Any]:
        import bm25s

        return {"k1": self.k1, "b": self.b, "method": self.method, "stemming": self.stemming,
                "bm25s": bm25s.__version__}

    def _tokens(self, texts: list[str]) -> list[list[str]]:
        import bm25s
        import Stemmer

        stemmer = Stemmer.Stemmer("english") if self.stemming else None
        tokens: list[list[str]] = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer,
                                                 return_ids=False, show_progress=False)
        return tokens

    def index(self, passages: list[Passage], cache_dir: Path) -> None:
        import bm25s

        ids_file = cache_dir / "passage_ids.json"
        if ids_file.is_file():
            try:
                self._model = bm25s.BM25.load(str(cache_dir), show_progress=False, verbosity=0)
                self._ids = json.loads(ids_file.read_text(encoding="utf-8"))
                return
            except (OSError, ValueError):
                pass  # a broken cache is rebuilt below
        model = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        model.index(self._tokens([p.text for p in passages]), show_progress=False)
        cache_dir.mkdir(parents=True, exist_ok=True)
        model.save(str(cache_dir), show_progress=False)
        # Written last: its presence means the index beside it is complete.
        ids_file.write_text(json.dumps([p.id for p in passages]), encoding="utf-8")
        self._model, self._ids = model, [p.id for p in passages]

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        if self._model is None:
            raise GatewayError("bm25: search before index")
        k = min(k, len(self._ids))
        if k <= 0 or not queries:
            return [[] for _ in queries]
        found, scores = self._model.retrieve(self._tokens(queries), k=k, show_progress=False)
        return [[Hit(self._ids[int(doc)], float(score))
                 for doc, score in zip(docs, row, strict=True) if score > 0]
                for docs, row in zip(found, scores, strict=True)]


def _number(read: Options, name: str, default: float) -> float:
    value = read.raw(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise read.error(name, f"must be a number of 0 or more, got {value!r}")
    return float(value)
