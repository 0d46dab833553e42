"""Chunked writes of an eval run's samples, their scores and new cache entries.

DuckDB costs about 20 ms to open and close, so results are buffered and
written together, a chunk per transaction, with column lists unnested in SQL
rather than one statement per row.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.contracts import GenerationParams, Score, Usage
from gateway.evaluation.evalset import EvalRow
from gateway.store import Store
from gateway.util import sha256_text, utcnow

CHUNK_SIZE = 256  # samples per write
FLUSH_SECONDS = 1.0  # ...or at least this often, so a crash loses little


@dataclass
class Result:
    """One sample's outcome: the answer (or the error), where it came from, its scores."""

    row: EvalRow
    key: str
    output: str | None = None
    latency_ms: float | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    error: str | None = None
    cached: bool = False
    fresh: bool = False  # answered by the model in this run: goes into the cache
    scores: list[tuple[str, Score]] = field(default_factory=list)
    passages: list[str] | None = None  # retrieved passage ids (retrieve:K runs)
    gold_retrieved: bool | None = None  # whether metadata.gold_passage was among them


def cache_key(identity: str, endpoint: str | None, messages: list[dict[str, Any]],
              params: GenerationParams, runtime: dict[str, Any] | None = None,
              retrieval: dict[str, Any] | None = None) -> str:
    """The response cache key: model identity, endpoint, messages, generation params
    and, where known, the runtime (dtype, threads): a bf16 answer is never reused
    for a float32 run. A retrieve:K run adds the corpus hash and retriever settings."""
    payload: dict[str, Any] = {"model": identity, "endpoint": endpoint, "messages": messages,
                               "params": params.__dict__}
    if runtime:
        payload["runtime"] = runtime
    if retrieval:
        payload["retrieval"] = retrieval
    return sha256_text(json.dumps(payload, sort_keys=True, default=str))


class SampleWriter:
    """Buffers results and writes them, with their scores and cache entries, in chunks."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.buffer: list[Result] = []
        self.last_flush = time.monotonic()
        self.lock = asyncio.Lock()

    async def add(self, result: Result) -> None:
        self.buffer.append(result)
        if len(self.buffer) >= CHUNK_SIZE or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            async with self.lock:
                batch, self.buffer = self.buffer, []
                self.last_flush = time.monotonic()
                await asyncio.to_thread(self.write, batch)

    def flush(self) -> None:
        batch, self.buffer = self.buffer, []
        self.write(batch)

    def write(self, batch: Sequence[Result]) -> None:
        if not batch:
            return
        now = utcnow()
        scores = [(r.row.id, sid, s) for r in batch for sid, s in r.scores]
        fresh = {r.key: r for r in batch if r.fresh}
        with self.store.transaction() as con:
            con.execute(
                """INSERT INTO eval_samples (run_id, sample_id, output, latency_ms, prompt_tokens,
                   completion_tokens, cost, error, cached, passages, gold_retrieved, created)
                   SELECT ?, unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::DOUBLE[]),
                   unnest(?::INTEGER[]), unnest(?::INTEGER[]), unnest(?::DOUBLE[]),
                   unnest(?::VARCHAR[]), unnest(?::BOOLEAN[]), unnest(?::VARCHAR[][]),
                   unnest(?::BOOLEAN[]), ?""",
                [self.run_id, [r.row.id for r in batch], [r.output for r in batch],
                 [r.latency_ms for r in batch], [r.usage.prompt_tokens for r in batch],
                 [r.usage.completion_tokens for r in batch], [r.cost for r in batch],
                 [r.error for r in batch], [r.cached for r in batch],
                 [r.passages for r in batch], [r.gold_retrieved for r in batch], now],
            )
            if scores:
                con.execute(
                    """INSERT INTO eval_scores (run_id, sample_id, scorer, value, passed, detail)
                       SELECT ?, unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::DOUBLE[]),
                       unnest(?::BOOLEAN[]), unnest(?::VARCHAR[])""",
                    [self.run_id, [s[0] for s in scores], [s[1] for s in scores],
                     [float(s[2].value) for s in scores], [s[2].passed for s in scores],
                     [s[2].detail for s in scores]],
                )
            if fresh:
                rs = list(fresh.values())
                con.execute(
                    """INSERT OR IGNORE INTO response_cache (key, output, prompt_tokens,
                       completion_tokens, cost, created)
                       SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::INTEGER[]),
                       unnest(?::INTEGER[]), unnest(?::DOUBLE[]), ?""",
                    [[r.key for r in rs], [r.output for r in rs],
                     [r.usage.prompt_tokens for r in rs], [r.usage.completion_tokens for r in rs],
                     [r.cost for r in rs], now],
                )
