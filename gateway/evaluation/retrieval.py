"""Retrieval for the `retrieve:K` prompt variant: the eval set's retrieval
settings, the query of each row, the retriever's index and the prompt template.

evalset.yaml:

```yaml
corpus: corpus              # a folder of .txt/.md files or a JSONL of {id, text}
retrieval:                  # optional; these are the defaults
  retriever: bm25           # a retriever plugin
  options: {}               # its options (bm25: k1, b, method, stemming)
  query: last_user          # last_user | all_user | metadata.FIELD
  template: |-              # {passages} and {question}; see PASSAGE_TEMPLATE
    Answer using these passages.

    {passages}

    Question: {question}
```

The template replaces the row's last user message. Each passage is written
as PASSAGE_TEMPLATE (`[ID] text`), separated by blank lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.contracts import Hit, Retriever
from gateway.errors import GatewayError
from gateway.evaluation.corpus import Corpus, gold_hit, load_corpus
from gateway.evaluation.evalset import EvalRow
from gateway.util import sha256_text

DEFAULT_RETRIEVER = "bm25"
DEFAULT_QUERY = "last_user"
DEFAULT_TEMPLATE = "Answer using these passages.\n\n{passages}\n\nQuestion: {question}"
PASSAGE_TEMPLATE = "[{id}] {text}"
RETRIEVAL_KEYS = {"retriever", "options", "query", "template"}


@dataclass
class RetrievalSettings:
    """What the eval set (or --corpus) says about retrieval."""

    corpus: Path | None = None
    retriever: str = DEFAULT_RETRIEVER
    options: dict[str, Any] = field(default_factory=dict)
    query: str = DEFAULT_QUERY
    template: str = DEFAULT_TEMPLATE


def parse_settings(raw: Any, corpus: Path | None, where: str) -> RetrievalSettings:
    """The `retrieval:` mapping of an eval set, checked; raises GatewayError naming the key."""
    settings = RetrievalSettings(corpus=corpus)
    if raw is None:
        return settings
    if not isinstance(raw, dict):
        raise GatewayError(f"{where}: 'retrieval' must be a mapping")
    unknown = set(raw) - RETRIEVAL_KEYS
    if unknown:
        raise GatewayError(f"{where}: unknown retrieval keys {sorted(unknown)}; "
                           f"allowed: {sorted(RETRIEVAL_KEYS)}")
    for key in ("retriever", "query", "template"):
        if key in raw and not isinstance(raw[key], str):
            raise GatewayError(f"{where}: retrieval.{key} must be a string")
    if not isinstance(raw.get("options", {}), dict):
        raise GatewayError(f"{where}: retrieval.options must be a mapping")
    settings.retriever = raw.get("retriever", DEFAULT_RETRIEVER)
    settings.options = dict(raw.get("options") or {})
    settings.query = raw.get("query", DEFAULT_QUERY)
    settings.template = raw.get("template", DEFAULT_TEMPLATE)
    query_ok = settings.query in ("last_user", "all_user") or (
        settings.query.startswith("metadata.") and len(settings.query) > len("metadata."))
    if not query_ok:
        raise GatewayError(f"{where}: retrieval.query must be last_user, all_user or "
                           f"metadata.FIELD, got {settings.query!r}")
    for slot in ("{passages}", "{question}"):
        if slot not in settings.template:
            raise GatewayError(f"{where}: retrieval.template needs {slot}")
    return settings


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: the text ones
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def row_query(row: EvalRow, query: str) -> str:
    """The text a row is searched with."""
    users = [_text(m.get("content")) for m in row.messages if m.get("role") == "user"]
    if query == "all_user":
        return "\n".join(users)
    if query.startswith("metadata."):
        value = row.metadata.get(query.removeprefix("metadata."))
        if value is None:
            raise GatewayError(f"row {row.id}: retrieval.query {query!r} but the row has no such metadata")
        return str(value)
    return users[-1] if users else ""


class RowRetrieval:
    """One corpus indexed by one retriever, ready to search for rows."""

    def __init__(self, settings: RetrievalSettings, corpus: Corpus, retriever: Retriever,
                 k: int) -> None:
        self.settings = settings
        self.corpus = corpus
        self.retriever = retriever
        self.k = k
        self.texts = {p.id: p.text for p in corpus.passages}

    def fingerprint(self) -> dict[str, Any]:
        """What decides the passages: for the run's settings and the cache key."""
        return {"k": self.k, "corpus_sha256": self.corpus.sha256, "retriever": self.settings.retriever,
                "retriever_settings": self.retriever.fingerprint(), "query": self.settings.query,
                "template_sha256": sha256_text(self.settings.template)}

    def search(self, rows: list[EvalRow]) -> dict[str, list[Hit]]:
        queries = [row_query(row, self.settings.query) for row in rows]
        found = self.retriever.search(queries, self.k)
        return {row.id: hits for row, hits in zip(rows, found, strict=True)}

    def prompt(self, messages: list[dict[str, Any]], hits: list[Hit]) -> list[dict[str, Any]]:
        """The row's messages with its last user message put into the template."""
        passages = "\n\n".join(PASSAGE_TEMPLATE.format(id=h.id, text=self.texts[h.id]) for h in hits)
        last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
        if last is None:
            return messages
        question = _text(messages[last].get("content"))
        filled = self.settings.template.replace("{passages}", passages).replace("{question}", question)
        return [*messages[:last], {**messages[last], "content": filled}, *messages[last + 1:]]


def gold_retrieved(row: EvalRow, hits: list[Hit]) -> bool | None:
    """Whether the row's `metadata.gold_passage` was retrieved; None when it names none."""
    gold = row.metadata.get("gold_passage")
    if gold is None:
        return None
    golds = gold if isinstance(gold, list) else [gold]
    ids = [h.id for h in hits]
    return any(gold_hit(str(g), ids) for g in golds)


def open_retrieval(settings: RetrievalSettings, k: int, home: Path) -> RowRetrieval:
    """Load the corpus and build (or load from the cache) the retriever's index."""
    from gateway.plugins import get_retriever_class

    if settings.corpus is None:
        raise GatewayError("prompt variant retrieve:K needs a corpus: `corpus:` in evalset.yaml "
                           "or --corpus DIR")
    corpus = load_corpus(settings.corpus)
    retriever = get_retriever_class(settings.retriever)(**settings.options)
    key = sha256_text(json.dumps([corpus.sha256, retriever.fingerprint()], sort_keys=True, default=str))
    retriever.index(corpus.passages, home / "retrieval" / settings.retriever / key[:32])
    return RowRetrieval(settings, corpus, retriever, k)


def retrieval_for_run(settings: RetrievalSettings | None, k: int, corpus: str | Path | None,
                      home: Path) -> RowRetrieval | None:
    """The indexed corpus of a retrieve:K run (None when k is 0); `corpus` overrides the set's."""
    if not k:
        return None
    settings = settings or RetrievalSettings()
    if corpus is not None:
        settings = replace(settings, corpus=Path(corpus).expanduser().resolve())
    return open_retrieval(settings, k, home)
