"""Serving throughput of the local backend, through the HTTP endpoint, against baselines.

The load: SmolLM2-135M-Instruct with 4 LoRA adapters (made here with peft, random
B), 16 concurrent clients, each sending --requests chat requests for the
adapters in turn (greedy, max_tokens 64). Throughput counts completion tokens
from each response's usage, so early stops are counted honestly.

  (a) `gateway serve` with the local backend (its own GATEWAY_HOME; the base
      registered as a model, the adapters as model versions);
  (b) benchmarks/naive_server.py: one request at a time, set_adapter + generate();
  (c) vLLM's CPU build with the same adapters (--lora-modules), only when a vLLM
      python is given with --vllm-python or $VLLM_PYTHON.

  (d) the gateway of (a) again, every request under a json_schema response_format
      (two schemas mixed in each batch; constrained decoding with llguidance).

Targets: (a)/(b) >= 4, (a)/(c) >= 1.5, (d)/(a) >= 0.8. Every server computes in the same dtype
(--dtype, default: the gateway's hardware rule, bf16 only where the CPU runs it
natively, else float32; vLLM gets it as --dtype) and gets the same torch thread
count (--threads, default: the local backend's serving default, cores - 1).

Run: python benchmarks/serve_throughput.py [--model DIR] [--vllm-python PY]
         [--clients 16] [--requests 1] [--max-tokens 64] [--skip-naive] [--skip-structured]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from servers import free_port, spawn, stop, wait_healthy  # benchmarks/servers.py

from gateway.hardware import DTYPES, choose_dtype, cpu_summary, default_threads, read_capabilities

BASE = "smollm2-135m"
TARGET_NAIVE = 4.0
TARGET_VLLM = 1.5
CACHE = Path(os.environ.get("GATEWAY_BENCH_CACHE", Path.home() / ".cache" / "gateway-bench"))
PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "List some facts about the moon.",
    "Describe a busy market in the morning.",
    "What makes a good cup of tea?",
    "Tell me about the history of paper.",
    "How do bees make honey?",
    "Describe the water cycle.",
]


def ensure_model(model: str | None) -> Path:
    """The given folder, or SmolLM2-135M-Instruct converted once into the cache."""
    if model:
        return Path(model).expanduser().resolve()
    from gateway_local.convert import download_smollm2_gguf, gguf_to_hf

    dest = CACHE / "smollm2-135m"
    if not (dest / "config.json").exists():
        print(f"converting SmolLM2-135M-Instruct into {dest} ...", flush=True)
        gguf_to_hf(download_smollm2_gguf(CACHE), dest)
    return dest


def make_adapters(model: Path, dest: Path, count: int) -> dict[str, Path]:
    """LoRA r=8 on all linear layers with random B, saved with peft."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    adapters = {}
    for i in range(count):
        path = dest / f"bench-a{i}"
        torch.manual_seed(100 + i)
        peft_model = get_peft_model(
            AutoModelForCausalLM.from_pretrained(model),
            LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"),
        )
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.01)
        peft_model.save_pretrained(path)
        adapters[path.name] = path
    return adapters


def launch_gateway(model: Path, adapters: dict[str, Path], work: Path, threads: int, dtype: str
                   ) -> tuple[str, subprocess.Popen[bytes], list[str]]:
    from gateway.contracts import BaseModel
    from gateway.registry import add_base_model, create_version
    from gateway.store import Store

    home = work / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[backends."{BASE}"]\nbackend = "local"\nmax_batch_size = 16\n'
        f'max_wait_ms = 20\nthreads = {threads}\ndtype = "{dtype}"\n'
    )
    store = Store(home / "gateway.duckdb")
    add_base_model(store, BaseModel(name=BASE, source="path", path=str(model)))
    names = [
        create_version(store, base=BASE, name=name, kind="local", artifact_uri=str(path)).ref
        for name, path in adapters.items()
    ]
    env = {**os.environ, "GATEWAY_HOME": str(home)}
    env.pop("GATEWAY_CONFIG", None)
    port = free_port()
    proc = spawn([sys.executable, "-c", "from gateway.cli import main; main()", "serve",
                  "--host", "127.0.0.1", "--port", str(port)], env, work / "gateway.log")
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, lambda: proc.poll() is None, 180, work / "gateway.log")
    return url, proc, names


def launch_naive(model: Path, adapters: dict[str, Path], work: Path, threads: int, dtype: str
                 ) -> tuple[str, subprocess.Popen[bytes], list[str]]:
    port = free_port()
    command = [sys.executable, str(Path(__file__).with_name("naive_server.py")), "--model",
               str(model), "--served-model-name", BASE, "--port", str(port),
               "--threads", str(threads), "--dtype", dtype]
    for name, path in adapters.items():
        command += ["--adapter", f"{name}={path}"]
    proc = spawn(command, dict(os.environ), work / "naive.log")
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, lambda: proc.poll() is None, 180, work / "naive.log")
    return url, proc, list(adapters)


def launch_vllm(python: str, model: Path, adapters: dict[str, Path], work: Path, dtype: str
                ) -> tuple[str, Any, list[str]]:
    from gateway_vllm.launcher import VllmProcess, server_command, server_env

    port = free_port()
    modules = [f"{name}={path}" for name, path in adapters.items()]
    command = server_command(python=python, model=str(model), served_name=BASE,
                             host="127.0.0.1", port=port, max_lora_rank=8,
                             max_loras=len(adapters), dtype=dtype,
                             args=["--max-model-len", "2048", "--lora-modules", *modules])
    process = VllmProcess(command, server_env({}, model_is_local=True), work / "vllm.log")
    process.spawn()
    url = f"http://127.0.0.1:{port}"
    print(f"launching vLLM on {url} (log: {work / 'vllm.log'}) ...", flush=True)
    wait_healthy(url, process.alive, 900, work / "vllm.log")
    return url, process, list(adapters)


# The structured-output case: each client asks for one of these schemas (a mix in every batch).
SCHEMAS = [
    {"type": "object", "additionalProperties": False, "required": ["label", "urgent", "summary"],
     "properties": {"label": {"enum": ["billing", "shipping", "account", "other"]},
                    "urgent": {"type": "boolean"}, "summary": {"type": "string", "maxLength": 120}}},
    {"type": "object", "additionalProperties": False, "required": ["answer", "confidence"],
     "properties": {"answer": {"type": "string", "maxLength": 160},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1}}},
]
TARGET_STRUCTURED = 0.8


def schema_format(index: int) -> dict[str, Any]:
    return {"type": "json_schema",
            "json_schema": {"name": f"s{index}", "schema": SCHEMAS[index % len(SCHEMAS)]}}


async def one(client: httpx.AsyncClient, url: str, model: str, prompt: str,
              max_tokens: int, response_format: dict[str, Any] | None = None) -> tuple[float, int]:
    started = time.perf_counter()
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}],
                            "max_tokens": max_tokens, "temperature": 0}
    if response_format is not None:
        body["response_format"] = response_format
    response = await client.post(f"{url}/v1/chat/completions", json=body)
    if response.status_code != 200:
        raise SystemExit(f"{url}: HTTP {response.status_code}: {response.text[:500]}")
    return time.perf_counter() - started, int(response.json()["usage"]["completion_tokens"])


async def load(url: str, models: list[str], clients: int, requests: int,
               max_tokens: int, structured: bool = False) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=1800) as client:
        # Warm-up: every adapter loaded once (and each grammar compiled), outside the measurement.
        await asyncio.gather(*(one(client, url, m, PROMPTS[0], 4) for m in models))
        if structured:
            await asyncio.gather(*(one(client, url, models[0], PROMPTS[0], 4, schema_format(i))
                                   for i in range(len(SCHEMAS))))

        async def client_loop(i: int) -> list[tuple[float, int]]:
            return [await one(client, url, models[(i + r) % len(models)],
                              PROMPTS[(i + r) % len(PROMPTS)], max_tokens,
                              schema_format(i) if structured else None)
                    for r in range(requests)]

        started = time.perf_counter()
        results = await asyncio.gather(*(client_loop(i) for i in range(clients)))
        wall = time.perf_counter() - started
    done = [item for per_client in results for item in per_client]
    latencies = sorted(lat for lat, _ in done)
    tokens = sum(n for _, n in done)
    return {
        "tok_s": tokens / wall,
        "p50": statistics.median(latencies),
        "p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "tokens": tokens,
        "wall": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="HF folder (default: SmolLM2-135M-Instruct, converted)")
    parser.add_argument("--vllm-python", default=os.environ.get("VLLM_PYTHON"))
    parser.add_argument("--adapters", type=int, default=4)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1, help="requests per client")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=default_threads(serving=True))
    parser.add_argument("--dtype", choices=DTYPES, default=None,
                        help="every server's dtype (default: the gateway's hardware rule)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-structured", action="store_true",
                        help="skip the json_schema case (constrained decoding, llguidance)")
    args = parser.parse_args()
    import torch

    caps = read_capabilities(torch)
    dtype = args.dtype or choose_dtype(caps)
    print(f"cpu: {cpu_summary()}; torch reports {caps.describe()}", flush=True)
    print(f"every server: dtype {dtype} ({'--dtype' if args.dtype else 'auto'}), "
          f"{args.threads} torch threads", flush=True)

    model = ensure_model(args.model)
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        work = Path(tmp)
        adapters = make_adapters(model, work / "adapters", args.adapters)
        launchers: list[tuple[str, Any]] = [
            ("gateway (local backend)", lambda: launch_gateway(model, adapters, work, args.threads, dtype)),
        ]
        if not args.skip_naive:
            launchers.append(("naive (one at a time)",
                              lambda: launch_naive(model, adapters, work, args.threads, dtype)))
        if args.vllm_python:
            launchers.append(("vLLM CPU", lambda: launch_vllm(args.vllm_python, model, adapters, work, dtype)))
        else:
            print("vLLM: skipped (no --vllm-python and no $VLLM_PYTHON)", flush=True)
        for label, launch in launchers:
            url, proc, models = launch()
            try:
                print(f"{label}: running {args.clients} clients x {args.requests} ...", flush=True)
                rows[label] = asyncio.run(
                    load(url, models, args.clients, args.requests, args.max_tokens))
                if label == "gateway (local backend)" and not args.skip_structured:
                    print(f"{label}: the same load, every request under a json_schema "
                          f"({len(SCHEMAS)} schemas mixed) ...", flush=True)
                    rows["gateway, json_schema mix"] = asyncio.run(load(
                        url, models, args.clients, args.requests, args.max_tokens, structured=True))
            finally:
                stop(proc)

    print(f"\nmachine: {cpu_summary()}; load average {os.getloadavg()[0]:.1f}; "
          f"dtype {dtype}, {args.threads} threads; model {model.name}; {args.adapters} adapters; "
          f"{args.clients} clients x {args.requests} requests x {args.max_tokens} tokens")
    print(f"{'server':<26}{'tok/s':>9}{'p50 s':>9}{'p95 s':>9}{'tokens':>9}")
    for label, row in rows.items():
        print(f"{label:<26}{row['tok_s']:>9.1f}{row['p50']:>9.2f}{row['p95']:>9.2f}"
              f"{int(row['tokens']):>9}")
    ours = rows["gateway (local backend)"]["tok_s"]
    for label, target in (("naive (one at a time)", TARGET_NAIVE), ("vLLM CPU", TARGET_VLLM)):
        if label in rows:
            ratio = ours / rows[label]["tok_s"]
            verdict = "meets" if ratio >= target else "misses"
            print(f"ratio gateway / {label}: {ratio:.2f} ({verdict} the target {target})")
    if "gateway, json_schema mix" in rows:
        ratio = rows["gateway, json_schema mix"]["tok_s"] / ours
        verdict = "meets" if ratio >= TARGET_STRUCTURED else "misses"
        print(f"ratio json_schema mix / unconstrained: {ratio:.2f} ({verdict} the target "
              f"{TARGET_STRUCTURED})")
    print(json.dumps({k: {m: round(v, 3) for m, v in r.items()} for k, r in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
