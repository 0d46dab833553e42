"""`gateway serve` end to end: a real server process, the official openai SDK as
client, and a deterministic echo backend plugin discovered by entry point."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from servers import gateway_server, make_adapter, write_echo_plugin

from gateway.registry import BaseModel, ModelVersion, add_base_model, create_version, set_alias
from gateway.store import Store


@dataclass
class Served:
    url: str
    home: Path
    v1: ModelVersion
    v2: ModelVersion

    @property
    def store(self) -> Store:
        return Store(self.home / "gateway.duckdb")

    def client(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", timeout=10, **kwargs)

    def queue_empty(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while httpx.get(f"{self.url}/status").json()["request_log_queue"]:
            assert time.monotonic() < deadline, "request log never flushed"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("serving")
    home = tmp / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        'default_backend = "echo"\n'
        "[server]\nlog_flush_interval = 0.2\n"
        '[backends."flaky"]\nbackend = "echo"\nfail_start = true\n'
    )
    store = Store(home / "gateway.duckdb")
    tiny_path = tmp / "models" / "tiny"
    add_base_model(store, BaseModel(name="tiny", source="path", path=str(tiny_path)))
    add_base_model(store, BaseModel(name="other", source="hf", hf_id="org/other"))
    add_base_model(store, BaseModel(name="flaky", source="path", path=str(tmp / "models" / "flaky")))
    v1 = create_version(store, base="tiny", name="support", kind="local",
                        artifact_uri=str(make_adapter(home / "adapters" / "support-1", str(tiny_path))))
    v2 = create_version(store, base="tiny", name="support", kind="local",
                        artifact_uri=str(make_adapter(home / "adapters" / "support-2", str(tiny_path))))
    set_alias(store, "support@prod", v1.id)
    plugins = write_echo_plugin(tmp / "plugins")
    with gateway_server(home, pythonpath=[plugins], env={"GATEWAY_PLUGINS": "echo"}) as url:
        yield Served(url, home, v1, v2)


def chat(client: openai.OpenAI, model: str, text: str, **kwargs: Any) -> Any:
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], **kwargs
    )


# ---------------------------------------------------------------- models


def test_models_lists_bases_versions_aliases(served: Served) -> None:
    models = {m.id: m for m in served.client().models.list()}
    assert {"tiny", "other", "flaky", served.v1.id, served.v2.id, "support@prod"} <= set(models)
    assert all(m.object == "model" and m.owned_by for m in models.values())
    base = models["tiny"].model_dump()
    assert base["parent"] is None and base["root"] == "tiny"
    version = models[served.v1.id].model_dump()
    assert version["parent"] == "tiny" and version["root"] == "tiny"
    assert version["version"] == "support@v1"
    alias = models["support@prod"].model_dump()
    assert alias["parent"] == "tiny" and alias["version"] == served.v1.id


# ---------------------------------------------------------------- generation


def test_chat_completion_shape(served: Served) -> None:
    reply = chat(served.client(), "tiny", "hello there world")
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == "tiny" and isinstance(reply.created, int)
    (choice,) = reply.choices
    assert choice.index == 0 and choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "tiny: hello there world"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (3, 4, 7)


def test_completion_with_max_tokens_and_stop(served: Served) -> None:
    client = served.client()
    reply = client.completions.create(model="tiny", prompt="one two three four", max_tokens=2)
    assert reply.object == "text_completion"
    assert reply.choices[0].text == "tiny: one" and reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 2
    stopped = client.completions.create(model="tiny", prompt="one two three", stop=["three"])
    assert stopped.choices[0].text == "tiny: one two"
    listed = chat(client, "tiny", "a b c d", stop="c", max_completion_tokens=10, seed=7,
                  temperature=0.0, top_p=0.5, n=1)
    assert listed.choices[0].message.content == "tiny: a b"


def test_versions_and_alias_route_to_their_adapter(served: Served) -> None:
    client = served.client()
    assert chat(client, "support@prod", "hi").choices[0].message.content == f"{served.v1.id}: hi"
    assert chat(client, "support@v2", "hi").choices[0].message.content == f"{served.v2.id}: hi"
    assert chat(client, "support", "hi").choices[0].message.content == f"{served.v2.id}: hi"
    assert chat(client, served.v1.id, "hi").choices[0].message.content == f"{served.v1.id}: hi"


def test_chat_stream_with_usage(served: Served) -> None:
    chunks = list(
        chat(served.client(), "support@prod", "one two three", stream=True,
             stream_options={"include_usage": True})
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"{served.v1.id}: one two three"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 3 + 4
    assert all(c.usage is None for c in chunks[:-1])


def test_completion_stream_plain_sse(served: Served) -> None:
    body = {"model": "tiny", "prompt": "x y", "stream": True, "max_tokens": 2}
    with httpx.stream("POST", f"{served.url}/v1/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert all(c["object"] == "text_completion" and "usage" not in c for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks) == "tiny: x"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


# ---------------------------------------------------------------- errors


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return dict(body["error"])


def test_unknown_model_is_404_model_not_found(served: Served) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        chat(served.client(), "no-such-model", "hi")
    assert info.value.status_code == 404 and info.value.code == "model_not_found"
    assert info.value.param == "model" and "no-such-model" in info.value.message
    with pytest.raises(openai.NotFoundError):
        served.client().completions.create(model="support@staging", prompt="hi")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n": 2}, "n"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 5}, "temperature"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "top_p": "x"}, "top_p"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stop": 3}, "stop"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "seed": 1.5}, "seed"),
        # Past torch's range: once a worker-killing overflow inside the backend.
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "seed": 2**64}, "seed"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "seed": -(2**63) - 1}, "seed"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**30}, "max_tokens"),
        ({"model": "t" * 300, "messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stop": "s" * 300}, "stop"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
          "stream_options": {"include_usage": True}}, "stream_options"),
        ({"model": "tiny"}, "messages"),
        ({"model": "tiny", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"model": "tiny", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "tiny", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
         "messages[0].content[0].text"),
        ({"model": "tiny", "messages": [{"role": "user", "content": [{"type": "text", "text": 7}]}]},
         "messages[0].content[0].text"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ],
)
def test_invalid_chat_body_names_the_param(served: Served, body: dict[str, Any], param: str) -> None:
    response = served.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_invalid_completion_body_and_json(served: Served) -> None:
    response = served.post("/v1/completions", json={"model": "tiny", "prompt": ["a", 1]})
    assert response.status_code == 400 and error_of(response)["param"] == "prompt[1]"
    assert "a list of token ids" in error_of(response)["message"]
    response = served.post("/v1/completions", content=b"{not json",
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "JSON" in error_of(response)["message"]
    response = served.post("/v1/chat/completions", json=["a list"])
    assert response.status_code == 400 and "object" in error_of(response)["message"]
    with pytest.raises(openai.BadRequestError) as info:
        chat(served.client(), "tiny", "hi", n=3)
    assert info.value.param == "n"


def test_openapi_document_covers_every_route_with_the_validating_models(served: Served) -> None:
    from gateway.serving.app import ROUTES
    from gateway.serving.openapi import REF
    from gateway.serving.requests import ChatCompletionRequest

    document = httpx.get(f"{served.url}/openapi.json").json()
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served_routes = {(route.path, method) for route in ROUTES for method in route.methods or ()
                     if method != "HEAD" and route.path != "/openapi.json"}
    assert documented == served_routes
    chat_body = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    assert chat_body["content"]["application/json"]["schema"] == {"$ref": REF.format(model="ChatCompletionRequest")}
    schema = ChatCompletionRequest.model_json_schema(ref_template=REF)
    schema.pop("$defs")
    assert document["components"]["schemas"]["ChatCompletionRequest"] == schema
    assert document["components"]["schemas"]["ErrorResponse"]["required"] == ["error"]


def test_unknown_route_and_wrong_method(served: Served) -> None:
    response = httpx.get(f"{served.url}/v1/embeddings")
    assert response.status_code == 404 and "/v1/embeddings" in error_of(response)["message"]
    response = httpx.get(f"{served.url}/v1/chat/completions")
    assert response.status_code == 405
    error_of(response)


def test_backend_errors_map_to_status(served: Served) -> None:
    client = served.client()
    with pytest.raises(openai.APIStatusError) as info:
        chat(client, "tiny", "please fail: unavailable")
    assert info.value.status_code == 503
    with pytest.raises(openai.APIStatusError) as info:
        chat(client, "flaky", "hi")  # its backend fails to start
    assert info.value.status_code == 503 and "warming up" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, "tiny", "please fail: bad")
    assert "refuses" in info.value.message
    with pytest.raises(openai.InternalServerError) as info:
        chat(client, "tiny", "please fail: crash", stream=True)
    assert info.value.status_code == 500
    response = served.post("/v1/chat/completions",
                           json={"model": "tiny", "messages": [{"role": "user", "content": "please fail: crash"}]})
    message = error_of(response)["message"]
    assert response.status_code == 500 and "echo crashed" not in message and "reference" in message
    reference = message.rsplit("reference ", 1)[1].rstrip(").")
    deadline = time.monotonic() + 5
    while f"[{reference}] RuntimeError: echo crashed" not in (served.home / "server.log").read_text():
        assert time.monotonic() < deadline, "the details never reached the server log"
        time.sleep(0.1)


def test_error_after_stream_started_is_the_last_event(served: Served) -> None:
    body = {"model": "tiny", "stream": True, "messages": [{"role": "user", "content": "please fail: midstream"}]}
    with httpx.stream("POST", f"{served.url}/v1/chat/completions", json=body) as response:
        raw = response.read().decode()
    events = [e for e in raw.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][6:])["error"]
    assert error["code"] == "internal_error" and "echo broke" not in error["message"]


# ---------------------------------------------------------------- health, metrics, log


def test_health(served: Served) -> None:
    chat(served.client(), "tiny", "warm")
    body = httpx.get(f"{served.url}/status").json()
    assert body["status"] == "ok" and body["auth"] == "none"
    assert body["backends"]["echo:tiny"]["status"] == "ok"


def metric_values(url: str) -> dict[str, float]:
    samples = [line.rsplit(" ", 1) for line in httpx.get(f"{url}/metrics").text.splitlines()
               if line and not line.startswith("#")]
    return {name: float(value) for name, value in samples}


def test_metrics_exposition(served: Served) -> None:
    client = served.client()
    before = metric_values(served.url)
    for _ in range(3):
        chat(client, "support@v2", "m e t")
    list(chat(client, "support@v2", "s", stream=True))
    with pytest.raises(openai.NotFoundError):
        chat(client, "metric-ghost", "x")
    text = httpx.get(f"{served.url}/metrics").text
    assert "# TYPE gateway_requests_total counter" in text
    assert "# TYPE gateway_request_latency_seconds histogram" in text
    after = metric_values(served.url)

    def grew(name: str) -> float:
        return after[name] - before.get(name, 0)

    assert grew('gateway_requests_total{model="support@v2",route="/v1/chat/completions",status="200"}') == 4
    assert grew('gateway_tokens_total{model="support@v2",type="prompt"}') == 10
    assert grew('gateway_tokens_total{model="support@v2",type="completion"}') == 3 * 4 + 2
    assert grew('gateway_request_latency_seconds_count{model="support@v2"}') == 4
    assert grew('gateway_request_latency_seconds_bucket{model="support@v2",le="+Inf"}') == 4
    assert grew('gateway_time_to_first_token_seconds_count{model="support@v2"}') == 1
    assert grew('gateway_requests_total{model="(unknown)",route="/v1/chat/completions",status="404"}') == 1
    # Buckets are cumulative.
    buckets = [v for k, v in after.items() if k.startswith('gateway_request_latency_seconds_bucket{model="support@v2"')]
    assert buckets == sorted(buckets)


def test_request_log_rows(served: Served) -> None:
    client = served.client()
    chat(client, "support@prod", "logged one")
    list(chat(client, "support@prod", "logged two", stream=True))
    with pytest.raises(openai.NotFoundError):
        chat(client, "ghost-model", "x")
    served.queue_empty()
    rows = served.store.query(
        "SELECT * FROM request_log WHERE model IN ('support@prod', 'ghost-model') ORDER BY created"
    )
    plain = [r for r in rows if r["model"] == "support@prod" and not r["stream"]][-1]
    assert plain["route"] == "/v1/chat/completions" and plain["status"] == 200
    assert plain["model_version_id"] == served.v1.id and plain["adapter"] == served.v1.id
    assert plain["backend"] == "echo" and plain["error"] is None
    assert (plain["prompt_tokens"], plain["completion_tokens"]) == (2, 3)
    assert plain["latency_ms"] > 0
    streamed = [r for r in rows if r["model"] == "support@prod" and r["stream"]][-1]
    assert streamed["ttft_ms"] is not None and streamed["ttft_ms"] <= streamed["latency_ms"]
    assert streamed["completion_tokens"] == 3
    ghost = [r for r in rows if r["model"] == "ghost-model"][-1]
    assert ghost["status"] == 404 and "ghost-model" in ghost["error"]


HOLD_LOCK = """
import sys, time, duckdb
while True:
    try:
        con = duckdb.connect(sys.argv[1])
        break
    except duckdb.IOException:
        time.sleep(0.02)
print("locked", flush=True)
sys.stdin.readline()
con.close()
"""


def test_locked_store_never_stalls_responses(served: Served) -> None:
    client = served.client(timeout=5.0)
    chat(client, "support@prod", "warm up")
    served.queue_empty()
    before = served.store.query_one("SELECT count(*) AS n FROM request_log")
    assert before is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(served.home / "gateway.duckdb")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        for i in range(5):
            reply = chat(client, "support@prod", f"while locked {i}")
            assert reply.choices[0].message.content.endswith(f"locked {i}")
        elapsed = time.monotonic() - started
        time.sleep(0.6)  # several flush intervals pass while the file stays locked
        assert httpx.get(f"{served.url}/status", timeout=5).json()["request_log_queue"] == 5
        assert elapsed < 3.0, f"5 requests took {elapsed:.1f}s with the store locked"
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(10)
    served.queue_empty()
    after = served.store.query_one("SELECT count(*) AS n FROM request_log")
    assert after is not None and after["n"] == before["n"] + 5


def test_client_leaving_before_a_plain_answer_is_logged_as_499(served: Served) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "please be slow, I may leave"}]}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up after 0.5 s of a 2 s answer
        httpx.post(f"{served.url}/v1/chat/completions", json=body, timeout=0.5)
    deadline = time.monotonic() + 10
    while True:
        served.queue_empty()
        rows = served.store.query("SELECT status, error, route FROM request_log "
                                  "WHERE status = 499 AND NOT stream")
        if rows:
            break
        assert time.monotonic() < deadline, "the abandoned request was never logged"
        time.sleep(0.2)
    # Not a 500 and not a 200: the client got nothing.
    assert rows == [{"status": 499, "error": "client closed the connection",
                     "route": "/v1/chat/completions"}]


def test_client_leaving_a_stream_is_logged_as_499(served: Served) -> None:
    body = {"model": "tiny", "stream": True,
            "messages": [{"role": "user", "content": "please be slow and wait for me"}]}
    with httpx.stream("POST", f"{served.url}/v1/chat/completions", json=body) as response:
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    deadline = time.monotonic() + 10
    while True:
        served.queue_empty()
        rows = served.store.query("SELECT status, error FROM request_log WHERE status = 499")
        if rows:
            break
        assert time.monotonic() < deadline, "the abandoned stream was never logged"
        time.sleep(0.2)
    assert rows[0]["error"] == "client closed the connection"


def test_request_log_is_written_at_shutdown(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # Far longer than the test: only the shutdown flush can write the rows.
    (home / "config.toml").write_text('default_backend = "echo"\n[server]\nlog_flush_interval = 3600\n')
    add_base_model(Store(home / "gateway.duckdb"), BaseModel(name="tiny", source="path", path="/m/tiny"))
    plugins = write_echo_plugin(tmp_path / "plugins")
    with gateway_server(home, pythonpath=[plugins], env={"GATEWAY_PLUGINS": "echo"}) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        for _ in range(3):
            chat(client, "tiny", "bye")
        assert httpx.get(f"{url}/status").json()["request_log_queue"] == 3
    rows = Store(home / "gateway.duckdb").query("SELECT status FROM request_log")
    assert [r["status"] for r in rows] == [200, 200, 200]
    assert "Serving on http://127.0.0.1:" in (home / "server.log").read_text()


def test_bodies_that_once_gave_500s_get_400s(served: Served) -> None:
    hi = '"messages": [{"role": "user", "content": "hi"}]'
    bodies = {
        "lone surrogate": '{"model": "x\\ud800", ' + hi + "}",
        "deep nesting": '{"model": "tiny", ' + hi + ', "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "huge number": '{"model": "tiny", ' + hi + ', "max_tokens": ' + "9" * 5000 + "}",
        "invalid UTF-8": b'{"model": "tin\xff", ' + hi.encode() + b"}",
    }
    for name, body in bodies.items():
        response = served.post("/v1/chat/completions", content=body,
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (name, response.text)
        assert error_of(response)["type"] == "invalid_request_error", name
    assert "lone surrogate" in served.post(
        "/v1/chat/completions", content=bodies["lone surrogate"],
        headers={"Content-Type": "application/json"}).json()["error"]["message"]


def test_a_row_that_cannot_be_stored_is_set_aside_and_the_rest_written(tmp_path: Path) -> None:
    from gateway.serving.request_log import LogRow, RequestLog

    store = Store(tmp_path / "gateway.duckdb")
    log = RequestLog(store, interval=3600)
    for i in range(152):
        log.add(LogRow(route="/v1/chat/completions", model=f"m{i}", status=200))
    log.add(LogRow(route="/v1/chat/completions", model="x\ud800", status=400))
    assert log.flush() == 152
    assert log.rejected == 1 and log.pending() == 0 and log.dropped == 0
    assert store.query("SELECT count(*) AS n FROM request_log")[0]["n"] == 152


def test_write_errors_keep_the_rows_and_retry_with_backoff(tmp_path: Path) -> None:
    """A full disk (ENOSPC from the store) keeps every row queued until a write succeeds."""
    import errno

    from gateway.serving.request_log import LogRow, RequestLog

    class DiskFull(Store):
        failures = 3

        def executemany(self, sql: str, rows: Any) -> None:
            if self.failures:
                self.failures -= 1
                raise OSError(errno.ENOSPC, "No space left on device")
            super().executemany(sql, rows)

    store = DiskFull(tmp_path / "gateway.duckdb")
    log = RequestLog(store, interval=0.5)
    for i in range(3000):
        log.add(LogRow(route="/v1/completions", model=f"m{i}", status=200))
    backoffs = []
    for _ in range(3):
        assert log.flush() == 0 and log.pending() == 3000
        backoffs.append(log._backoff)
    assert backoffs == [0.5, 1.0, 2.0] and log.dropped == 0
    assert log.flush() == 3000 and log.pending() == 0 and log._backoff == 0.0
    assert store.query("SELECT count(*) AS n FROM request_log")[0]["n"] == 3000


def test_cross_site_and_rebinding_requests_are_refused(served: Served) -> None:
    load = {"lora_name": "a1", "lora_path": "/nowhere"}
    # A form a web page can send without asking: text/plain, with its Origin.
    plain = served.post("/v1/load_lora_adapter", content=json.dumps(load),
                        headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415 and error_of(plain)["code"] == "unsupported_media_type"
    cross = served.post("/v1/load_lora_adapter", json=load, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and error_of(cross)["code"] == "cross_site_request"
    unload = httpx.request("DELETE", f"{served.url}/v1/files/file-x", headers={"Origin": "http://evil.example"})
    assert unload.status_code == 403
    port = served.url.rsplit(":", 1)[1]
    rebound = httpx.get(f"{served.url}/v1/models", headers={"Host": f"evil.example:{port}"})
    assert rebound.status_code == 400 and error_of(rebound)["code"] == "invalid_host"
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert httpx.get(f"{served.url}/v1/models", headers={"Host": host}).status_code == 200
    # No CORS: a preflight gets no Access-Control-Allow-Origin.
    preflight = httpx.options(f"{served.url}/v1/chat/completions",
                              headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_ready_waits_for_the_configured_models_to_load(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        'default_backend = "echo"\n[backends."tiny"]\nbackend = "echo"\nstart_delay = 3\n'
        '[backends."flaky"]\nbackend = "echo"\nfail_start = true\n')
    store = Store(home / "gateway.duckdb")
    add_base_model(store, BaseModel(name="tiny", source="path", path="/m/tiny"))
    add_base_model(store, BaseModel(name="flaky", source="path", path="/m/flaky"))
    plugins = write_echo_plugin(tmp_path / "plugins")
    with gateway_server(home, pythonpath=[plugins], env={"GATEWAY_PLUGINS": "echo"}) as url:
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        loading = httpx.get(f"{url}/ready")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        deadline = time.monotonic() + 20
        while (answer := httpx.get(f"{url}/ready")).json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        # tiny loaded before any request; flaky failed, and /ready says so.
        assert answer.status_code == 503 and answer.json() == {"status": "failed", "failed": ["flaky"]}
        assert "echo:tiny" in httpx.get(f"{url}/status").json()["backends"]


def test_bodies_are_bounded_and_stalled_bodies_time_out(tmp_path: Path) -> None:
    import socket

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        'default_backend = "echo"\n[server]\nmax_body_mb = 0.01\nread_timeout = 1\n')
    add_base_model(Store(home / "gateway.duckdb"), BaseModel(name="tiny", source="path", path="/m/tiny"))
    plugins = write_echo_plugin(tmp_path / "plugins")
    with gateway_server(home, pythonpath=[plugins], env={"GATEWAY_PLUGINS": "echo"}) as url:
        big = {"model": "tiny", "messages": [{"role": "user", "content": "x" * 20_000}]}
        response = httpx.post(f"{url}/v1/chat/completions", json=big)
        assert response.status_code == 413 and error_of(response)["code"] == "body_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"model": "tiny", "messages": [{"role": "user", "content": "'
            for _ in range(30):
                yield b"y" * 1000
            yield b'"}]}'

        streamed = httpx.post(f"{url}/v1/chat/completions", content=chunks(),
                              headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        # Half a request, then silence: answered 408 after read_timeout, not held open.
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\"")
            started = time.monotonic()
            reply = sock.recv(4096)
            assert reply.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 8
        assert chat(openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0), "tiny", "ok") \
            .choices[0].message.content == "tiny: ok"


def test_unknown_models_are_cached_as_unknown(tmp_path: Path) -> None:
    import asyncio

    from gateway.config import load_config
    from gateway.errors import NotFoundError
    from gateway.router import Router
    from gateway.serving.resolver import ResolveCache

    config = load_config(home=tmp_path)
    router = Router(config, Store(config.db_path))
    calls: list[str] = []
    real = router.resolve

    def counted(model: str) -> Any:
        calls.append(model)
        return real(model)

    router.resolve = counted  # type: ignore[method-assign]
    cache = ResolveCache(router, ttl=60)

    async def ask() -> int:
        misses = 0
        for _ in range(50):
            try:
                await cache.resolve("made-up")
            except NotFoundError:
                misses += 1
        return misses

    assert asyncio.run(ask()) == 50 and calls == ["made-up"]


def test_request_log_retention_deletes_old_rows(tmp_path: Path) -> None:
    from datetime import timedelta

    from gateway.serving.request_log import LogRow, RequestLog
    from gateway.util import utcnow

    store = Store(tmp_path / "gateway.duckdb")
    log = RequestLog(store, interval=3600, retention_days=30)
    log.add(LogRow(route="/v1/models", status=200, created=utcnow() - timedelta(days=31)))
    log.add(LogRow(route="/v1/models", status=200))
    assert log.flush() == 2
    assert log.expire() == 1
    assert store.query("SELECT count(*) AS n FROM request_log")[0]["n"] == 1


def test_sigterm_lets_requests_in_flight_finish_and_flushes_the_log(tmp_path: Path) -> None:
    import signal
    import threading

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('default_backend = "echo"\n[server]\nlog_flush_interval = 3600\n')
    add_base_model(Store(home / "gateway.duckdb"), BaseModel(name="tiny", source="path", path="/m/tiny"))
    plugins = write_echo_plugin(tmp_path / "plugins")
    processes: list[subprocess.Popen[bytes]] = []
    chunks: list[str] = []
    started = threading.Event()
    with gateway_server(home, pythonpath=[plugins], env={"GATEWAY_PLUGINS": "echo"},
                        processes=processes) as url:

        def stream() -> None:
            body = {"model": "tiny", "stream": True,
                    "messages": [{"role": "user", "content": "please be slow one two three four"}]}
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
                for line in response.iter_lines():
                    chunks.append(line)
                    started.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert started.wait(10)
        processes[0].send_signal(signal.SIGTERM)
        reader.join(30)
        assert processes[0].wait(30) == 0
    events = [c for c in chunks if c]
    assert events[-1] == "data: [DONE]" and len(events) > 5 and not any('"error"' in c for c in events)
    rows = Store(home / "gateway.duckdb").query("SELECT status, stream FROM request_log")
    assert rows == [{"status": 200, "stream": True}]
