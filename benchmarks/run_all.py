"""Run every benchmark in turn, each printing the gateway against its named baseline.

    python benchmarks/run_all.py                 # all of them
    python benchmarks/run_all.py train eval      # a selection

vllm_overhead and the vLLM column of serve_throughput need a vLLM venv: pass its
interpreter in GATEWAY_VLLM_PYTHON (e.g. built with `python -m gateway_vllm.venv DIR`).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = {
    "train": ["train_throughput.py"],
    "serve": ["serve_throughput.py"],
    "eval": ["eval_overhead.py"],
    "vllm": ["vllm_overhead.py"],
}


def main() -> int:
    chosen = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    failed = []
    for name in chosen:
        if name == "vllm" and not os.environ.get("GATEWAY_VLLM_PYTHON"):
            print("== vllm: skipped (set GATEWAY_VLLM_PYTHON to a vLLM venv's python)")
            continue
        script, *args = BENCHMARKS[name]
        print(f"== {name}: {script}", flush=True)
        env = {**os.environ, "VLLM_PYTHON": os.environ.get("GATEWAY_VLLM_PYTHON", "")}
        if subprocess.run([sys.executable, str(HERE / script), *args], env=env).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
