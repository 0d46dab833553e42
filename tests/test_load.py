"""Load on loopback with the tiny model: streamed and plain requests over mixed adapters,
adapter loads and unloads during the traffic, and a second process reading the store.

It reports p50, p95 and p99 latency, errors and the server's peak RSS, and checks
0 errors and 0 lost request-log rows (rows stored against requests sent). The fast
suite runs it for 8 s; the slow test for 60 s.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from lora import make_lora_adapter
from servers import gateway_server

from gateway.registry import BaseModel, add_base_model, create_version
from gateway.store import Store

READER = """
import sys, time
from gateway.store import Store
store, deadline, reads = Store(sys.argv[1], lock_timeout=30), time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < deadline:
    store.query("SELECT count(*) FROM request_log")
    reads += 1
    time.sleep(0.2)
print(reads)
"""


@dataclass
class LoadServer:
    url: str
    home: Path
    runtime_adapter: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


@pytest.fixture(scope="module")
def load_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadServer]:
    home = tmp_path_factory.mktemp("load")
    store = Store(home / "gateway.duckdb")
    add_base_model(store, BaseModel(name="tiny", source="path", path=str(tiny_model_dir)))
    for seed, name in ((1, "support"), (2, "style")):
        folder = make_lora_adapter(tiny_model_dir, home / "adapters" / name, seed=seed)
        create_version(store, base="tiny", name=name, kind="local", artifact_uri=str(folder))
    runtime = make_lora_adapter(tiny_model_dir, home / "adapters" / "runtime", seed=3)
    (home / "config.toml").write_text(
        '[server]\nlog_flush_interval = 0.5\n[backends.tiny]\nbackend = "local"\nmax_batch_size = 16\n')
    processes: list[subprocess.Popen[bytes]] = []
    with gateway_server(home, startup_timeout=120, processes=processes) as url:
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/ready").status_code != 200:  # the model loads at startup
            assert time.monotonic() < deadline, httpx.get(f"{url}/ready").text
            time.sleep(0.2)
        yield LoadServer(url, home, runtime, processes)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_load(server: LoadServer, seconds: float, clients: int = 8) -> dict[str, float]:
    models = ["tiny", "support", "style"]
    latencies: list[float] = []
    errors: list[str] = []
    sent = 0
    deadline = time.monotonic() + seconds

    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        async def client(index: int) -> None:
            nonlocal sent
            turn = 0
            while time.monotonic() < deadline:
                model = models[(index + turn) % len(models)]
                body = {"model": model, "max_tokens": 8, "temperature": 0,
                        "messages": [{"role": "user", "content": f"Ticket {index}-{turn}: help"}]}
                stream = turn % 2 == 1
                started = time.perf_counter()
                sent += 1
                try:
                    if stream:
                        async with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
                            lines = [line async for line in r.aiter_lines() if line]
                        if r.status_code != 200 or lines[-1] != "data: [DONE]" or any('"error"' in x for x in lines):
                            errors.append(f"stream {r.status_code}")
                    else:
                        r = await http.post("/v1/chat/completions", json=body)
                        if r.status_code != 200:
                            errors.append(f"{r.status_code} {r.text[:100]}")
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                latencies.append((time.perf_counter() - started) * 1000)
                turn += 1

        async def churn() -> None:  # adapter loads and unloads during the traffic
            nonlocal sent
            while time.monotonic() < deadline:
                for path, body in (("/v1/load_lora_adapter", {"lora_name": "runtime", "lora_path": str(server.runtime_adapter)}),
                                   ("/v1/unload_lora_adapter", {"lora_name": "runtime"})):
                    sent += 1
                    r = await http.post(path, json=body)
                    if r.status_code != 200:
                        errors.append(f"{path} {r.status_code} {r.text[:100]}")
                    await asyncio.sleep(0.5)

        reader = await asyncio.create_subprocess_exec(
            sys.executable, "-c", READER, str(server.home / "gateway.duckdb"), str(seconds),
            stdout=asyncio.subprocess.PIPE)
        before = Store(server.home / "gateway.duckdb").query("SELECT count(*) AS n FROM request_log")[0]["n"]
        await asyncio.gather(*(client(i) for i in range(clients)), churn())
        out, _ = await reader.communicate()
    # Every request sent has its row once the log is flushed.
    store = Store(server.home / "gateway.duckdb")
    stop = time.monotonic() + 20
    while (stored := store.query("SELECT count(*) AS n FROM request_log")[0]["n"] - before) < sent:
        if time.monotonic() > stop:
            break
        await asyncio.sleep(0.2)
    quantiles = statistics.quantiles(latencies, n=100)
    report = {"requests": sent, "stored": stored, "errors": len(errors), "p50": quantiles[49],
              "p95": quantiles[94], "p99": quantiles[98], "reader_queries": int(out.strip() or 0),
              "peak_rss_mb": peak_rss_mb(server.processes[0].pid)}
    print(f"\nload {seconds:.0f}s: {report}; first errors: {errors[:3]}")
    assert errors == []
    return report


def test_load_short(load_server: LoadServer) -> None:
    report = asyncio.run(run_load(load_server, 8.0))
    assert report["stored"] == report["requests"] and report["reader_queries"] > 0


@pytest.mark.slow
def test_load_one_minute(load_server: LoadServer) -> None:
    report = asyncio.run(run_load(load_server, 60.0))
    assert report["stored"] == report["requests"] and report["reader_queries"] > 0
