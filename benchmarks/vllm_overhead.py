"""What the gateway's vllm backend costs on top of vLLM itself.

The same load (16 concurrent chat requests, 64 tokens each, greedy) goes to
vLLM directly and through `gateway serve` (vllm backend, attach mode, the
same vLLM), alternating between the two for several rounds so that drift on
a shared machine hits both alike. Targets: throughput ratio (gateway / direct)
>= 0.97, added p50 latency <= 2 ms.

Under a full batch a request takes seconds and its latency varies by far more
than 2 ms from round to round, so the added latency is measured on its own:
one-token requests, one at a time, alternating direct and gateway.

Run: python benchmarks/vllm_overhead.py [--rounds 4] [--model DIR]
         [--vllm-python PY | --vllm-url URL]
vLLM comes from --vllm-url (already running), else it is launched with
--vllm-python (default: $GATEWAY_VLLM_PYTHON) on --model (default: the test
cache's SmolLM2-135M-Instruct folder).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from servers import free_port, spawn, stop, wait_healthy  # benchmarks/servers.py

TARGET_RATIO = 0.97
TARGET_ADDED_MS = 2.0
CONCURRENCY = 16
MAX_TOKENS = 64
BASE = "smollm2-135m"
DEFAULT_MODEL = Path.home() / ".cache" / "gateway-tests" / "smollm2-135m-v1"
PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "List some facts about the moon.",
    "Describe a busy market in the morning.",
    "What makes a good cup of tea?",
    "Tell me about the history of paper.",
    "How do bees make honey?",
    "Describe the water cycle.",
    "Write a letter to a friend about a trip.",
    "Why is the sky blue?",
    "Give advice to a new gardener.",
    "Explain what a computer program is.",
    "Describe a thunderstorm.",
    "What do cats like to do all day?",
    "How does a train run on tracks?",
    "Write a poem about autumn leaves.",
]


def launch_vllm(python: str, model: Path, work: Path) -> tuple[str, Any]:
    from gateway_vllm.launcher import VllmProcess, server_command, server_env

    port = free_port()
    command = server_command(python=python, model=str(model), served_name=BASE, host="127.0.0.1",
                             port=port, max_lora_rank=8, max_loras=4,
                             args=["--max-model-len", "2048"])
    process = VllmProcess(command, server_env({}, model_is_local=True), work / "vllm.log")
    process.spawn()
    url = f"http://127.0.0.1:{port}"
    print(f"launching vLLM on {url} (log: {work / 'vllm.log'}) ...", flush=True)
    wait_healthy(url, process.alive, 900, work / "vllm.log")
    return url, process


def launch_gateway(vllm_url: str, model: Path, work: Path) -> tuple[str, subprocess.Popen[bytes]]:
    from gateway.contracts import BaseModel
    from gateway.registry import add_base_model
    from gateway.store import Store

    home = work / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[backends."{BASE}"]\nbackend = "vllm"\nurl = {json.dumps(vllm_url)}\n'
    )
    add_base_model(Store(home / "gateway.duckdb"), BaseModel(name=BASE, source="path", path=str(model)))
    port = free_port()
    env = {**os.environ, "GATEWAY_HOME": str(home)}
    env.pop("GATEWAY_CONFIG", None)
    log = work / "gateway.log"
    proc = spawn([sys.executable, "-c", "from gateway.cli import main; main()", "serve",
                  "--host", "127.0.0.1", "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, lambda: proc.poll() is None, 120, log)
    return url, proc


async def one(client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int) -> tuple[float, int]:
    body = {"model": BASE, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "temperature": 0}
    started = time.perf_counter()
    response = await client.post(f"{url}/v1/chat/completions", json=body)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, int(response.json()["usage"]["completion_tokens"])


async def load_round(client: httpx.AsyncClient, url: str) -> tuple[float, int, list[float]]:
    """16 concurrent requests: wall seconds, completion tokens, per-request latencies."""
    started = time.perf_counter()
    results = await asyncio.gather(*(one(client, url, p, MAX_TOKENS) for p in PROMPTS[:CONCURRENCY]))
    wall = time.perf_counter() - started
    return wall, sum(t for _, t in results), [lat for lat, _ in results]


async def bench(direct: str, gateway: str, rounds: int, probes: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        for url in (direct, gateway):  # warm-up: connections, prefix cache, adapters
            await load_round(client, url)
        totals = {direct: [0.0, 0], gateway: [0.0, 0]}
        latencies: dict[str, list[float]] = {direct: [], gateway: []}
        for i in range(rounds):
            order = (direct, gateway) if i % 2 == 0 else (gateway, direct)
            for url in order:
                wall, tokens, lats = await load_round(client, url)
                totals[url][0] += wall
                totals[url][1] += int(tokens)
                latencies[url] += lats
                name = "direct " if url == direct else "gateway"
                print(f"round {i + 1} {name}: {tokens / wall:6.1f} tok/s, p50 {statistics.median(lats):.3f} s",
                      flush=True)
        probe: dict[str, list[float]] = {direct: [], gateway: []}
        for i in range(probes):
            for url in ((direct, gateway) if i % 2 == 0 else (gateway, direct)):
                probe[url].append((await one(client, url, "Hi", 1))[0])
    tput = {url: tokens / wall if wall else 0.0 for url, (wall, tokens) in totals.items()}
    return {
        "direct_tok_s": tput[direct],
        "gateway_tok_s": tput[gateway],
        "ratio": tput[gateway] / tput[direct] if tput[direct] else 0.0,
        "load_p50_added_ms": 1000 * (statistics.median(latencies[gateway] or [0])
                                     - statistics.median(latencies[direct] or [0])),
        "probe_p50_direct_ms": 1000 * statistics.median(probe[direct]),
        "probe_p50_gateway_ms": 1000 * statistics.median(probe[gateway]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--vllm-python", default=os.environ.get("GATEWAY_VLLM_PYTHON"))
    parser.add_argument("--vllm-url")
    args = parser.parse_args()
    if not args.vllm_url and not args.vllm_python:
        print("skipped: give --vllm-url, or --vllm-python / GATEWAY_VLLM_PYTHON to launch vLLM")
        return 0
    vllm: Any = None
    gateway_proc: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            direct = args.vllm_url
            if not direct:
                direct, vllm = launch_vllm(args.vllm_python, args.model, work)
            gateway, gateway_proc = launch_gateway(direct, args.model, work)
            result = asyncio.run(bench(direct, gateway, args.rounds, args.probes))
        finally:
            if gateway_proc is not None:
                stop(gateway_proc)
            if vllm is not None:
                asyncio.run(vllm.stop())
    added = result["probe_p50_gateway_ms"] - result["probe_p50_direct_ms"]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"load: {CONCURRENCY} concurrent chat requests x {MAX_TOKENS} tokens, greedy, "
          f"{args.rounds} alternating rounds each")
    print(f"{'':22}{'direct vLLM':>14}{'via gateway':>14}")
    print(f"{'throughput (tok/s)':22}{result['direct_tok_s']:14.1f}{result['gateway_tok_s']:14.1f}")
    print(f"{'1-token p50 (ms)':22}{result['probe_p50_direct_ms']:14.2f}{result['probe_p50_gateway_ms']:14.2f}")
    print(f"throughput ratio: {result['ratio']:.3f} (target >= {TARGET_RATIO})")
    print(f"added p50 latency: {added:.2f} ms on 1-token requests (target <= {TARGET_ADDED_MS} ms); "
          f"{result['load_p50_added_ms']:+.0f} ms under the 16-way load (noise dominates)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
