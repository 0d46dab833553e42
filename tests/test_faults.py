"""Faults: a full disk during a checkpoint write, and a kill -9 of the server mid-stream."""

from __future__ import annotations

import errno
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import gateway_server, write_echo_plugin
from test_files_api import chat_jsonl

from gateway.config import load_config
from gateway.job_records import get_job, latest_checkpoint
from gateway.jobs import create_job, prepare_resume, run_job
from gateway.registry import BaseModel, add_base_model
from gateway.store import Store


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(
    gateway_home: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway_local.training_loop as loop
    import torch

    config = load_config()
    store = Store(config.db_path)
    add_base_model(store, BaseModel(name="tiny", source="path", path=str(tiny_model_dir)))
    data = tmp_path / "train.jsonl"
    data.write_bytes(chat_jsonl(16))
    job = create_job(config, store, trainer="local", base="tiny", training_file=data, suffix="full",
                     hyperparameters={"max_steps": 6, "batch_size": 4, "checkpoint_steps": 2})
    real_save, saves = torch.save, []

    def disk_fills_up(obj: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        saves.append(path)
        if len(saves) >= 2:  # the second checkpoint finds the disk full halfway through
            Path(path).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(loop.torch, "save", disk_fills_up)
    failed = run_job(config, store, job.id)
    assert failed.status == "failed" and "No space left on device" in (failed.error or "")
    kept = latest_checkpoint(store, job.id)
    assert kept is not None and kept.name == "step-000002"
    assert torch.load(kept / loop.STATE_FILE, weights_only=False)["progress"]["step"] == 2
    assert not (kept.parent / "step-000004").exists()  # the half-written one never got the name
    # Space again: the job resumes from the intact checkpoint and finishes.
    monkeypatch.setattr(loop.torch, "save", real_save)
    prepare_resume(store, job.id)
    done = run_job(config, store, job.id)
    assert done.status == "succeeded", done.error
    assert get_job(store, job.id).model_version_id


def test_server_killed_mid_stream_loses_no_committed_row(tmp_path: Path) -> None:
    import subprocess

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('default_backend = "echo"\n[server]\nlog_flush_interval = 0.1\n')
    store = Store(home / "gateway.duckdb")
    add_base_model(store, BaseModel(name="tiny", source="path", path="/m/tiny"))
    plugins = write_echo_plugin(tmp_path / "plugins")
    processes: list[subprocess.Popen[bytes]] = []
    hi = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
    with gateway_server(home, pythonpath=[plugins], env={"GATEWAY_PLUGINS": "echo"},
                        processes=processes) as url:
        for _ in range(5):
            assert httpx.post(f"{url}/v1/chat/completions", json=hi).status_code == 200
        deadline = time.monotonic() + 10
        while Store(home / "gateway.duckdb").query("SELECT count(*) AS n FROM request_log")[0]["n"] < 5:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        got: list[str] = []
        started = threading.Event()

        def stream() -> None:
            body = {**hi, "stream": True, "messages": [{"role": "user", "content": "please be slow a b c d e"}]}
            try:
                with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=10) as response:
                    for line in response.iter_lines():
                        got.append(line)
                        started.set()
            except httpx.HTTPError:
                got.append("<connection lost>")

        reader = threading.Thread(target=stream)
        reader.start()
        assert started.wait(10)
        processes[0].send_signal(signal.SIGKILL)
        reader.join(15)
        assert not reader.is_alive() and got[-1] == "<connection lost>"  # the client is not left hanging
    rows = Store(home / "gateway.duckdb").query("SELECT status FROM request_log")
    assert len(rows) >= 5 and all(r["status"] == 200 for r in rows)  # every committed row is there
    with gateway_server(home, pythonpath=[plugins], env={"GATEWAY_PLUGINS": "echo"}) as url:
        assert json.loads(httpx.post(f"{url}/v1/chat/completions", json=hi).text)["choices"]
