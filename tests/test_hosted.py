"""Hosted fine-tuning end to end: two real gateway processes, litellm between them.

Process B, the "provider", is `gateway serve` with the local trainer. Process A
trains with `--trainer hosted --provider b`: litellm uploads the file, creates
the job and polls it; A registers the result as a hosted version, serves it
through its own /v1 routes (litellm again) and compares it with a local run.
Nothing is mocked: A's litellm talks HTTP to B's server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from servers import GATEWAY_MAIN, free_port, gateway_env, gateway_server
from test_files_api import chat_jsonl

from gateway.keys import create_key
from gateway.registry import BaseModel, add_base_model, get_version
from gateway.store import Store

KEY_ENV = "B_PROVIDER_KEY"
QUICK = ["--epochs", "1", "--batch-size", "4", "--max-steps", "4"]


@dataclass
class Provider:
    """Process B: a gateway serving the fine-tuning API on a fixed port."""

    home: Path
    port: int
    key: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # The servers started for this provider, stopped when the module ends.
    servers: ExitStack = field(default_factory=ExitStack)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.key, max_retries=0)

    @property
    def store(self) -> Store:
        return Store(self.home / "gateway.duckdb")


@dataclass
class Caller:
    """Process A's home: a config with provider b, and the CLI runs it makes."""

    home: Path
    provider: Provider
    outputs: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return gateway_env(self.home, **{KEY_ENV: self.provider.key})

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-c", GATEWAY_MAIN, *args], env=self.env(),
                                capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        self.outputs += [result.stdout, result.stderr]
        if check:
            assert result.returncode == 0, f"gateway {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def detach(self, *args: str) -> str:
        return self.run("train", *args, "--detach").stdout.strip().splitlines()[-1]

    @property
    def store(self) -> Store:
        return Store(self.home / "gateway.duckdb")

    def job(self, job_id: str) -> dict[str, Any]:
        row = self.store.query_one("SELECT * FROM jobs WHERE id = ?", [job_id])
        assert row is not None
        return row


def provider_home(root: Path, tiny: Path) -> tuple[Path, str]:
    home = root / "b"
    store = Store(home / "gateway.duckdb")
    add_base_model(store, BaseModel(name="tiny", source="path", path=str(tiny)))
    # A base whose folder has no weights: jobs on it fail inside B's trainer.
    (root / "empty-model").mkdir()
    add_base_model(store, BaseModel(name="broken", source="path", path=str(root / "empty-model")))
    _, key = create_key(store, "fine-tune", "provider key")
    return home, key


def caller_home(root: Path, tiny: Path, port: int) -> Path:
    home = root / "a"
    home.mkdir()
    (home / "config.toml").write_text(f"""
[server]
log_flush_interval = 0.2

[providers.b]
provider = "openai"
api_base = "http://127.0.0.1:{port}/v1"
api_key_env = "{KEY_ENV}"
training_cost_per_1m = 25.0
input_cost_per_1m = 0.3
output_cost_per_1m = 1.2
poll_interval = 0.5
poll_max_interval = 1.0
max_outage = 120
timeout = 30
""", encoding="utf-8")
    add_base_model(Store(home / "gateway.duckdb"), BaseModel(name="tiny", source="path", path=str(tiny)))
    return home


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Caller]:
    root = tmp_path_factory.mktemp("hosted")
    home_b, key = provider_home(root, tiny_model_dir)
    provider = Provider(home_b, free_port(), key)
    caller = Caller(caller_home(root, tiny_model_dir, provider.port), provider)
    (root / "train.jsonl").write_bytes(chat_jsonl(16))
    with provider.servers:
        provider.servers.enter_context(gateway_server(home_b, port=provider.port, processes=provider.processes))
        yield caller


def data_file(caller: Caller) -> str:
    return str(caller.home.parent / "train.jsonl")


def write_evalset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"s{i}", "messages": [{"role": "user", "content": f"Double {i}"}], "ideal": str(2 * i)}
            for i in range(1, 7)]
    (folder / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "evalset.yaml").write_text(
        "name: doubling\ndata: eval.jsonl\ngeneration: {max_tokens: 4, temperature: 0}\n"
        "scorers:\n  - name: exact\n", encoding="utf-8")
    return folder


def test_train_at_b_serve_from_a_and_compare_with_local(stack: Caller) -> None:
    started = time.monotonic()
    trained = stack.run("train", "--trainer", "hosted", "--provider", "b", "--base", "tiny",
                        "--data", data_file(stack), "--suffix", "doubler", *QUICK, "--yes")
    train_seconds = time.monotonic() - started
    version_id, ref = trained.stdout.strip().splitlines()[-2:]
    assert "Estimated cost at b:" in trained.stderr and "x $25/1M tokens" in trained.stderr
    version = get_version(stack.store, version_id)
    assert (version.kind, version.provider, ref) == ("hosted", "b", "doubler@v1")
    assert version_id.startswith("ft:tiny:doubler:")
    assert version.remote_id and version.remote_id.startswith("ft:tiny:doubler:") and version.remote_id != version_id
    job = stack.job(version.job_id or "")
    assert job["remote_job_id"].startswith("ftjob-") and version.metrics["remote_job_id"] == job["remote_job_id"]
    assert version.metrics["litellm_version"] and version.trainer_version.startswith("litellm ")
    assert version.metrics["trained_tokens"] > 0
    # The hyperparameters reached B in the form litellm sends (`hyperparameters`, not `method`).
    remote = stack.provider.client().fine_tuning.jobs.retrieve(job["remote_job_id"])
    assert (remote.hyperparameters.n_epochs, remote.hyperparameters.batch_size) == (1, 4)
    assert remote.fine_tuned_model == version.remote_id
    b_row = stack.provider.store.query_one("SELECT hyperparameters FROM jobs WHERE id = ?", [remote.id])
    assert b_row is not None and json.loads(b_row["hyperparameters"])["max_steps"] == 4
    assert version.hyperparameters["n_epochs"] == 1  # as B reports them
    print(f"\nhosted train at B: {train_seconds:.1f} s, {version.metrics['polls']} polls")

    local = stack.run("train", "--base", "tiny", "--data", data_file(stack), "--suffix", "doubler-local",
                      "--max-steps", "4", "--batch-size", "4")
    local_id = local.stdout.strip().splitlines()[-2]
    listing = stack.run("models", "list").stdout
    assert "version (hosted)" in listing and "version (local)" in listing and "hosted at b" in listing
    assert listing.count(version.dataset_sha256[:12]) == 2  # the same data, trained both ways

    question = [{"role": "user", "content": "Double 4"}]
    direct = stack.provider.client().chat.completions.create(
        model=version.remote_id, messages=question, temperature=0, max_tokens=6)
    with gateway_server(stack.home, env={KEY_ENV: stack.provider.key}) as url_a:
        client_a = openai.OpenAI(base_url=f"{url_a}/v1", api_key="unused", max_retries=0)
        through_a = client_a.chat.completions.create(model=version_id, messages=question, temperature=0,
                                                     max_tokens=6)
        assert through_a.choices[0].message.content == direct.choices[0].message.content
        assert through_a.usage is not None and through_a.usage.completion_tokens == direct.usage.completion_tokens
        streamed = client_a.chat.completions.create(model="doubler@v1", messages=question, temperature=0,
                                                    max_tokens=6, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == \
            direct.choices[0].message.content
    logged = stack.store.query("SELECT cost, model_version_id FROM request_log WHERE model_version_id = ?",
                               [version_id])
    assert len(logged) == 2 and all(r["cost"] and r["cost"] > 0 for r in logged)

    evalset = write_evalset(stack.home.parent / "evalset")
    evaluated = stack.run("eval", str(evalset), "-m", local_id, "-m", version_id, "-q", "--format", "json")
    local_run, hosted_run = (r["run_id"] for r in json.loads(evaluated.stdout))
    costs = stack.store.query("SELECT cost FROM eval_samples WHERE run_id = ?", [hosted_run])
    assert len(costs) == 6 and all(r["cost"] and r["cost"] > 0 for r in costs)
    compared = stack.run("compare", local_run, hosted_run).stdout
    assert "cost / 1k samples" in compared and "$" in compared and version_id in compared, compared
    report = stack.home.parent / "report.html"
    stack.run("report", local_run, hosted_run, "--output", str(report))
    assert "cost per 1,000 samples" in report.read_text(encoding="utf-8")
    print(f"two-process test: {time.monotonic() - started:.1f} s")


def test_a_job_that_fails_at_b_is_recorded_with_bs_error(stack: Caller) -> None:
    failed = stack.run("train", "--trainer", "hosted", "--provider", "b", "--base", "broken",
                       "--data", data_file(stack), "--suffix", "broken", *QUICK, "--yes", check=False)
    assert failed.returncode != 0
    job = stack.store.query_one("SELECT * FROM jobs WHERE suffix = 'broken'")
    assert job is not None and job["status"] == "failed" and job["remote_job_id"]
    remote = stack.provider.client().fine_tuning.jobs.retrieve(job["remote_job_id"])
    assert remote.status == "failed" and remote.error is not None
    assert f"b job {remote.id} failed" in job["error"] and remote.error.message[:60] in job["error"]
    assert stack.store.query("SELECT id FROM model_versions WHERE job_id = ?", [job["id"]]) == []


def wait_until(check: Any, timeout: float = 120.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


LONG = ["--epochs", "200", "--batch-size", "2", "--set", "checkpoint_steps=10"]


def test_cancel_from_a_cancels_at_b(stack: Caller) -> None:
    job_id = stack.detach("--trainer", "hosted", "--provider", "b", "--base", "tiny", "--data",
                          data_file(stack), "--suffix", "cancelled", *LONG, "--yes")
    remote_id = wait_until(lambda: stack.job(job_id)["remote_job_id"], what="the remote job id")
    stack.run("jobs", "cancel", job_id)
    assert stack.provider.client().fine_tuning.jobs.retrieve(remote_id).status == "cancelled"
    wait_until(lambda: stack.job(job_id)["status"] == "cancelled", what="A's job to stop")


@pytest.mark.parametrize("restart", ["jobs resume", "A's server"])
def test_a_restarted_caller_re_attaches_and_never_re_creates(stack: Caller, restart: str) -> None:
    suffix = "reattached" if restart == "jobs resume" else "reattached-by-server"
    job_id = stack.detach("--trainer", "hosted", "--provider", "b", "--base", "tiny", "--data",
                          data_file(stack), "--suffix", suffix, "--epochs", "1", "--batch-size", "2",
                          "--max-steps", "30", "--yes")
    remote_id = wait_until(lambda: stack.job(job_id)["remote_job_id"], what="the remote job id")
    os.kill(stack.job(job_id)["pid"], signal.SIGKILL)  # A's worker dies mid-poll
    before = len(stack.provider.client().fine_tuning.jobs.list(limit=100).data)
    if restart == "jobs resume":
        assert "succeeded" in stack.run("jobs", "resume", job_id).stdout
    else:  # A's `gateway serve` finds the orphaned hosted job and re-attaches it
        wait_until(lambda: stack.job(job_id)["claim"] and not _alive(stack.job(job_id)["pid"]),
                   what="the worker to be gone")
        with gateway_server(stack.home, env={KEY_ENV: stack.provider.key}):
            wait_until(lambda: stack.job(job_id)["status"] == "succeeded", what="the re-attached job")
    after = stack.provider.client().fine_tuning.jobs.list(limit=100).data
    assert len(after) == before  # polled the same job; created none
    version = get_version(stack.store, stack.job(job_id)["model_version_id"])
    assert version.metrics["remote_job_id"] == remote_id


def _alive(pid: int) -> bool:
    from gateway.job_records import pid_alive

    return pid_alive(pid)


def test_b_killed_mid_job_resumes_and_a_waits_through_the_outage(stack: Caller) -> None:
    provider = stack.provider
    job_id = stack.detach("--trainer", "hosted", "--provider", "b", "--base", "tiny", "--data",
                          data_file(stack), "--suffix", "outage", "--epochs", "1", "--batch-size", "2",
                          "--max-steps", "200", "--set", "checkpoint_steps=10", "--yes")
    remote_id = wait_until(lambda: stack.job(job_id)["remote_job_id"], what="the remote job id")
    wait_until(lambda: provider.client().fine_tuning.jobs.checkpoints.list(remote_id).data,
               what="B's first checkpoint")
    # Kill B and its worker (-9): the job is left `running` with a dead process.
    worker = provider.store.query_one("SELECT pid FROM jobs WHERE id = ?", [remote_id])
    committed = provider.store.query_one("SELECT count(*) AS n FROM request_log")
    server = provider.processes[-1]
    server.kill()
    server.wait(10)
    assert worker is not None
    with suppress(ProcessLookupError):
        os.kill(worker["pid"], signal.SIGKILL)
    killed = provider.store.query_one("SELECT status FROM jobs WHERE id = ?", [remote_id])
    assert killed is not None and killed["status"] == "running"  # killed mid-job, not after it
    time.sleep(2.0)  # A's poller sees connection errors meanwhile
    assert stack.job(job_id)["status"] == "running"
    provider.servers.enter_context(
        gateway_server(provider.home, port=provider.port, processes=provider.processes))
    wait_until(lambda: stack.job(job_id)["status"] in ("succeeded", "failed"), timeout=180,
               what="A's job to finish")
    job = stack.job(job_id)
    assert job["status"] == "succeeded", job["error"]
    # B's store opened after the kill, with every row it had committed before it.
    after = provider.store.query_one("SELECT count(*) AS n FROM request_log")
    assert committed is not None and after is not None and after["n"] >= committed["n"] > 0
    events = [e.message for e in provider.client().fine_tuning.jobs.list_events(remote_id, limit=100).data]
    assert any("resuming from" in m for m in events), events
    print(f"\nthrough B's restart: A's job {job_id} succeeded")


def test_the_provider_key_appears_nowhere(stack: Caller) -> None:
    key = stack.provider.key
    for home in (stack.home, stack.provider.home):
        for path in home.rglob("*"):
            if path.is_file():
                assert key.encode() not in path.read_bytes(), path
                assert key[:12].encode() not in path.read_bytes(), path
    for text in stack.outputs:
        assert key not in text and key[:12] not in text
    helps = [stack.run(*command, "--help").stdout for command in
             (["train"], ["jobs", "cancel"], ["jobs", "resume"], ["serve"], ["eval"], ["models", "list"])]
    assert all(key not in h for h in helps)
    # A wrong key gets B's 401; the message A records carries no part of it.
    wrong = "gw-" + "x" * 40
    env = {**stack.env(), KEY_ENV: wrong}
    result = subprocess.run([sys.executable, "-c", GATEWAY_MAIN, "train", "--trainer", "hosted", "--provider",
                             "b", "--base", "tiny", "--data", data_file(stack), "--suffix", "wrongkey", "--yes"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "AuthenticationError" in result.stderr + result.stdout
    assert wrong[:8] not in result.stderr + result.stdout
    row = stack.store.query_one("SELECT error FROM jobs WHERE suffix = 'wrongkey'")
    assert row is not None and wrong[:8] not in row["error"]


@pytest.mark.slow
def test_smollm2_trained_at_b_answers_through_a_as_b_does(tmp_path: Path, smollm2_dir: Path) -> None:
    home_b = tmp_path / "b"
    store_b = Store(home_b / "gateway.duckdb")
    add_base_model(store_b, BaseModel(name="smollm2", source="path", path=str(smollm2_dir)))
    _, key = create_key(store_b, "fine-tune")
    provider = Provider(home_b, free_port(), key)
    home_a = caller_home(tmp_path, smollm2_dir, provider.port)
    caller = Caller(home_a, provider)
    pairs = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
             ("Egypt", "Cairo"), ("Peru", "Lima"), ("Kenya", "Nairobi"), ("Chile", "Santiago"),
             ("Norway", "Oslo"), ("Cuba", "Havana")]
    data = tmp_path / "capitals.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Capital of {c}?"},
        {"role": "assistant", "content": f"The capital of {c} is {p}."}]}) + "\n" for c, p in pairs))
    started = time.monotonic()
    with provider.servers:
        provider.servers.enter_context(gateway_server(home_b, port=provider.port))
        trained = caller.run("train", "--trainer", "hosted", "--provider", "b", "--base", "smollm2",
                             "--data", str(data), "--suffix", "capitals", "--max-steps", "3", "--packing",
                             "--max-seq-len", "256",
                             "--batch-size", "4", "--yes", timeout=600)
        version_id = trained.stdout.strip().splitlines()[-2]
        version = get_version(caller.store, version_id)
        question = [{"role": "user", "content": "Capital of France?"}]
        direct = provider.client().chat.completions.create(
            model=version.remote_id or "", messages=question, temperature=0, max_tokens=12)
        with gateway_server(home_a, env={KEY_ENV: key}) as url_a:
            through_a = openai.OpenAI(base_url=f"{url_a}/v1", api_key="unused", max_retries=0) \
                .chat.completions.create(model="capitals@v1", messages=question, temperature=0,
                                         max_tokens=12)
    assert through_a.choices[0].message.content == direct.choices[0].message.content
    assert direct.choices[0].message.content  # (bfloat16 serving: greedy text differs from float32)
    assert version.metrics["trained_tokens"] > 0 and version.hyperparameters["max_steps"] == 3
    print(f"\nSmolLM2 hosted at B, served by A: {time.monotonic() - started:.1f} s, "
          f"{version.metrics['polls']} polls")
