"""Retrieval: the corpus chunking rule, BM25 ranking and its cached index,
the prompt template, composable variants, stored passage ids and recall@K,
and a third party's retriever through the same hook."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gateway import hookimpl
from gateway.config import load_config
from gateway.contracts import (
    BaseBackend,
    BaseRetriever,
    ChatRequest,
    Generation,
    Hit,
    Passage,
    Usage,
)
from gateway.errors import GatewayError, ValidationError
from gateway.evaluation.corpus import MAX_PASSAGE_WORDS, chunk, load_corpus
from gateway.evaluation.evalset import load_evalset
from gateway.evaluation.prompts import parse_variant
from gateway.evaluation.retrieval import RetrievalSettings, open_retrieval
from gateway.evaluation.runner import run_eval_sync
from gateway.evaluation.runs import run_details
from gateway.registry import BaseModel, add_base_model
from gateway.store import Store

FACTS = {
    "returns": ("# Returns\n\n## Worn items\nA worn item can be returned within 11 days of delivery.\n\n"
                "## Unworn items\nAn unworn item can be returned within 47 days of delivery."),
    "shipping": ("# Shipping\n\n## Standard delivery\nStandard delivery costs 6 crowns and takes 4 "
                 "working days.\n\n## Express delivery\nExpress delivery costs 13 crowns."),
    "loyalty": "# Loyalty\n\n## Points\nMembers earn 3 points for every crown spent in a store.",
}
ROWS = [
    ("worn", "How many days do I have to return a worn item?", "11", "returns#1"),
    ("unworn", "How many days do I have to return an unworn item?", "47", "returns#2"),
    ("express", "What does express delivery cost?", "13", "shipping#2"),
    ("points", "How many points do members earn per crown?", "3", "loyalty#1"),
]
CALLS: list[ChatRequest] = []


class ReaderBackend(BaseBackend):
    """Answers with the first number of the first passage in the prompt, else '?'."""

    name: ClassVar[str] = "reader"
    description: ClassVar[str] = "reads the answer out of retrieved passages"

    async def chat(self, request: ChatRequest) -> Generation:
        CALLS.append(request)
        found = re.search(r"\] [^\[]*?(\d+)", str(request.messages[-1]["content"]))
        return Generation(text=found.group(1) if found else "?", usage=Usage(10, 1))


class FirstPassages(BaseRetriever):
    """A third party's retriever: the first K passages, whatever the query."""

    name: ClassVar[str] = "first-k"
    description: ClassVar[str] = "the corpus's first K passages"

    def index(self, passages: list[Passage], cache_dir: Path) -> None:
        self.ids = [p.id for p in passages]

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        return [[Hit(i, 1.0) for i in self.ids[:k]] for _ in queries]


class Plugin:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register(ReaderBackend)

    @hookimpl
    def register_retrievers(self, register: Any) -> None:
        register(FirstPassages)


def write_set(root: Path, retrieval: str = "") -> Path:
    corpus = root / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for name, text in FACTS.items():
        (corpus / f"{name}.md").write_text(text + "\n")
    system = {"role": "system", "content": "Answer with a number."}
    with (root / "eval.jsonl").open("w") as out:
        for row_id, question, ideal, gold in ROWS:
            out.write(json.dumps({"id": row_id, "ideal": ideal, "metadata": {"gold_passage": gold},
                                  "messages": [system, {"role": "user", "content": question}]}) + "\n")
    with (root / "train.jsonl").open("w") as out:
        out.write(json.dumps({"messages": [{"role": "user", "content": "Standard delivery time?"},
                                           {"role": "assistant", "content": "4"}]}) + "\n")
    (root / "evalset.yaml").write_text(
        "name: lookup\ndata: eval.jsonl\ntrain: train.jsonl\ncorpus: corpus\n" + retrieval
        + "generation: {max_tokens: 4, temperature: 0}\nscorers:\n  - name: exact\n")
    return root


@pytest.fixture
def env(gateway_home: Path, register_plugin: Any, tmp_path: Path) -> Iterator[tuple[Any, Store, Path]]:
    CALLS.clear()
    register_plugin(Plugin(), "retrieval-test")
    (gateway_home / "config.toml").write_text('default_backend = "reader"\n')
    config = load_config()
    store = Store(config.db_path)
    add_base_model(store, BaseModel(name="tiny", source="path", path=None))
    yield config, store, write_set(tmp_path / "lookup")


def test_chunking_rule() -> None:
    passages = chunk("returns", FACTS["returns"])
    assert [p.id for p in passages] == ["returns#0", "returns#1", "returns#2"]
    assert passages[1].text.startswith("## Worn items\nA worn item")  # the heading stays with its text
    # Paragraphs without headings are packed up to the limit; a long one is cut.
    short = "\n\n".join(["one two three"] * 5)
    assert [p.text.count("one") for p in chunk("d", short)] == [5]
    long = " ".join(["word"] * (MAX_PASSAGE_WORDS * 2 + 10))
    assert [len(p.text.split()) for p in chunk("d", long)] == [MAX_PASSAGE_WORDS, MAX_PASSAGE_WORDS, 10]


def test_corpus_from_jsonl_and_bad_corpora(tmp_path: Path) -> None:
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"id": "a", "text": "Alpha."}\n{"id": 7, "text": "Seven."}\n')
    corpus = load_corpus(jsonl)
    assert [p.id for p in corpus.passages] == ["a#0", "7#0"]
    jsonl.write_text('{"id": "a", "text": "Alpha."}\n{"id": "a", "text": "Again."}\nnot json\n')
    with pytest.raises(ValidationError, match=r"line 2: duplicate id 'a'; line 3: invalid JSON"):
        load_corpus(jsonl)
    with pytest.raises(ValidationError, match="does not exist"):
        load_corpus(tmp_path / "missing")
    # An edited document changes the hash (and so fingerprints and cache keys).
    folder = write_set(tmp_path / "set") / "corpus"
    before = load_corpus(folder).sha256
    (folder / "loyalty.md").write_text(FACTS["loyalty"].replace("3 points", "4 points"))
    assert load_corpus(folder).sha256 != before


def test_bm25_ranks_the_gold_passage_first_and_caches_its_index(env: tuple[Any, Store, Path]) -> None:
    config, _, root = env
    settings = load_evalset(root).retrieval
    assert settings is not None and settings.corpus == (root / "corpus").resolve()
    retrieval = open_retrieval(settings, 2, config.home)
    hits = retrieval.search(load_evalset(root).rows)
    assert {row_id: found[0].id for row_id, found in hits.items()} == {r[0]: r[3] for r in ROWS}
    assert all(a.score >= b.score for found in hits.values() for a, b in pairwise(found))
    assert retrieval.retriever.search(["zebra quantum"], 2) == [[]]  # no shared term: no hits
    cached = list((config.home / "retrieval" / "bm25").glob("*/passage_ids.json"))
    assert len(cached) == 1
    # The second open loads the saved index (the ids file is what it trusts).
    ids = json.loads(cached[0].read_text())
    cached[0].write_text(json.dumps(ids))
    again = open_retrieval(settings, 2, config.home)
    assert again.search(load_evalset(root).rows) == hits
    assert again.fingerprint()["corpus_sha256"] == retrieval.corpus.sha256


def test_retrieve_run_stores_passages_recall_and_uses_the_template(env: tuple[Any, Store, Path]) -> None:
    config, store, root = env
    run_id = run_eval_sync(config, store, root, "tiny", prompt="retrieve:2", progress=False)
    samples = {r["sample_id"]: r for r in store.query(
        "SELECT sample_id, output, passages, gold_retrieved FROM eval_samples WHERE run_id = ?", [run_id])}
    assert {k: s["passages"][0] for k, s in samples.items()} == {r[0]: r[3] for r in ROWS}
    assert all(s["gold_retrieved"] for s in samples.values())
    assert {k: s["output"] for k, s in samples.items()} == {r[0]: r[2] for r in ROWS}
    details = run_details(store, run_id)
    assert details["retrieval_recall"] == 1.0 and details["retrieve_k"] == 2
    settings = details["settings"]["retrieval"]
    assert settings["corpus_sha256"] == load_corpus(root / "corpus").sha256
    assert settings["retriever"] == "bm25" and settings["retriever_settings"]["k1"] == 1.5
    sent = next(c for c in CALLS if str(c.messages[-1]["content"]).endswith("return a worn item?"))
    assert sent.messages[0] == {"role": "system", "content": "Answer with a number."}
    assert sent.messages[-1]["content"].startswith(
        "Answer using these passages.\n\n[returns#1] ## Worn items\nA worn item can be returned")
    assert sent.messages[-1]["content"].endswith(
        "\n\nQuestion: How many days do I have to return a worn item?")

    # Without retrieval the reader has nothing to read; the stored columns stay empty.
    plain = run_eval_sync(config, store, root, "tiny", progress=False)
    rows = store.query("SELECT passages, gold_retrieved FROM eval_samples WHERE run_id = ?", [plain])
    assert all(r["passages"] is None and r["gold_retrieved"] is None for r in rows)
    assert run_details(store, plain)["retrieval_recall"] is None


def test_corpus_hash_is_in_the_cache_key(env: tuple[Any, Store, Path]) -> None:
    config, store, root = env
    run_eval_sync(config, store, root, "tiny", prompt="retrieve:1", progress=False)
    assert len(CALLS) == 4
    run_eval_sync(config, store, root, "tiny", prompt="retrieve:1", progress=False)
    assert len(CALLS) == 4  # same corpus: answered from the cache
    # A document the top passages do not show still changes the corpus: asked again.
    (root / "corpus" / "extra.md").write_text("# Gift cards\n\nGift cards never expire.\n")
    run_eval_sync(config, store, root, "tiny", prompt="retrieve:1", progress=False)
    assert len(CALLS) == 8


def test_composed_variant_sends_shots_and_passages(env: tuple[Any, Store, Path]) -> None:
    config, store, root = env
    run_eval_sync(config, store, root, "tiny", prompt="fewshot:1+retrieve:1", progress=False,
                  limit=1)
    messages = CALLS[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "Standard delivery time?"
    assert "[returns#1]" in messages[-1]["content"]
    variant = parse_variant("retrieve:4+fewshot:1", root / "train.jsonl")
    assert variant.kind == "fewshot+retrieve" and variant.retrieve_k == 4 and variant.k == 1
    assert parse_variant("system:a+b is fine").system == "a+b is fine"
    for spec, problem in (("retrieve:0", "1 or more"), ("retrieve:x", "use retrieve:K"),
                          ("retrieve:2+retrieve:3", "uses retrieve twice"),
                          ("fewshot:1+shout", "unknown prompt variant")):
        with pytest.raises(GatewayError, match=problem):
            parse_variant(spec, root / "train.jsonl")


def test_corpus_option_template_query_and_plugin_retriever(env: tuple[Any, Store, Path],
                                                          gateway_cli: Any, tmp_path: Path) -> None:
    config, store, root = env
    other = write_set(tmp_path / "other", retrieval=(
        "retrieval:\n  retriever: first-k\n  query: all_user\n"
        "  template: \"Facts: {passages} | {question}\"\n"))
    (other / "evalset.yaml").write_text((other / "evalset.yaml").read_text().replace("corpus: corpus\n", ""))
    with pytest.raises(GatewayError, match="needs a corpus"):
        run_eval_sync(config, store, other, "tiny", prompt="retrieve:1", progress=False)
    result = gateway_cli("eval", str(other), "-m", "tiny", "-p", "retrieve:1", "--corpus",
                         str(root / "corpus"), "-q", "--format", "json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)[0]
    # first-k always shows loyalty#0 first: the reader finds no number there.
    assert run["recall"] == "recall@1 0.000 (0 of 4 rows with a gold passage)"
    assert CALLS[-1].messages[-1]["content"].startswith("Facts: [loyalty#0] # Loyalty | ")
    bad = RetrievalSettings(corpus=root / "corpus", retriever="nope")
    with pytest.raises(GatewayError, match="no retriever named 'nope'"):
        open_retrieval(bad, 1, config.home)
    (other / "evalset.yaml").write_text((other / "evalset.yaml").read_text().replace(
        "query: all_user", "query: everything"))
    with pytest.raises(ValidationError, match=r"retrieval\.query must be"):
        load_evalset(other)
