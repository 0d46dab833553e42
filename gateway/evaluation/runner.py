"""The eval runner: every row of an eval set through one model, scored and stored.

Calls run concurrently (a semaphore bounds them), retry with backoff, and
are cached in `response_cache` keyed on the model, endpoint, messages and
generation params, so an identical request is never sent twice. Samples and
their scores are written in chunks. A run that stops half-way (crash, Ctrl-C)
is continued by running the same command again: the unfinished run with the
same eval set hash, model, variant and settings is found and only its missing
samples are done.
"""

from __future__ import annotations

import asyncio
import json
import platform
import re
import sys
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.config import Config
from gateway.contracts import Evaluator, Generation, GenerationParams, Hit, Sample, Score, Usage
from gateway.errors import GatewayError
from gateway.evaluation.client import (
    DEFAULT_BACKOFF,
    DEFAULT_RETRIES,
    EvaluatorChat,
    ModelClient,
    chat_with_retries,
    make_client,
    params_from,
)
from gateway.evaluation.evalset import EvalRow, EvalSet, ScorerSpec, load_evalset
from gateway.evaluation.prompts import PromptVariant, display_name, parse_variant
from gateway.evaluation.retrieval import RowRetrieval, gold_retrieved, retrieval_for_run
from gateway.evaluation.writer import Result, SampleWriter, cache_key
from gateway.store import Store
from gateway.util import new_id, sha256_text, utcnow

if TYPE_CHECKING:
    from gateway.router import Router

T = TypeVar("T")


@dataclass
class Scorer:
    spec: ScorerSpec
    evaluator: Evaluator
    needs_chat: bool
    corpus_level: bool


def environment(backend: str, runtime: dict[str, Any]) -> dict[str, Any]:
    """Where a run ran: versions, platform, the backend and its device, dtype and threads."""
    from gateway import __version__

    return {"python": platform.python_version(), "platform": platform.platform(),
            "gateway": __version__, "backend": backend, **runtime}


def evaluator_kwargs(cls: type[Evaluator], spec: ScorerSpec, evalset: EvalSet,
                     chat: EvaluatorChat | None) -> dict[str, Any]:
    """A scorer's options plus what its class asks the runner for: `chat=`
    (needs_chat) and `evalset_dir=` (needs_evalset_dir, for relative paths)."""
    from gateway.plugins import asks_for

    kwargs = dict(spec.options)
    if cls.needs_chat:
        kwargs["chat"] = chat
    if cls.needs_evalset_dir:
        kwargs["evalset_dir"] = str(evalset.path.parent)
    if asks_for(cls, "needs_evalset_schema"):
        kwargs["evalset_schema"] = evalset.schema
    return kwargs


def schema_response_format(evalset: EvalSet) -> dict[str, Any]:
    """The eval set's `schema:` as a json_schema response_format (the `-p schema` variant)."""
    if evalset.schema is None:
        raise GatewayError(f"prompt variant 'schema' needs an eval set with a `schema:`; "
                           f"{evalset.name} has none")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", evalset.name)[:64]
    return {"type": "json_schema", "json_schema": {"name": name, "schema": evalset.schema, "strict": True}}


def build_scorers(evalset: EvalSet, chat: EvaluatorChat | None) -> list[Scorer]:
    from gateway.plugins import get_evaluator_class

    scorers = []
    for spec in evalset.scorers:
        cls = get_evaluator_class(spec.name)
        evaluator = cls(**evaluator_kwargs(cls, spec, evalset, chat))
        scorers.append(Scorer(spec, evaluator, cls.needs_chat, cls.corpus_level))
    return scorers


def _sample(row: EvalRow, output: str | None) -> Sample:
    return Sample(id=row.id, messages=row.messages, ideal=row.ideal, output=output or "",
                  metadata=row.metadata)


class EvalRun:
    """One run's work: call, score and store the rows not done yet."""

    def __init__(self, store: Store, run_id: str, client: ModelClient, variant: PromptVariant,
                 params: GenerationParams, scorers: list[Scorer], *, concurrency: int,
                 use_cache: bool, retries: int, backoff: float,
                 runtime: dict[str, Any] | None = None,
                 retrieval: RowRetrieval | None = None) -> None:
        self.store = store
        self.retrieval = retrieval
        self.runtime = runtime or {}
        self.run_id = run_id
        self.client = client
        self.variant = variant
        self.params = params
        self.scorers = scorers
        self.semaphore = asyncio.Semaphore(max(1, concurrency))
        self.use_cache = use_cache
        self.retries = retries
        self.backoff = backoff
        self.writer = SampleWriter(store, run_id)
        # Identical requests within the run share one call.
        self.inflight: dict[str, asyncio.Future[tuple[Generation, float]]] = {}
        self.warned: set[str] = set()

    def done_ids(self) -> set[str]:
        rows = self.store.query("SELECT sample_id FROM eval_samples WHERE run_id = ?", [self.run_id])
        return {r["sample_id"] for r in rows}

    def cached(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        if not self.use_cache or not keys:
            return {}
        rows = self.store.query(
            """SELECT key, output, prompt_tokens, completion_tokens, cost FROM response_cache
               WHERE key IN (SELECT unnest(?::VARCHAR[]))""",
            [keys],
        )
        return {r["key"]: r for r in rows}

    async def run(self, rows: list[EvalRow], progress: bool, label: str) -> None:
        from tqdm import tqdm

        done = self.done_ids()
        todo = [r for r in rows if r.id not in done]
        hits = self.retrieval.search(todo) if self.retrieval is not None and todo else {}
        prompts = [self.variant.apply(self.retrieval.prompt(r.messages, hits[r.id])
                                      if self.retrieval is not None else r.messages)
                   for r in todo]
        searched = self.retrieval.fingerprint() if self.retrieval is not None else None
        keys = [cache_key(self.client.identity, self.client.endpoint, m, self.params, self.runtime,
                          searched) for m in prompts]
        cached = self.cached(keys)
        bar = tqdm(total=len(rows), initial=len(rows) - len(todo), desc=label, unit="sample",
                   file=sys.stderr, disable=not progress, dynamic_ncols=True)
        tasks = [
            asyncio.ensure_future(self.one(row, messages, key, cached.get(key), bar, hits.get(row.id)))
            for row, messages, key in zip(todo, prompts, keys, strict=True)
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            bar.close()
        async with self.writer.lock:
            await asyncio.to_thread(self.writer.flush)

    async def one(self, row: EvalRow, messages: list[dict[str, Any]], key: str,
                  hit: dict[str, Any] | None, bar: Any, passages: list[Hit] | None = None) -> None:
        result = Result(row=row, key=key)
        if passages is not None:
            result.passages = [p.id for p in passages]
            result.gold_retrieved = gold_retrieved(row, passages)
        if hit is not None:
            result.output, result.cached, result.cost = hit["output"], True, hit["cost"]
            result.usage = Usage(hit["prompt_tokens"] or 0, hit["completion_tokens"] or 0)
        else:
            await self.call(result, messages)
        result.scores = await self.score(result)
        await self.writer.add(result)
        bar.update(1)

    async def call(self, result: Result, messages: list[dict[str, Any]]) -> None:
        shared = self.inflight.get(result.key)
        try:
            if shared is not None:
                generation, latency = await asyncio.shield(shared)
                result.cached = True
            else:
                future: asyncio.Future[tuple[Generation, float]] = asyncio.get_running_loop().create_future()
                self.inflight[result.key] = future
                try:
                    async with self.semaphore:
                        answer = await chat_with_retries(self.client, messages, self.params,
                                                         retries=self.retries, backoff=self.backoff)
                except Exception as exc:
                    future.set_exception(exc)
                    future.exception()  # retrieved: waiters re-raise it, nobody else must
                    raise
                future.set_result(answer)
                generation, latency = answer
                result.fresh = True
        except Exception as exc:  # stored with the sample; the run goes on
            result.error = f"{type(exc).__name__}: {exc}"
            return
        result.output, result.latency_ms = generation.text, latency
        result.usage, result.cost = generation.usage, generation.cost

    async def score(self, result: Result) -> list[tuple[str, Score]]:
        sample = _sample(result.row, result.output)
        scores: list[tuple[str, Score]] = []
        for scorer in self.scorers:
            if result.error is not None:
                scores.append((scorer.spec.id, Score(0.0, False, "model call failed")))
                continue
            try:
                if scorer.needs_chat:
                    score = await asyncio.to_thread(scorer.evaluator.score, sample)
                else:
                    score = scorer.evaluator.score(sample)
            except NotImplementedError:
                continue  # a corpus-level evaluator without per-sample scores
            except Exception as exc:  # a scorer bug must not lose the model's answers
                if scorer.spec.id not in self.warned:
                    self.warned.add(scorer.spec.id)
                    print(f"warning: scorer {scorer.spec.id!r} failed: {exc}", file=sys.stderr)
                score = Score(0.0, False, f"scorer error: {type(exc).__name__}: {exc}")
            scores.append((scorer.spec.id, score))
        return scores

    def score_corpus(self, rows: list[EvalRow]) -> None:
        corpus = [s for s in self.scorers if s.corpus_level]
        if not corpus:
            return
        stored = self.store.query(
            "SELECT sample_id, output FROM eval_samples WHERE run_id = ?", [self.run_id])
        outputs = {r["sample_id"]: r["output"] for r in stored}
        samples = [_sample(r, outputs.get(r.id)) for r in rows if r.id in outputs]
        scores = [(s.spec.id, s.evaluator.score_corpus(samples)) for s in corpus]
        with self.store.transaction() as con:
            con.execute("DELETE FROM eval_scores WHERE run_id = ? AND sample_id = '*'", [self.run_id])
            con.executemany(
                "INSERT INTO eval_scores (run_id, sample_id, scorer, value, passed, detail) "
                "VALUES (?, '*', ?, ?, ?, ?)",
                [[self.run_id, sid, float(s.value), s.passed, s.detail] for sid, s in scores],
            )


def _find_resumable(store: Store, resume_key: str) -> str | None:
    row = store.query_one(
        """SELECT id FROM eval_runs WHERE status <> 'completed'
           AND json_extract_string(settings, '$.resume_key') = ? ORDER BY created DESC LIMIT 1""",
        [resume_key],
    )
    return str(row["id"]) if row else None


def _set_status(store: Store, run_id: str, status: str, sample_count: int | None = None) -> None:
    store.execute(
        """UPDATE eval_runs SET status = ?, finished = ?,
           sample_count = coalesce(?, sample_count) WHERE id = ?""",
        [status, utcnow() if status != "running" else None, sample_count, run_id],
    )


async def run_eval(
    config: Config,
    store: Store,
    evalset: EvalSet | str | Path,
    model: str,
    *,
    prompt: str | None = None,
    endpoint: str | None = None,
    api_key: str | None = None,
    concurrency: int = 8,
    progress: bool = True,
    resume: bool = True,
    limit: int | None = None,
    cache: bool = True,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    router: Router | None = None,
    corpus: str | Path | None = None,
) -> str:
    """Run `evalset` on `model` and return the run id.

    `model` is an id, name@vN, alias or base name (resolved through the
    registry), or with `endpoint` the name that server knows. `cache=False`
    ignores cached answers (fresh ones are still cached). The API key is
    only sent, never stored. `corpus` replaces the set's `corpus:` for
    retrieve:K variants. Pass a `router` to share started backends
    between runs in the same event loop (see run_evals).
    """
    if not isinstance(evalset, EvalSet):
        evalset = load_evalset(evalset)
    variant = parse_variant(prompt, evalset.train_path)
    rows = evalset.rows[:limit] if limit is not None else evalset.rows
    params = params_from(evalset.generation)
    if variant.schema:
        params.response_format = schema_response_format(evalset)
    retrieval = retrieval_for_run(evalset.retrieval, variant.retrieve_k, corpus, config.home)
    client = make_client(config, store, model, endpoint=endpoint, api_key=api_key, router=router)
    loop = asyncio.get_running_loop()

    def other_model(name: str) -> ModelClient:
        return make_client(config, store, name, endpoint=endpoint, api_key=api_key, router=router)

    chat = EvaluatorChat(other_model, client, loop, retries=retries, backoff=backoff)
    try:
        scorers = build_scorers(evalset, chat)
        runtime = await client.runtime()
        identity = {
            "evalset_sha256": evalset.sha256, "model": model, "version": client.version_id,
            "variant": [variant.spec, variant.fingerprint()], "endpoint": endpoint,
            "generation": params.__dict__, "limit": limit,
            "scorers": [[s.id, s.name, s.options] for s in evalset.scorers],
            # A float32 run never resumes a bfloat16 one.
            "runtime": runtime,
        }
        if retrieval is not None:
            identity["retrieval"] = retrieval.fingerprint()
        resume_key = sha256_text(json.dumps(identity, sort_keys=True, default=str))
        run_id = _find_resumable(store, resume_key) if resume else None
        if run_id is None:
            run_id = new_id("evalrun")
            settings = {"resume_key": resume_key, "generation": params.__dict__, "limit": limit,
                        "evalset_path": str(evalset.path.parent.resolve()),
                        "concurrency": concurrency, "cache": cache, "retries": retries,
                        "variant": variant.fingerprint(),
                        "retrieval": retrieval.fingerprint() if retrieval is not None else None,
                        "scorers": [{"id": s.id, "name": s.name, "options": s.options}
                                    for s in evalset.scorers]}
            store.execute(
                """INSERT INTO eval_runs (id, evalset, evalset_sha256, model, model_version_id,
                   prompt_variant, endpoint, settings, environment, status, sample_count, created)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [run_id, evalset.name, evalset.sha256, model, client.version_id, variant.spec,
                 endpoint, json.dumps(settings, default=str),
                 json.dumps(environment(client.backend, runtime)), "running", len(rows), utcnow()],
            )
        else:
            _set_status(store, run_id, "running")
        work = EvalRun(store, run_id, client, variant, params, scorers, concurrency=concurrency,
                       use_cache=cache, retries=retries, backoff=backoff, runtime=runtime,
                       retrieval=retrieval)
        try:
            await work.run(rows, progress, display_name(model, variant.spec))
            work.score_corpus(rows)
        except BaseException as exc:
            # Keep what finished; the same command later resumes from here.
            work.writer.flush()
            interrupted = isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError))
            _set_status(store, run_id, "interrupted" if interrupted else "failed")
            raise
        _set_status(store, run_id, "completed", len(rows))
        return run_id
    finally:
        await chat.close()
        await client.close()


async def run_evals(config: Config, store: Store, evalset: EvalSet | str | Path,
                    runs: Sequence[tuple[str, str | None]], **kwargs: Any) -> list[str]:
    """Several (model, prompt variant) runs of one set, one after another, in one
    event loop and through one Router, so each model's backend starts once."""
    from gateway.router import Router

    if not isinstance(evalset, EvalSet):
        evalset = load_evalset(evalset)
    router = Router(config, store)
    try:
        return [await run_eval(config, store, evalset, model, prompt=prompt, router=router, **kwargs)
                for model, prompt in runs]
    finally:
        await router.close()


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from synchronous code (in a thread of its own when a loop is running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def run_eval_sync(*args: Any, **kwargs: Any) -> str:
    """run_eval from synchronous code; same arguments."""
    return run_sync(run_eval(*args, **kwargs))


def run_evals_sync(*args: Any, **kwargs: Any) -> list[str]:
    """run_evals from synchronous code; same arguments."""
    return run_sync(run_evals(*args, **kwargs))
