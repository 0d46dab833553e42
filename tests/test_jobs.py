"""The job lifecycle with the local trainer: CLI, lineage, bad data, cancel, kill -9 and resume."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from gateway import hookimpl
from gateway.config import load_config
from gateway.job_records import get_job, job_checkpoints, job_events
from gateway.jobs import create_job, prepare_resume, run_job
from gateway.jobs_worker import spawn
from gateway.registry import BaseModel, ModelVersion, add_base_model
from gateway.store import Store
from gateway.util import sha256_file

FAST = {"batch_size": 4, "learning_rate": 5e-3, "logging_steps": 2}


def write_chat_file(path: Path, count: int = 16) -> Path:
    rnd = random.Random(1)
    with path.open("w") as fh:
        for _ in range(count):
            a = rnd.randint(1, 99)
            messages = [
                {"role": "user", "content": f"Double {a}"},
                {"role": "assistant", "content": f"{2 * a}"},
            ]
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


@pytest.fixture
def home(gateway_home: Path, tiny_model_dir: Path) -> tuple[Any, Store]:
    config = load_config()
    store = Store(config.db_path)
    add_base_model(store, BaseModel(name="tiny", source="path", path=str(tiny_model_dir)))
    return config, store


class Recorder:
    """Records each new version, its context and its job's status at that moment."""

    def __init__(self) -> None:
        self.seen: list[tuple[ModelVersion, dict[str, Any]]] = []
        self.job_status: list[str] = []

    @hookimpl
    def model_version_created(self, version: ModelVersion, context: dict[str, Any]) -> None:
        self.seen.append((version, context))
        row = Store(load_config().db_path).query_one(
            "SELECT status FROM jobs WHERE id = ?", [context["job_id"]])
        self.job_status.append(row["status"] if row else "missing")


def test_train_cli_registers_version_with_lineage(
    home: tuple[Any, Store], tmp_path: Path, gateway_cli: Any, register_plugin: Any
) -> None:
    _config, store = home
    recorder = Recorder()
    register_plugin(recorder, "recorder")
    data = write_chat_file(tmp_path / "train.jsonl")
    result = gateway_cli(
        "train", "--base", "tiny", "--data", str(data), "--suffix", "doubler", "--max-steps", "6",
        "--batch-size", "4", "--lora-r", "4", "--packing", "--eval", "smoke", "--eval", "regress",
    )
    assert result.exit_code == 0, result.output
    version_id = store.query_one("SELECT id FROM model_versions")["id"]  # type: ignore[index]
    assert version_id.startswith("ft:tiny:doubler:")
    assert version_id in result.output and "doubler@v1" in result.output

    row = store.query_one("SELECT * FROM model_versions WHERE id = ?", [version_id])
    assert row is not None
    assert (row["base"], row["kind"], row["trainer"]) == ("tiny", "local", "local")
    assert "peft" in row["trainer_version"]
    assert row["dataset_sha256"] == sha256_file(data)
    hyper = json.loads(row["hyperparameters"])
    assert (hyper["lora_r"], hyper["packing"], hyper["max_steps"], hyper["lora_alpha"]) == (4, True, 6, 16)
    metrics = json.loads(row["metrics"])
    assert metrics["steps"] == 6 and metrics["train_loss"] > 0 and metrics["trained_tokens"] > 0
    job = get_job(store, row["job_id"])
    assert job.status == "succeeded" and job.model_version_id == version_id and job.pid
    assert [(v.id, c["evalsets"]) for v, c in recorder.seen] == [(version_id, ["smoke", "regress"])]
    # The host fires the hook once the job is marked succeeded, not while it still runs.
    assert recorder.job_status == ["succeeded"]

    listed = json.loads(gateway_cli("jobs", "list", "--format", "json").output)
    assert [(j["id"], j["status"]) for j in listed] == [(job.id, "succeeded")]
    shown = json.loads(gateway_cli("jobs", "show", job.id, "--format", "json").output)
    assert shown["last_metrics"]["step"] == 6
    events = json.loads(gateway_cli("jobs", "events", job.id, "--format", "json").output)
    statuses = [e["message"].split(";")[0].split(":")[0] for e in events if e["type"] == "status"]
    assert statuses[0].startswith("created job") and statuses[-1] == "succeeded"
    assert "running" in statuses and "files validated" in statuses


def test_invalid_data_fails_at_validation_with_line_numbers(
    home: tuple[Any, Store], tmp_path: Path, gateway_cli: Any
) -> None:
    _config, store = home
    data = write_chat_file(tmp_path / "bad.jsonl", count=12)
    lines = data.read_text().splitlines()
    lines[2] = '{"messages": [{"role": "user", "content": "hi"}'
    lines[6] = '{"prompt": "old format"}'
    data.write_text("\n".join(lines) + "\n")
    result = gateway_cli("train", "--base", "tiny", "--data", str(data), "--suffix", "bad")
    assert result.exit_code == 1
    assert "line 3:" in result.output and "line 7:" in result.output
    job = store.query_one("SELECT id, status, error, started FROM jobs")
    assert job is not None
    assert job["status"] == "failed" and "line 3" in job["error"] and job["started"] is None
    assert store.query("SELECT id FROM model_versions") == []
    assert job_checkpoints(store, job["id"]) == []
    assert not [e for e in job_events(store, job["id"]) if e["type"] == "metrics"]


def test_cancel_stops_the_running_trainer(
    home: tuple[Any, Store], tmp_path: Path, gateway_cli: Any
) -> None:
    config, store = home
    data = write_chat_file(tmp_path / "train.jsonl")
    job = create_job(config, store, trainer="local", base="tiny", training_file=data,
                     hyperparameters={**FAST, "max_steps": 500})
    outputs: list[str] = []

    def progress(event: Any) -> None:
        if event.type == "metrics" and event.step == 4:
            outputs.append(gateway_cli("jobs", "cancel", job.id).output)

    finished = run_job(config, store, job.id, progress=progress)
    assert outputs == [f"{job.id}: cancelled\n"]
    assert finished.status == "cancelled"
    steps = [c["step"] for c in job_checkpoints(store, job.id)]
    assert steps and steps[-1] < 10  # stopped at its next step, not after 500
    assert store.query("SELECT id FROM model_versions") == []
    assert "already cancelled" in gateway_cli("jobs", "cancel", job.id).output


def _final_adapter(store: Store, job_id: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    row = store.query_one(
        "SELECT artifact_uri, metrics FROM model_versions WHERE job_id = ?", [job_id]
    )
    assert row is not None
    return {"metrics": json.loads(row["metrics"]),
            "weights": load_file(str(Path(row["artifact_uri"]) / "adapter_model.safetensors"))}


def test_resume_after_sigkill_matches_an_uninterrupted_run(
    home: tuple[Any, Store], tmp_path: Path
) -> None:
    import torch

    config, store = home
    data = write_chat_file(tmp_path / "train.jsonl")
    params = {**FAST, "max_steps": 40, "checkpoint_steps": 4}
    job = create_job(config, store, trainer="local", base="tiny", training_file=data,
                     suffix="killed", hyperparameters=params)
    process = spawn(config, job.id)
    try:
        deadline = time.monotonic() + 240
        while not job_checkpoints(store, job.id):
            assert process.poll() is None, (Path(job.output_dir or "") / "worker.log").read_text()
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)

    killed = get_job(store, job.id)
    assert killed.status == "running" and killed.orphaned
    assert "is gone" in killed.state
    done = job_checkpoints(store, job.id)[-1]["step"]
    assert done < 40

    prepare_resume(store, job.id)
    resumed = run_job(config, store, job.id)
    assert resumed.status == "succeeded", resumed.error
    messages = [e["message"] for e in job_events(store, job.id)]
    assert any(m.startswith("resumed at step") for m in messages)

    straight = create_job(config, store, trainer="local", base="tiny", training_file=data,
                          suffix="straight", hyperparameters=params)
    assert run_job(config, store, straight.id).status == "succeeded"

    a, b = _final_adapter(store, job.id), _final_adapter(store, straight.id)
    assert a["metrics"]["steps"] == b["metrics"]["steps"] == 40
    assert a["metrics"]["trained_tokens"] == b["metrics"]["trained_tokens"]
    assert a["weights"].keys() == b["weights"].keys()
    for name, value in a["weights"].items():
        torch.testing.assert_close(value, b["weights"][name], rtol=1e-4, atol=1e-5)
