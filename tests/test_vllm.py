"""The vllm backend against a real vLLM server (the CPU build), through a real
`gateway serve` and the official openai SDK.

GATEWAY_VLLM_PYTHON names the interpreter of a venv with vLLM in it (the tox
env `vllm` builds one); without it the server tests skip. vLLM is launched by
the gateway once for the whole module (about 90 s on 2 cores, more under load)
and once more by the restart test, which comes last.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway_vllm import protocol
from gateway_vllm.adapters import check_adapter, rank_limit
from servers import gateway_server
from tool_template import write_tool_template

from gateway.contracts import (
    BackendRequestError,
    BackendUnavailable,
    ChatRequest,
    GenerationParams,
    JobControl,
    ModelTarget,
    TrainingResult,
    TrainingSpec,
)
from gateway.registry import BaseModel, ModelVersion, add_base_model, create_version
from gateway.store import Store
from gateway.testing import backend_context

# Launching vLLM (and training the adapter) happens in the first test's setup.
pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1800)]

VLLM_PYTHON = os.environ.get("GATEWAY_VLLM_PYTHON")
needs_vllm = pytest.mark.skipif(not VLLM_PYTHON, reason="GATEWAY_VLLM_PYTHON is not set")
BASE = "smollm2-135m"
BACKEND_KEY = f"vllm:{BASE}"
# Long enough for vLLM's first launch on a loaded 2-core machine.
SLOW_CALL_S = 900.0
PARITY_PROMPTS = [
    "What is 12 plus 7?",
    "What is 30 plus 25?",
    "What is the capital of France?",
    "Name three colours.",
    "What is 3 plus 38?",
    "Write one sentence about the sea.",
    "What is 21 plus 21?",
    "Who wrote Hamlet?",
]


# ---------------------------------------------------------------- adapters on disk


def write_chat_file(path: Path, count: int = 32) -> Path:
    rnd = random.Random(0)
    with path.open("w") as fh:
        for _ in range(count):
            a, b = rnd.randint(1, 40), rnd.randint(1, 40)
            messages = [
                {"role": "user", "content": f"What is {a} plus {b}?"},
                {"role": "assistant", "content": f"Sum: {a + b}. Done."},
            ]
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


class _Running:
    def cancelled(self) -> bool:
        return False


def train_adapter(base_dir: Path, work: Path) -> Path:
    """A real LoRA adapter from the local trainer, with a learning rate high enough
    that its answers differ from the base model's."""
    from gateway_local.trainer import LocalTrainer

    work.mkdir(parents=True)
    spec = TrainingSpec(
        job_id="vllm-test", base=BASE, base_path=str(base_dir),
        training_file=write_chat_file(work / "train.jsonl"), validation_file=None, suffix=None,
        hyperparameters={"lora_r": 8, "lora_alpha": 16, "max_steps": 8, "batch_size": 4,
                         "learning_rate": 3e-3, "max_seq_len": 96, "checkpoint_steps": 0},
        output_dir=work / "job",
    )
    control: JobControl = _Running()
    results = [e for e in LocalTrainer().train(spec, control) if isinstance(e, TrainingResult)]
    assert results and results[0].artifact_path is not None
    return results[0].artifact_path


def peft_adapter(base_dir: Path, dest: Path, rank: int, seed: int) -> Path:
    """A LoRA adapter with random B weights (so that it changes the outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj", "o_proj"])
    peft_model = get_peft_model(model, lora)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    peft_model.save_pretrained(dest)
    return dest


def edited_copy(source: Path, dest: Path, **changes: Any) -> Path:
    shutil.copytree(source, dest)
    config_file = dest / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config.update(changes)
    config_file.write_text(json.dumps(config))
    return dest


# ---------------------------------------------------------------- the served gateway


@dataclass
class Served:
    url: str
    home: Path
    base_dir: Path
    trained: ModelVersion
    adapters: dict[str, Path]

    @property
    def store(self) -> Store:
        return Store(self.home / "gateway.duckdb")

    def client(self, timeout: float = 300.0) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0,
                             timeout=timeout)

    def backend_health(self) -> dict[str, Any]:
        health: dict[str, Any] = httpx.get(f"{self.url}/status", timeout=30).json()
        return dict(health["backends"][BACKEND_KEY])

    def vllm_models(self) -> dict[str, dict[str, Any]]:
        """What vLLM itself serves now, asked directly."""
        url = self.backend_health()["url"]
        data = httpx.get(f"{url}/v1/models", timeout=30).json()["data"]
        return {m["id"]: m for m in data}

    def vllm_log(self) -> str:
        return (self.home / "logs" / f"vllm-{BASE}.log").read_text(errors="replace")


def chat(client: openai.OpenAI, model: str, content: str, **kwargs: Any) -> Any:
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], **kwargs
    )


def _pid_gone(pgid: int) -> bool:
    """Whether no live process is left in the process group `pgid` (vLLM's API
    server leads its group; its engine processes belong to it). Zombies count as gone."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return False
    return True


@pytest.fixture(scope="module")
def served(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not VLLM_PYTHON:
        pytest.skip("GATEWAY_VLLM_PYTHON is not set")
    tmp = tmp_path_factory.mktemp("vllm")
    home, roots = tmp / "home", tmp / "home" / "roots"
    roots.mkdir(parents=True)
    trained_dir = train_adapter(smollm2_dir, tmp / "train")
    template = write_tool_template(tmp / "hermes.jinja")
    adapters = {
        "trained": trained_dir,
        "second": peft_adapter(smollm2_dir, roots / "second", rank=8, seed=2),
        "rank32": peft_adapter(smollm2_dir, tmp / "rank32", rank=32, seed=3),
        "modules_to_save": edited_copy(trained_dir, tmp / "mts", modules_to_save=["lm_head"]),
    }
    (home / "config.toml").write_text(
        'adapter_roots = ["roots"]\n'
        "[server]\nlog_flush_interval = 0.2\n"
        f'[backends."{BASE}"]\nbackend = "vllm"\npython = {json.dumps(VLLM_PYTHON)}\n'
        # float32 on both sides, so the parity test compares adapter maths, not bf16 rounding.
        # The tools-capable template renders as SmolLM2's own when a request has no tools.
        f'args = ["--max-model-len", "2048", "--dtype", "float32", "--chat-template", '
        f'{json.dumps(str(template))}, "--enable-auto-tool-choice", "--tool-call-parser", "hermes"]\n'
        "startup_timeout = 600\n"
    )
    store = Store(home / "gateway.duckdb")
    add_base_model(store, BaseModel(name=BASE, source="path", path=str(smollm2_dir)))
    trained = create_version(store, base=BASE, name="support", kind="local",
                             artifact_uri=str(trained_dir))
    with gateway_server(home) as url:
        served = Served(url, home, smollm2_dir, trained, adapters)
        # The first request launches vLLM; later ones find it running.
        chat(served.client(SLOW_CALL_S), BASE, "Hi", max_tokens=1)
        pids = {served.backend_health()["pid"]}
        try:
            yield served
        finally:
            pids.add(served.backend_health().get("pid"))
    # `gateway serve` stopped: every vLLM it launched must be gone with it.
    deadline = time.monotonic() + 30
    live = {p for p in pids if p}
    while live and time.monotonic() < deadline:
        live = {p for p in live if not _pid_gone(p)}
        time.sleep(0.2)
    assert not live, f"vLLM processes outlived the gateway: {live}"


# ---------------------------------------------------------------- serving


@needs_vllm
def test_launched_with_rank_from_registered_adapters(served: Served) -> None:
    health = served.backend_health()
    assert health["status"] == "ok" and health["mode"] == "launch"
    assert health["max_lora_rank"] == 8
    models = served.vllm_models()
    assert models[BASE]["parent"] is None


@needs_vllm
def test_base_and_adapter_chat(served: Served) -> None:
    client = served.client()
    base = chat(client, BASE, "What is the capital of France?", max_tokens=16, temperature=0)
    assert "Paris" in base.choices[0].message.content
    assert base.usage.prompt_tokens > 0 and 0 < base.usage.completion_tokens <= 16
    answers = {}
    for model in (served.trained.id, "support@v1", "support"):
        reply = chat(client, model, "What is 12 plus 7?", max_tokens=16, temperature=0)
        assert reply.model == model
        answers[model] = reply.choices[0].message.content
    assert len(set(answers.values())) == 1
    base_answer = chat(client, BASE, "What is 12 plus 7?", max_tokens=16, temperature=0)
    assert base_answer.choices[0].message.content != answers["support"]
    # vLLM serves the adapter under its immutable version id, parented to the base.
    assert served.vllm_models()[served.trained.id]["parent"] == BASE


@needs_vllm
def test_structured_outputs_and_vllm_parameters_pass_through(served: Served) -> None:
    import jsonschema
    from test_structured_outputs import TICKET, Ticket, schema_format

    client = served.client()
    question = [{"role": "user", "content": "Classify this ticket: my order never arrived."}]
    reply = client.chat.completions.create(model="support", messages=question, max_tokens=40,
                                           temperature=0, response_format=schema_format("t", TICKET))
    assert reply.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(reply.choices[0].message.content), TICKET)
    completions = client.chat.completions
    parse = completions.parse if hasattr(completions, "parse") else client.beta.chat.completions.parse
    parsed = parse(model=BASE, messages=question, max_tokens=40, temperature=0, response_format=Ticket)
    assert isinstance(parsed.choices[0].message.parsed, Ticket)
    # vLLM's own sampling parameters reach it: top_k=1 at temperature 1 is greedy decoding.
    greedy = chat(client, BASE, "Name a colour.", max_tokens=8, temperature=0).choices[0].message.content
    top_1 = chat(client, BASE, "Name a colour.", max_tokens=8, temperature=1.0, seed=3,
                 extra_body={"top_k": 1, "min_p": 0.0, "repetition_penalty": 1.0})
    assert top_1.choices[0].message.content == greedy
    # Logprobs come back from vLLM in OpenAI's shape, streamed and not; echo scores a prompt.
    scored = chat(client, BASE, "Name a colour.", max_tokens=4, temperature=0, logprobs=True, top_logprobs=2)
    content = scored.choices[0].logprobs.content
    assert len(content) == scored.usage.completion_tokens and len(content[0].top_logprobs) == 2
    chunks = client.chat.completions.create(model=BASE, messages=[{"role": "user", "content": "Name a colour."}],
                                            max_tokens=4, temperature=0, logprobs=True, stream=True)
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [e.token for e in streamed] == [e.token for e in content]
    echo = client.completions.create(model=BASE, prompt="The sky is", max_tokens=0, echo=True, logprobs=1)
    assert echo.choices[0].text == "The sky is" and echo.choices[0].logprobs.token_logprobs[0] is None


@needs_vllm
def test_tools_and_batched_prompts_pass_through(served: Served) -> None:
    from test_tools import ASK, FORCE_WEATHER, ROUND_TRIP, TOOLS, check_weather_call, streamed_call

    client = served.client()
    # A named function: vLLM decodes its arguments under the schema and answers tool_calls.
    reply = client.chat.completions.create(model="support", messages=ASK, tools=TOOLS, max_tokens=60,
                                           temperature=0, tool_choice=FORCE_WEATHER)
    check_weather_call(reply.choices[0].message.tool_calls)
    stream = client.chat.completions.create(model=BASE, messages=ASK, tools=TOOLS, max_tokens=60,
                                            temperature=0, tool_choice=FORCE_WEATHER, stream=True)
    call, _ = streamed_call(stream)
    check_weather_call([call])
    # "auto" reaches vLLM's hermes parser; a tool result in the request reaches the prompt.
    auto = client.chat.completions.create(model=BASE, messages=ROUND_TRIP, tools=TOOLS, max_tokens=8,
                                          temperature=0, parallel_tool_calls=False)
    plain = client.chat.completions.create(model=BASE, messages=ROUND_TRIP[-1:], max_tokens=8, temperature=0)
    assert auto.usage.prompt_tokens - plain.usage.prompt_tokens > 30
    # A batch of prompts, as text and as token ids: one choice each, in order.
    texts = client.completions.create(model=BASE, prompt=["The sky is", "Two plus two is"],
                                      max_tokens=4, temperature=0)
    assert [c.index for c in texts.choices] == [0, 1]
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(served.base_dir)(["The sky is", "Two plus two is"])["input_ids"]
    by_ids = client.completions.create(model=BASE, prompt=ids, max_tokens=4, temperature=0)
    assert [c.text for c in by_ids.choices] == [c.text for c in texts.choices]


@needs_vllm
def test_streaming_matches_and_carries_usage(served: Served) -> None:
    client = served.client()
    whole = chat(client, "support", "What is 30 plus 25?", max_tokens=16, temperature=0)
    chunks = list(chat(client, "support", "What is 30 plus 25?", max_tokens=16, temperature=0,
                       stream=True, stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3, "the answer arrived in one piece, not streamed"
    assert "".join(pieces) == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens

    completion = client.completions.create(model=BASE, prompt="The capital of France is",
                                           max_tokens=8, temperature=0)
    streamed = client.completions.create(model=BASE, prompt="The capital of France is",
                                         max_tokens=8, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == completion.choices[0].text
    assert completion.usage.completion_tokens == 8


@needs_vllm
def test_usage_lands_in_the_request_log(served: Served) -> None:
    chat(served.client(), "support", "Name three colours.", max_tokens=8, temperature=0)
    deadline = time.monotonic() + 30
    while True:
        rows = served.store.query(
            "SELECT prompt_tokens, completion_tokens, status FROM request_log "
            "WHERE backend = 'vllm' AND model = 'support' AND completion_tokens > 0"
        )
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert rows and all(r["status"] == 200 and r["prompt_tokens"] > 0 for r in rows)


@needs_vllm
def test_runtime_adapter_load_and_unload(served: Served) -> None:
    path = str(served.adapters["second"])
    loaded = httpx.post(f"{served.url}/v1/load_lora_adapter", timeout=120,
                        json={"lora_name": "second", "lora_path": path})
    assert loaded.status_code == 200, loaded.text
    assert "added successfully" in loaded.text
    assert served.vllm_models()["second"]["parent"] == BASE
    reply = chat(served.client(), "second", "Hello", max_tokens=8, temperature=0)
    assert reply.usage.completion_tokens > 0

    unloaded = httpx.post(f"{served.url}/v1/unload_lora_adapter", timeout=120,
                          json={"lora_name": "second"})
    assert unloaded.status_code == 200, unloaded.text
    assert "second" not in served.vllm_models()
    with pytest.raises(openai.NotFoundError):
        chat(served.client(), "second", "Hello", max_tokens=8)


def _refused(served: Served, name: str, adapter: Path, needle: str) -> None:
    create_version(served.store, base=BASE, name=name, kind="local", artifact_uri=str(adapter))
    loads_before = served.vllm_log().count("load_lora_adapter")
    with pytest.raises(openai.BadRequestError) as caught:
        chat(served.client(), name, "Hello", max_tokens=4)
    message = caught.value.body["message"]  # type: ignore[index]
    assert needle in message and name in message
    # Refused by the gateway: vLLM never heard of it.
    assert served.vllm_log().count("load_lora_adapter") == loads_before
    assert not any(name in model for model in served.vllm_models())


@needs_vllm
def test_refuses_modules_to_save_before_vllm(served: Served) -> None:
    _refused(served, "with-mts", served.adapters["modules_to_save"], "modules_to_save")


@needs_vllm
def test_refuses_rank_above_the_limit_before_vllm(served: Served) -> None:
    _refused(served, "wide", served.adapters["rank32"], "rank 32")


@needs_vllm
def test_attach_mode_on_the_running_vllm(served: Served) -> None:
    from gateway_vllm.backend import VllmBackend

    url = served.backend_health()["url"]

    async def run() -> tuple[str, str, list[str]]:
        backend = VllmBackend({"url": url, "max_lora_rank": 8},
                              backend_context(BASE, served.base_dir, home=served.home))
        await backend.start()
        try:
            params = GenerationParams(max_tokens=8, temperature=0)
            messages = [{"role": "user", "content": "What is 12 plus 7?"}]
            base = await backend.chat(ChatRequest(ModelTarget(BASE, BASE), messages, params))
            target = ModelTarget("attached", BASE, str(served.base_dir), adapter_name="attached",
                                 adapter_path=str(served.adapters["trained"]))
            adapted = await backend.chat(ChatRequest(target, messages, params))
            health = await backend.health()
            await backend.unload_adapter(target)
            return base.text, adapted.text, health["adapters"]
        finally:
            await backend.close()

    async def confined(roots: list[Path]) -> BaseException | None:
        backend = VllmBackend({"url": url, "max_lora_rank": 8},
                              backend_context(BASE, served.base_dir, home=served.home, adapter_roots=roots))
        await backend.start()
        target = ModelTarget("elsewhere", BASE, str(served.base_dir), adapter_name="elsewhere",
                             adapter_path=str(served.adapters["trained"]))
        try:
            await backend.chat(ChatRequest(target, [{"role": "user", "content": "hi"}],
                                           GenerationParams(max_tokens=2, temperature=0)))
        except BackendRequestError as exc:
            return exc
        finally:
            await backend.close()
        return None

    base_text, adapted_text, adapters = asyncio.run(run())
    assert base_text and adapted_text and adapters == ["attached"]
    # With roots named (as the host always does), a runtime adapter outside them is refused
    # at publish time, before vLLM is asked.
    refused = asyncio.run(confined([served.home / "no-adapters-here"]))
    assert refused is not None and "outside the allowed adapter roots" in str(refused)
    assert "elsewhere" not in served.vllm_models()
    assert "attached" not in served.vllm_models()
    # Attaching never owns the server: closing the backend left vLLM running.
    assert served.backend_health()["status"] == "ok"


# ---------------------------------------------------------------- parity


def _local_answers(base_dir: Path, adapter: Path, max_tokens: int) -> list[str]:
    from gateway_local.backend import LocalBackend

    async def run() -> list[str]:
        backend = LocalBackend({"dtype": "float32"}, backend_context(BASE, base_dir))
        await backend.start()
        try:
            target = ModelTarget("support", BASE, str(base_dir), adapter_name="support",
                                 adapter_path=str(adapter))
            params = GenerationParams(max_tokens=max_tokens, temperature=0)
            answers = []
            for prompt in PARITY_PROMPTS:
                messages = [{"role": "user", "content": prompt}]
                answers.append((await backend.chat(ChatRequest(target, messages, params))).text)
            return answers
        finally:
            await backend.close()

    return asyncio.run(run())


@needs_vllm
def test_parity_with_the_local_backend(served: Served) -> None:
    """The same trained adapter, greedy: vLLM's first 16 tokens against the local backend's."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(served.base_dir)
    client = served.client()
    on_vllm = [chat(client, "support", p, max_tokens=16, temperature=0).choices[0].message.content
               for p in PARITY_PROMPTS]
    local = _local_answers(served.base_dir, served.adapters["trained"], 16)
    same = prefix = total = exact = 0
    for ours, theirs in zip(on_vllm, local, strict=True):
        a = tokenizer.encode(ours, add_special_tokens=False)[:16]
        b = tokenizer.encode(theirs, add_special_tokens=False)[:16]
        pairs = list(zip(a, b, strict=False))
        same += sum(x == y for x, y in pairs)
        prefix += next((i for i, (x, y) in enumerate(pairs) if x != y), len(pairs))
        total += max(len(a), len(b))
        exact += a == b
    agreement = same / total
    print(f"\nvLLM/local parity: {exact}/{len(PARITY_PROMPTS)} prompts identical; token "
          f"agreement {agreement:.1%} ({same}/{total}), common prefix {prefix / total:.1%}")
    for ours, theirs in zip(on_vllm, local, strict=True):
        print(f"  vllm:  {ours!r}\n  local: {theirs!r}")
    assert agreement >= 0.9
    # The adapter matters: its answers are not the base model's.
    base = [chat(client, BASE, p, max_tokens=16, temperature=0).choices[0].message.content
            for p in PARITY_PROMPTS]
    assert base != on_vllm


# ---------------------------------------------------------------- failure


@needs_vllm
def test_vllm_killed_answers_503_then_restarts(served: Served) -> None:
    before = served.backend_health()
    # Killed mid-stream: the client's stream ends with an error event in OpenAI's shape.
    body = {"model": "support", "stream": True, "max_tokens": 400,
            "messages": [{"role": "user", "content": "Count from 1 to 500, one number a line."}]}
    events: list[str] = []
    with httpx.stream("POST", f"{served.url}/v1/chat/completions", json=body,
                      timeout=SLOW_CALL_S) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line.removeprefix("data: "))
            if len(events) == 3:  # the role chunk and two pieces: vLLM is mid-stream
                os.killpg(before["pid"], signal.SIGKILL)
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "service_unavailable" and "vLLM" in error["message"], error
    client = served.client()
    with pytest.raises(openai.APIStatusError) as caught:
        chat(client, "support", "Hello", max_tokens=4)
    assert caught.value.status_code == 503
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "service_unavailable"
    assert "vLLM" in body["message"]
    health = httpx.get(f"{served.url}/status", timeout=30).json()
    assert health["status"] == "degraded"

    deadline = time.monotonic() + SLOW_CALL_S
    while True:
        try:
            reply = chat(client, "support", "What is 12 plus 7?", max_tokens=8, temperature=0)
            break
        except openai.APIStatusError as exc:
            assert exc.status_code == 503, exc
            assert time.monotonic() < deadline, "vLLM never came back"
            time.sleep(2)
    assert reply.usage.completion_tokens > 0
    after = served.backend_health()
    assert after["restarts"] == before["restarts"] + 1 and after["pid"] != before["pid"]
    assert _pid_gone(before["pid"])
    # The adapter was published again to the new vLLM.
    assert served.trained.id in served.vllm_models()


# ---------------------------------------------------------------- no server needed


def test_rank_limit_rounds_up_to_vllm_values() -> None:
    assert rank_limit([]) == 8
    assert rank_limit([4, 8]) == 8
    assert rank_limit([9]) == 16
    assert rank_limit([33, 16]) == 64


def test_adapter_checks_name_the_problem(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    config = {"peft_type": "LORA", "r": 8, "base_model_name_or_path": "/models/other"}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    target = ModelTarget("x", "b", adapter_name="x", adapter_path=str(folder))
    with pytest.raises(BackendRequestError, match="trained on '/models/other'"):
        check_adapter(target, base="b", base_identities={"b"}, base_path="/models/b", max_rank=8)
    info = check_adapter(target, base="b", base_identities={"b", "/models/other"},
                         base_path=None, max_rank=8)
    assert info.rank == 8
    with pytest.raises(BackendRequestError, match="for base model 'b'"):
        check_adapter(target, base="c", base_identities={"c"}, base_path=None, max_rank=8)
    with pytest.raises(BackendRequestError, match=r"adapter_config\.json is missing"):
        check_adapter(ModelTarget("y", "b", adapter_path=str(tmp_path)), base="b",
                      base_identities={"b"}, base_path=None, max_rank=8)


def test_stream_events_become_deltas() -> None:
    events = [
        'data: {"choices":[{"delta":{"role":"assistant","content":""}}],"usage":null}',
        'data: {"choices":[{"delta":{"content":"Hel"}}],"usage":null}',
        "",
        'data: {"choices":[{"delta":{"content":"lo"},"finish_reason":"stop"}],"usage":null}',
        'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}',
        "data: [DONE]",
    ]

    async def lines() -> Any:
        for line in events:
            yield line

    async def collect() -> list[Any]:
        return [d async for d in protocol.deltas(lines(), chat=True)]

    deltas = asyncio.run(collect())
    assert [d.text for d in deltas] == ["Hel", "lo"]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage is not None and deltas[-1].usage.total_tokens == 5


def test_bad_settings_and_a_busy_port_are_refused_before_launch() -> None:
    import socket

    from gateway_vllm.backend import VllmBackend

    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match=r'\[backends."b"\]: args must be a list'):
        VllmBackend({"args": "--max-model-len 2048"}, backend_context("b"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        backend = VllmBackend({"port": port, "python": "/nonexistent/python"}, backend_context("b"))
        with pytest.raises(BackendUnavailable, match=f"port {port} on 127.0.0.1 is in use"):
            asyncio.run(backend.start())
    assert backend.process is None
