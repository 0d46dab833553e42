"""The eval runner against throwaway backend plugins, a local OpenAI-shaped
HTTP server, the CLI, and the evals on each new version."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gateway import hookimpl
from gateway.config import load_config
from gateway.contracts import (
    BackendRequestError,
    BackendUnavailable,
    BaseBackend,
    ChatRequest,
    Generation,
    PerSampleEvaluator,
    Sample,
    Score,
    Usage,
)
from gateway.evaluation.autoeval import run_version_evals
from gateway.evaluation.runner import run_eval_sync, run_evals_sync
from gateway.evaluation.runs import list_runs, scorer_summary, version_eval_summary
from gateway.registry import BaseModel, add_base_model, create_version, set_alias
from gateway.store import Store

DATA = Path(__file__).parent / "data" / "evalsets"
CAPITALS = DATA / "capitals"
ANSWERS = {"France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Japan": "Tokyo",
           "South Korea": "Seoul", "Egypt": "Cairo", "Kenya": "Nairobi", "Peru": "Lima"}


def country(request: ChatRequest) -> str:
    match = re.search(r"capital of (.+)\?", request.messages[-1]["content"])
    return match.group(1) if match else ""


class Behaviour:
    """What the test backend does; tests swap `answer` to change it."""

    def __init__(self) -> None:
        self.calls: list[ChatRequest] = []
        self.answer: Callable[[ChatRequest, int], str] = lambda req, n: ANSWERS.get(country(req), "?")


BEHAVIOUR = Behaviour()


class ScriptedBackend(BaseBackend):
    name: ClassVar[str] = "scripted"
    description: ClassVar[str] = "answers as the test scripts it"

    async def chat(self, request: ChatRequest) -> Generation:
        BEHAVIOUR.calls.append(request)
        text = BEHAVIOUR.answer(request, len(BEHAVIOUR.calls))
        return Generation(text=text, usage=Usage(10, 2), cost=0.001)


class CountScorer(PerSampleEvaluator):
    """Corpus-level: how many outputs are non-empty."""

    name: ClassVar[str] = "t-nonempty"
    description: ClassVar[str] = "non-empty outputs (corpus)"
    corpus_level: ClassVar[bool] = True

    def __init__(self, **options: Any) -> None:
        self.options = options

    def score(self, sample: Sample) -> Score:
        raise NotImplementedError

    def score_corpus(self, samples: list[Sample]) -> Score:
        return Score(value=float(sum(bool(s.output) for s in samples)))


class AskScorer(PerSampleEvaluator):
    """Needs a chat function: asks the model under evaluation to repeat itself."""

    name: ClassVar[str] = "t-ask"
    description: ClassVar[str] = "asks the model again through chat="
    corpus_level: ClassVar[bool] = False
    needs_chat: ClassVar[bool] = True

    def __init__(self, *, chat: Callable[..., str]) -> None:
        self.chat = chat

    def score(self, sample: Sample) -> Score:
        again = self.chat(None, sample.messages)
        return Score(value=float(again == sample.output), passed=again == sample.output)

    def score_corpus(self, samples: list[Sample]) -> Score:
        raise NotImplementedError


class RunnerTestPlugin:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register(ScriptedBackend)

    @hookimpl
    def register_evaluators(self, register: Any) -> None:
        register(CountScorer)
        register(AskScorer)


@pytest.fixture
def env(gateway_home: Path, register_plugin: Any) -> Iterator[tuple[Any, Store]]:
    """A home whose default backend is the scripted one, with base model `tiny`."""
    global BEHAVIOUR
    BEHAVIOUR = Behaviour()
    register_plugin(RunnerTestPlugin(), "runner-test")
    (gateway_home / "config.toml").write_text('default_backend = "scripted"\n')
    config = load_config()
    store = Store(config.db_path)
    add_base_model(store, BaseModel(name="tiny", source="path", path=None))
    yield config, store


def samples(store: Store, run_id: str) -> list[dict[str, Any]]:
    return store.query("SELECT * FROM eval_samples WHERE run_id = ? ORDER BY sample_id", [run_id])


def means(store: Store, run_id: str) -> dict[str, float]:
    return {s["scorer"]: s["mean"] for s in scorer_summary(store, run_id)}


def test_scores_stored_then_cache_hit(env: tuple[Any, Store]) -> None:
    config, store = env
    run_id = run_eval_sync(config, store, CAPITALS, "tiny", progress=False)
    run = store.query_one("SELECT * FROM eval_runs WHERE id = ?", [run_id])
    assert run is not None and run["status"] == "completed" and run["sample_count"] == 8
    assert run["evalset"] == "capitals" and run["model_version_id"] is None
    assert json.loads(run["environment"])["backend"] == "scripted"
    assert json.loads(run["settings"])["generation"]["max_tokens"] == 8
    rows = samples(store, run_id)
    assert len(rows) == 8 and all(r["error"] is None and not r["cached"] for r in rows)
    assert rows[0]["prompt_tokens"] == 10 and rows[0]["cost"] == 0.001
    assert means(store, run_id) == {"exact": 1.0}
    assert len(BEHAVIOUR.calls) == 8
    assert BEHAVIOUR.calls[0].params.temperature == 0 and BEHAVIOUR.calls[0].params.max_tokens == 8

    again = run_eval_sync(config, store, CAPITALS, "tiny", progress=False)
    assert again != run_id
    assert len(BEHAVIOUR.calls) == 8  # nothing re-sent
    assert all(r["cached"] for r in samples(store, again))
    assert means(store, again) == {"exact": 1.0}

    fresh = run_eval_sync(config, store, CAPITALS, "tiny", progress=False, cache=False)
    assert len(BEHAVIOUR.calls) == 16 and not any(r["cached"] for r in samples(store, fresh))


def test_wrong_answers_and_failed_calls(env: tuple[Any, Store]) -> None:
    config, store = env

    def answer(req: ChatRequest, n: int) -> str:
        if country(req) == "Peru":
            raise BackendRequestError("adapter refused the prompt")
        return "London"

    BEHAVIOUR.answer = answer
    run_id = run_eval_sync(config, store, CAPITALS, "tiny", progress=False, retries=0)
    rows = {r["sample_id"]: r for r in samples(store, run_id)}
    assert rows["pe"]["output"] is None
    assert rows["pe"]["error"] == "BackendRequestError: adapter refused the prompt"
    assert rows["fr"]["output"] == "London" and rows["fr"]["error"] is None
    scores = store.query("SELECT * FROM eval_scores WHERE run_id = ? AND sample_id = 'pe'", [run_id])
    assert [(s["value"], s["passed"]) for s in scores] == [(0.0, False)]
    assert means(store, run_id) == {"exact": 0.0}
    # A failed call is not cached: the next run asks again.
    BEHAVIOUR.answer = lambda req, n: ANSWERS[country(req)]
    run_eval_sync(config, store, CAPITALS, "tiny", progress=False)
    assert [country(c) for c in BEHAVIOUR.calls[8:]] == ["Peru"]  # the rest are cache hits
    assert store.query_one("SELECT count(*) AS n FROM response_cache") == {"n": 8}


def test_retries_with_backoff(env: tuple[Any, Store]) -> None:
    config, store = env
    attempts: dict[str, int] = {}

    def flaky(req: ChatRequest, n: int) -> str:
        attempts[country(req)] = attempts.get(country(req), 0) + 1
        if attempts[country(req)] <= 2:
            raise BackendUnavailable("warming up")
        return ANSWERS[country(req)]

    BEHAVIOUR.answer = flaky
    start = time.perf_counter()
    run_id = run_eval_sync(config, store, CAPITALS, "tiny", progress=False, limit=2,
                           backoff=0.05, concurrency=2)
    elapsed = time.perf_counter() - start
    assert attempts == {"France": 3, "Germany": 3}
    assert means(store, run_id) == {"exact": 1.0}
    assert elapsed >= 0.05 * 0.5 + 0.1 * 0.5  # two backoffs: base, then doubled (with jitter)

    attempts.clear()
    BEHAVIOUR.answer = flaky
    failed = run_eval_sync(config, store, CAPITALS, "tiny", progress=False, limit=1,
                           backoff=0.01, retries=1, cache=False)
    row = samples(store, failed)[0]
    assert attempts == {"France": 2} and row["error"] == "BackendUnavailable: warming up"


def test_resume_after_interrupt(env: tuple[Any, Store]) -> None:
    config, store = env

    def crash_on_fourth(req: ChatRequest, n: int) -> str:
        if n == 4:
            raise KeyboardInterrupt
        return ANSWERS[country(req)]

    BEHAVIOUR.answer = crash_on_fourth
    with pytest.raises(KeyboardInterrupt):
        run_eval_sync(config, store, CAPITALS, "tiny", progress=False, concurrency=1, cache=False)
    run = store.query_one("SELECT * FROM eval_runs")
    assert run is not None and run["status"] == "interrupted"
    assert len(samples(store, run["id"])) == 3

    BEHAVIOUR.answer = lambda req, n: ANSWERS[country(req)]
    resumed = run_eval_sync(config, store, CAPITALS, "tiny", progress=False, cache=False)
    assert resumed == run["id"]
    assert len(BEHAVIOUR.calls) == 4 + 5  # only the five missing samples were asked
    assert len(samples(store, resumed)) == 8 and means(store, resumed) == {"exact": 1.0}
    assert store.query_one("SELECT status FROM eval_runs WHERE id = ?", [resumed]) == {"status": "completed"}
    # A finished run is not resumed: the same command makes a new run.
    assert run_eval_sync(config, store, CAPITALS, "tiny", progress=False) != resumed


def test_prompt_variants_are_sent_and_recorded(env: tuple[Any, Store]) -> None:
    config, store = env
    run_id = run_eval_sync(config, store, CAPITALS, "tiny", prompt="fewshot:2", progress=False, limit=2)
    first, second = BEHAVIOUR.calls[0].messages, BEHAVIOUR.calls[1].messages
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert first[1:5] == second[1:5]  # the same seeded shots for every row
    run_eval_sync(config, store, CAPITALS, "tiny", prompt="system:Reply in French.", progress=False, limit=1)
    assert BEHAVIOUR.calls[2].messages[0] == {"role": "system", "content": "Reply in French."}
    runs = {r["id"]: r for r in list_runs(store)}
    assert runs[run_id]["prompt_variant"] == "fewshot:2" and runs[run_id]["name"] == "tiny [fewshot:2]"


def test_corpus_and_chat_scorers(env: tuple[Any, Store], tmp_path: Path) -> None:
    config, store = env
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "eval.jsonl").write_bytes((CAPITALS / "eval.jsonl").read_bytes())
    (folder / "evalset.yaml").write_text(
        "name: capitals-plus\ndata: eval.jsonl\nscorers:\n  - exact\n  - t-nonempty\n"
        "  - name: t-ask\n    id: ask-again\n")
    run_id = run_eval_sync(config, store, folder, "tiny", progress=False, limit=3)
    corpus = store.query("SELECT scorer, value FROM eval_scores WHERE run_id = ? AND sample_id = '*'", [run_id])
    assert corpus == [{"scorer": "t-nonempty", "value": 3.0}]
    assert means(store, run_id) == {"exact": 1.0, "ask-again": 1.0, "t-nonempty": 3.0}
    assert len(BEHAVIOUR.calls) == 6  # three samples, each asked again by t-ask


def test_openai_evals_rows_run(env: tuple[Any, Store]) -> None:
    config, store = env
    run_id = run_eval_sync(config, store, DATA / "oaievals", "tiny", progress=False)
    assert [r["sample_id"] for r in samples(store, run_id)] == ["1", "2", "4"]
    assert means(store, run_id) == {"exact": 1.0}


# ---------------------------------------------------------------- --endpoint


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def openai_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A tiny OpenAI-shaped server on 127.0.0.1 that answers 429 to its first request."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    seen: list[dict[str, Any]] = []

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append({"body": body, "auth": request.headers.get("authorization")})
        if len(seen) == 1:
            return JSONResponse({"error": {"message": "slow down"}}, status_code=429,
                                headers={"retry-after": "0"})
        question = body["messages"][-1]["content"]
        match = re.search(r"capital of (.+)\?", question)
        text = ANSWERS.get(match.group(1) if match else "", "?")
        return JSONResponse({
            "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8},
        })

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1", seen
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_endpoint_with_429_retry(env: tuple[Any, Store], openai_server: tuple[str, list[dict[str, Any]]]) -> None:
    config, store = env
    url, seen = openai_server
    run_id = run_eval_sync(config, store, CAPITALS, "remote-model", endpoint=url, api_key="sk-secret",
                           progress=False, limit=3, concurrency=1, backoff=0.01)
    assert len(seen) == 4  # one 429, then three answers
    assert all(s["auth"] == "Bearer sk-secret" for s in seen)
    assert seen[1]["body"]["model"] == "remote-model" and seen[1]["body"]["max_tokens"] == 8
    assert means(store, run_id) == {"exact": 1.0}
    run = store.query_one("SELECT * FROM eval_runs WHERE id = ?", [run_id])
    assert run is not None and run["endpoint"] == url
    assert json.loads(run["environment"])["backend"] == "endpoint"
    assert "sk-secret" not in json.dumps(run, default=str)
    assert samples(store, run_id)[0]["prompt_tokens"] == 7


# ---------------------------------------------------------------- CLI


def test_cli_eval_and_runs(env: tuple[Any, Store], gateway_cli: Any) -> None:
    result = gateway_cli("eval", str(CAPITALS), "--model", "tiny", "-p", "none", "-p", "fewshot:1", "-q")
    assert result.exit_code == 0, result.output
    run_ids = re.findall(r"^run (evalrun-\w+)", result.output, re.M)
    assert len(run_ids) == 2
    assert "tiny [fewshot:1]" in result.output and "exact" in result.output
    listed = json.loads(gateway_cli("runs", "list", "--format", "json").output)
    assert {r["id"] for r in listed} == set(run_ids)
    shown = json.loads(gateway_cli("runs", "show", run_ids[1][:12], "--format", "json").output)
    assert shown["id"] in run_ids and shown["scores"][0]["mean"] == 1.0
    text = gateway_cli("runs", "show", run_ids[0]).output
    assert "settings:" in text and "exact" in text and "8/8" in text
    as_json = json.loads(gateway_cli("eval", str(CAPITALS), "-m", "tiny", "-q", "--format", "json").output)
    # 8 of 8 passed: the Wilson interval, unlike a t interval, does not collapse to [1, 1].
    assert as_json[0]["cached"] == 8 and as_json[0]["scores"][0]["ci_low"] == pytest.approx(0.6756, abs=1e-4)


def test_cli_eval_unknown_model(env: tuple[Any, Store]) -> None:
    from click.testing import CliRunner

    from gateway.cli import assemble

    result = CliRunner().invoke(assemble(), ["eval", str(CAPITALS), "--model", "nope", "-q"])
    assert result.exit_code == 1 and "the model 'nope' does not exist" in result.output


# ---------------------------------------------------------------- autoeval


def test_autoeval_on_new_version(env: tuple[Any, Store], gateway_home: Path) -> None:
    config, store = env
    (gateway_home / "config.toml").write_text(
        f'default_backend = "scripted"\n[auto_eval]\nbot = [{json.dumps(str(DATA / "oaievals"))}]\n')
    config = load_config()
    # The base answers wrongly; every fine-tuned version knows the capitals.
    BEHAVIOUR.answer = lambda req, n: ANSWERS.get(country(req), "?") if req.target.version_id else "London"
    v1 = create_version(store, base="tiny", name="bot", kind="local")
    run_version_evals(config, store, v1)
    set_alias(store, "bot@prod", v1.ref)
    v2 = create_version(store, base="tiny", name="bot", kind="local")
    run_version_evals(config, store, v2, [str(CAPITALS)])
    links = store.query("SELECT * FROM version_evals WHERE version_id = ? ORDER BY evalset, role", [v2.id])
    assert [(r["evalset"], r["role"]) for r in links] == [
        ("capitals", "base"), ("capitals", "prod"), ("oaievals-capitals", "base"), ("oaievals-capitals", "prod")]
    summary = {(r["evalset"], r["role"]): r for r in version_eval_summary(store, v2.id)}
    assert summary[("capitals", "base")]["mean"] == 1.0
    assert summary[("capitals", "base")]["baseline_mean"] == 0.0
    assert summary[("capitals", "base")]["delta"] == 1.0
    assert summary[("capitals", "prod")]["delta"] == 0.0
    candidate = store.query_one("SELECT * FROM eval_runs WHERE id = ?", [summary[("capitals", "base")]["run_id"]])
    assert candidate is not None and candidate["model_version_id"] == v2.id
    # v1 got only the configured set, against its base (no prod alias existed yet).
    assert [(r["evalset"], r["role"]) for r in version_eval_summary(store, v1.id)] == [("oaievals-capitals", "base")]
    # `gateway models show` reports them.
    from click.testing import CliRunner

    from gateway.cli import assemble

    shown = CliRunner().invoke(assemble(), ["models", "show", v2.ref, "--format", "json"])
    assert shown.exit_code == 0, shown.output
    evals = {(r["evalset"], r["role"]): r for r in json.loads(shown.output)["evals"]}
    assert evals[("capitals", "base")]["delta"] == 1.0
    table = CliRunner().invoke(assemble(), ["models", "show", v2.ref])
    assert "Eval results" in table.output and "capitals" in table.output


def test_autoeval_bad_evalset_keeps_version(env: tuple[Any, Store], capsys: pytest.CaptureFixture[str]) -> None:
    config, store = env
    version = create_version(store, base="tiny", name="bot", kind="local")
    assert run_version_evals(config, store, version, ["no-such-set"]) == []
    assert store.query_one("SELECT id FROM model_versions WHERE id = ?", [version.id])
    assert "no-such-set" in capsys.readouterr().err


# ---------------------------------------------------------------- SmolLM2, for real


@pytest.mark.slow
def test_support_tickets_on_smollm2(gateway_home: Path, smollm2_dir: Path) -> None:
    from gateway.plugins import backends

    if "local" not in backends():
        pytest.skip("the local backend plugin is not available here")
    config = load_config()
    store = Store(config.db_path)
    add_base_model(store, BaseModel(name="smollm2-135m", source="path", path=str(smollm2_dir)))
    # One router for both runs: the model loads once.
    run_ids = run_evals_sync(config, store, "support-tickets",
                             [("smollm2-135m", None), ("smollm2-135m", "fewshot:3")],
                             progress=False, limit=8)
    for run_id in run_ids:
        rows = samples(store, run_id)
        assert len(rows) == 8 and all(r["error"] is None for r in rows)
        assert all(r["completion_tokens"] and r["completion_tokens"] <= 8 for r in rows)
        assert {"classification", "exact"} <= set(means(store, run_id))


SHAPE = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
         "additionalProperties": False}


def write_schema_set(folder: Path, schema: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"What is the capital of {c}?"}],
             "ideal": json.dumps({"city": ANSWERS[c]})} for i, c in enumerate(["France", "Japan"])]
    (folder / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "shape.json").write_text(json.dumps(SHAPE), encoding="utf-8")
    (folder / "evalset.yaml").write_text(
        f"name: cities\ndata: eval.jsonl\nschema: {json.dumps(schema)}\n"
        "generation: {max_tokens: 20}\nscorers:\n  - name: json\n"
        "  - name: json\n    id: fields-only\n    options: {match_fields: true, schema: false}\n",
        encoding="utf-8")
    return folder


@pytest.mark.parametrize("schema", [SHAPE, "shape.json"])
def test_a_set_level_schema_drives_the_scorer_and_the_schema_variant(
    env: tuple[Any, Store], tmp_path: Path, schema: Any
) -> None:
    config, store = env
    evalset = write_schema_set(tmp_path / "cities", schema)
    # France gets an answer off the schema (an extra key), Japan one on it.
    BEHAVIOUR.answer = lambda req, n: (json.dumps({"city": "Paris", "note": "x"}) if "France" in
                                       req.messages[-1]["content"] else json.dumps({"city": "Tokyo"}))
    plain = run_eval_sync(config, store, evalset, "tiny", progress=False)
    scored = {(r["sample_id"], r["scorer"]): r["passed"] for r in store.query(
        "SELECT sample_id, scorer, passed FROM eval_scores WHERE run_id = ?", [plain])}
    assert scored[("r0", "json")] is False and scored[("r1", "json")] is True  # the set's schema
    assert scored[("r0", "fields-only")] is True  # `schema: false` leaves it out
    assert all(call.params.response_format is None for call in BEHAVIOUR.calls)

    calls = len(BEHAVIOUR.calls)
    constrained = run_eval_sync(config, store, evalset, "tiny", prompt="schema", progress=False)
    # Not answered from the unconstrained run's cache: response_format is part of the key.
    assert len(BEHAVIOUR.calls) == calls + 2
    sent = BEHAVIOUR.calls[-1].params.response_format
    assert sent == {"type": "json_schema", "json_schema": {"name": "cities", "schema": SHAPE, "strict": True}}
    run = store.query_one("SELECT prompt_variant FROM eval_runs WHERE id = ?", [constrained])
    assert run is not None and run["prompt_variant"] == "schema"
    # Again: now from the cache.
    run_eval_sync(config, store, evalset, "tiny", prompt="schema", progress=False)
    assert len(BEHAVIOUR.calls) == calls + 2


def test_the_schema_variant_needs_a_set_schema_and_generation_takes_response_format(
    env: tuple[Any, Store], tmp_path: Path
) -> None:
    from gateway.errors import GatewayError

    config, store = env
    with pytest.raises(GatewayError, match="needs an eval set with a `schema:`"):
        run_eval_sync(config, store, CAPITALS, "tiny", prompt="schema", progress=False)
    folder = write_schema_set(tmp_path / "objects", SHAPE)
    text = (folder / "evalset.yaml").read_text(encoding="utf-8")
    (folder / "evalset.yaml").write_text(text.replace(
        "generation: {max_tokens: 20}", "generation: {max_tokens: 20, response_format: {type: json_object}}"))
    run_eval_sync(config, store, folder, "tiny", progress=False, limit=1)
    assert BEHAVIOUR.calls[-1].params.response_format == {"type": "json_object"}
