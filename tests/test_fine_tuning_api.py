"""The fine-tuning jobs API on a live `gateway serve`, with the official openai SDK as the client.

Also the job-claim rules: two workers on one job, and a resume after a crash
between registering a version and finishing the job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from servers import gateway_server
from test_files_api import chat_jsonl

from gateway.config import load_config
from gateway.job_claims import JobClaimed, claim_job
from gateway.job_records import get_job
from gateway.jobs import create_job, prepare_resume, run_job
from gateway.registry import BaseModel, add_base_model, get_version
from gateway.store import Store

# Tiny jobs: a few optimizer steps on the tiny model.
QUICK = {"n_epochs": 1, "batch_size": 4, "max_steps": 4, "logging_steps": 1, "checkpoint_steps": 2}


@dataclass
class TuningServer:
    url: str
    home: Path

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)

    @property
    def store(self) -> Store:
        return Store(self.home / "gateway.duckdb")


@pytest.fixture(scope="module")
def tuning_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[TuningServer]:
    home = tmp_path_factory.mktemp("tuning") / "home"
    home.mkdir()
    add_base_model(Store(home / "gateway.duckdb"),
                   BaseModel(name="tiny", source="path", path=str(tiny_model_dir)))
    with gateway_server(home) as url:
        yield TuningServer(url, home)


def wait_for(client: openai.OpenAI, job_id: str, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
        time.sleep(0.5)


def test_openai_sdk_runs_a_job_end_to_end(tuning_server: TuningServer) -> None:
    client = tuning_server.client()
    upload = client.files.create(file=("train.jsonl", chat_jsonl(16)), purpose="fine-tune")
    created = client.fine_tuning.jobs.create(
        model="tiny", training_file=upload.id, suffix="doubler", seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {
            **QUICK, "learning_rate_multiplier": 2}}},
        metadata={"team": "support"},
    )
    assert created.object == "fine_tuning.job" and created.status in ("validating_files", "queued", "running")
    # The resolved values are reported: 1 epoch, batch 4, twice the local default learning rate.
    assert created.hyperparameters.n_epochs == 1 and created.hyperparameters.batch_size == 4
    assert created.hyperparameters.learning_rate_multiplier == 2
    assert created.seed == 7 and created.training_file == upload.id and created.metadata == {"team": "support"}
    # A file in use by an unfinished job cannot be deleted.
    if client.fine_tuning.jobs.retrieve(created.id).status != "succeeded":
        with pytest.raises(openai.ConflictError):
            client.files.delete(upload.id)

    job = wait_for(client, created.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith("ft:tiny:doubler:")
    assert job.trained_tokens and job.trained_tokens > 0 and job.finished_at >= job.created_at
    assert created.id in {j.id for j in client.fine_tuning.jobs.list(limit=5)}

    events = client.fine_tuning.jobs.list_events(created.id, limit=100).data
    assert events[0].message.startswith("succeeded") and events[0].object == "fine_tuning.job.event"
    assert any(e.type == "metrics" for e in events)
    older = client.fine_tuning.jobs.list_events(created.id, after=events[0].id, limit=2)
    assert [e.id for e in older.data] == [e.id for e in events[1:3]] and older.has_more

    checkpoints = client.fine_tuning.jobs.checkpoints.list(created.id).data
    assert [c.step_number for c in checkpoints] == [2]  # every 2 steps; the last step saves the adapter
    assert checkpoints[0].object == "fine_tuning.job.checkpoint" and checkpoints[0].fine_tuning_job_id == created.id

    # The fine-tune is servable at once, from the same endpoint.
    reply = client.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": "Double 4"}], max_tokens=4,
        temperature=0)
    assert reply.choices[0].finish_reason in ("stop", "length")
    version = get_version(tuning_server.store, job.fine_tuned_model)
    assert version.hyperparameters["learning_rate"] == pytest.approx(4e-4)
    assert version.hyperparameters["seed"] == 7


def test_bad_requests_get_openai_errors(tuning_server: TuningServer) -> None:
    client = tuning_server.client()
    bad = b'{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n'
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("bad.jsonl", bad), purpose="fine-tune")
    assert "line 2" in info.value.message
    upload = client.files.create(file=("ok.jsonl", chat_jsonl(12)), purpose="fine-tune")
    with pytest.raises(openai.NotFoundError) as missing:
        client.fine_tuning.jobs.create(model="no-such-model", training_file=upload.id)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as method:
        client.fine_tuning.jobs.create(model="tiny", training_file=upload.id,
                                       method={"type": "dpo", "dpo": {}})
    assert "supervised" in method.value.message
    with pytest.raises(openai.BadRequestError) as unknown:
        client.fine_tuning.jobs.create(model="tiny", training_file=upload.id,
                                       hyperparameters={"warp_factor": 9})  # type: ignore[typeddict-unknown-key]
    assert "warp_factor" in unknown.value.message
    with pytest.raises(openai.BadRequestError) as no_file:
        client.fine_tuning.jobs.create(model="tiny", training_file="file-nope")
    assert no_file.value.param == "training_file"
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-nope")


def test_cancel_a_queued_or_running_job(tuning_server: TuningServer) -> None:
    client = tuning_server.client()
    upload = client.files.create(file=("long.jsonl", chat_jsonl(40)), purpose="fine-tune")
    created = client.fine_tuning.jobs.create(
        model="tiny", training_file=upload.id, hyperparameters={"n_epochs": 50, "batch_size": 2})
    cancelled = client.fine_tuning.jobs.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert wait_for(client, created.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(created.id)
    # Finished: the file can go now.
    assert client.files.delete(upload.id).deleted
    audit = tuning_server.store.query("SELECT action FROM audit_log WHERE target = ? ORDER BY created",
                                      [created.id])
    assert [a["action"] for a in audit] == ["job.create", "job.cancel"]


def test_fine_tune_scope_guards_the_routes(tmp_path: Path) -> None:
    from gateway.keys import create_key

    home = tmp_path / "home"
    store = Store(home / "gateway.duckdb")
    _, inference = create_key(store, "inference")
    _, tuner = create_key(store, "fine-tune")
    with gateway_server(home) as url:
        denied = httpx.get(f"{url}/v1/fine_tuning/jobs", headers={"Authorization": f"Bearer {inference}"})
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "insufficient_scope"
        allowed = httpx.get(f"{url}/v1/fine_tuning/jobs", headers={"Authorization": f"Bearer {tuner}"})
        assert allowed.status_code == 200 and allowed.json()["data"] == []
        files = httpx.get(f"{url}/v1/files", headers={"Authorization": f"Bearer {tuner}"})
        assert files.status_code == 200
        adapters = httpx.post(f"{url}/v1/load_lora_adapter", headers={"Authorization": f"Bearer {tuner}"},
                              json={"lora_name": "x", "lora_path": "/nope"})
        assert adapters.status_code == 403


# ---------------------------------------------------------------- claims


@pytest.fixture
def home(gateway_home: Path, tiny_model_dir: Path) -> tuple[Any, Store]:
    config = load_config()
    store = Store(config.db_path)
    add_base_model(store, BaseModel(name="tiny", source="path", path=str(tiny_model_dir)))
    return config, store


def _job(config: Any, store: Store, tmp_path: Path) -> str:
    data = tmp_path / "train.jsonl"
    data.write_bytes(chat_jsonl(12))
    return create_job(config, store, trainer="local", base="tiny", training_file=data,
                      suffix="claimed", hyperparameters={"max_steps": 2, "batch_size": 4}).id


def test_a_job_is_claimed_once(home: tuple[Any, Store], tmp_path: Path) -> None:
    config, store = home
    job_id = _job(config, store, tmp_path)
    claim_job(store, job_id)  # a first worker holds it
    with pytest.raises(JobClaimed):
        run_job(config, store, job_id)
    assert get_job(store, job_id).status == "validating_files"
    assert store.query("SELECT id FROM model_versions") == []


def test_resume_after_registration_keeps_the_version_files(
    home: tuple[Any, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.jobs as jobs

    config, store = home
    job_id = _job(config, store, tmp_path)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # the process dies after registering, before finishing

    monkeypatch.setattr(jobs, "_succeed", crash)
    with pytest.raises(KeyboardInterrupt):
        run_job(config, store, job_id)
    monkeypatch.undo()
    version_row = store.query_one("SELECT id, artifact_uri FROM model_versions WHERE job_id = ?", [job_id])
    assert version_row is not None
    weights = Path(version_row["artifact_uri"]) / "adapter_model.safetensors"
    before = (weights.read_bytes(), weights.stat().st_mtime_ns)

    prepare_resume(store, job_id)
    job = run_job(config, store, job_id)
    assert job.status == "succeeded" and job.model_version_id == version_row["id"]
    assert (weights.read_bytes(), weights.stat().st_mtime_ns) == before
    assert len(store.query("SELECT id FROM model_versions WHERE job_id = ?", [job_id])) == 1
    assert json.loads(json.dumps(job.hyperparameters))["max_steps"] == 2


def test_jobs_wait_for_a_slot_shared_with_detached_jobs(tuning_server: TuningServer) -> None:
    """[jobs] max_running = 1 counts a `gateway train --detach` job on the same home."""
    import subprocess
    import sys

    from servers import GATEWAY_MAIN, gateway_env

    data = tuning_server.home.parent / "slot.jsonl"
    data.write_bytes(chat_jsonl(40))
    detached = subprocess.run(
        [sys.executable, "-c", GATEWAY_MAIN, "train", "--base", "tiny", "--data", str(data),
         "--suffix", "hog", "--epochs", "100", "--batch-size", "2", "--detach"],
        env=gateway_env(tuning_server.home), capture_output=True, text=True, timeout=60, check=True)
    hog = detached.stdout.strip().splitlines()[-1]
    store = tuning_server.store
    deadline = time.monotonic() + 60
    while get_job(store, hog).status != "running":
        assert time.monotonic() < deadline, "the detached job never started"
        time.sleep(0.3)
    client = tuning_server.client()
    upload = client.files.create(file=("slot.jsonl", chat_jsonl(12)), purpose="fine-tune")
    waiting = client.fine_tuning.jobs.create(model="tiny", training_file=upload.id, hyperparameters=QUICK)
    time.sleep(6)  # three supervisor ticks: the API job must still wait
    assert client.fine_tuning.jobs.retrieve(waiting.id).status == "queued"
    assert get_job(store, hog).status == "running"
    messages = [e.message for e in client.fine_tuning.jobs.list_events(waiting.id).data]
    assert any("waiting for a free slot (1 of 1 running" in m for m in messages), messages
    from gateway.jobs import cancel_job

    cancel_job(store, hog)
    assert wait_for(client, waiting.id).status == "succeeded"
