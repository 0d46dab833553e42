"""The eval runner's own cost per sample, against an instant in-process backend.

Target: at most 1 ms per sample (5,000 samples, the `exact` scorer), all of it
runner overhead: resolving, prompt building, cache keys and lookups, the
semaphore, scoring, and chunked writes of samples, scores and cache entries
to DuckDB. The baseline is a bare asyncio loop that only calls the same
backend and scorer (no storage), so the ratio shows what bookkeeping costs.

Run: python benchmarks/eval_overhead.py [SAMPLES]
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from gateway import hookimpl

TARGET_MS = 1.0


class InstantBackend:
    name: ClassVar[str] = "bench-instant"
    description: ClassVar[str] = "answers at once with the last user message's last word"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def chat(self, request: Any) -> Any:
        from gateway.contracts import Generation, Usage

        return Generation(text=request.messages[-1]["content"].split()[-1], usage=Usage(12, 1))


class BenchPlugin:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register(InstantBackend)


def _write_evalset(folder: Path, samples: int) -> Path:
    with open(folder / "eval.jsonl", "w") as fh:
        for i in range(samples):
            row = {"id": f"s{i}", "messages": [{"role": "user", "content": f"Repeat the word w{i}"}],
                   "ideal": f"w{i}" if i % 4 else "other"}
            fh.write(json.dumps(row) + "\n")
    (folder / "evalset.yaml").write_text(
        "name: bench\ndata: eval.jsonl\ngeneration: {max_tokens: 4}\nscorers: [exact]\n")
    return folder


def _bare_loop(evalset: Any) -> float:
    """Seconds for the same calls and scores with nothing else: the floor."""
    from gateway.contracts import ChatRequest, ModelTarget, Sample
    from gateway.plugins import get_evaluator_class

    backend = InstantBackend({})
    scorer = get_evaluator_class("exact")()
    target = ModelTarget(requested="bench-base", base="bench-base")

    async def go() -> None:
        semaphore = asyncio.Semaphore(8)

        async def one(row: Any) -> None:
            async with semaphore:
                gen = await backend.chat(ChatRequest(target=target, messages=row.messages))
            scorer.score(Sample(row.id, row.messages, row.ideal, gen.text))

        await asyncio.gather(*(one(r) for r in evalset.rows))

    started = time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - started


def bench_runner_overhead(samples: int = 5_000) -> dict[str, float]:
    """Run an eval set of `samples` rows on an instant backend; ms per sample, cold and cached."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        os.environ["GATEWAY_HOME"] = str(home)
        (home / "config.toml").write_text('default_backend = "bench-instant"\n')
        from gateway.config import load_config
        from gateway.contracts import BaseModel
        from gateway.evaluation.evalset import load_evalset
        from gateway.evaluation.runner import run_eval_sync
        from gateway.plugins import get_plugin_manager, reset_plugin_manager
        from gateway.registry import add_base_model
        from gateway.store import Store

        reset_plugin_manager()
        get_plugin_manager().register(BenchPlugin(), name="bench")
        config = load_config()
        store = Store(config.db_path)
        add_base_model(store, BaseModel(name="bench-base", source="path"))
        evalset = load_evalset(_write_evalset(Path(tmp), samples))

        started = time.perf_counter()
        run_id = run_eval_sync(config, store, evalset, "bench-base", progress=False)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        run_eval_sync(config, store, evalset, "bench-base", progress=False)
        cached = time.perf_counter() - started
        stored = store.query_one("SELECT count(*) AS n FROM eval_scores WHERE run_id = ?", [run_id])
        assert stored is not None and stored["n"] == samples
        bare = _bare_loop(evalset)
        reset_plugin_manager()
    return {"samples": float(samples), "cold_ms": cold * 1000 / samples,
            "cached_ms": cached * 1000 / samples, "bare_ms": bare * 1000 / samples,
            "target_ms": TARGET_MS}


def machine() -> str:
    return f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def report_runner(samples: int) -> None:
    r = bench_runner_overhead(samples)
    verdict = "within" if r["cold_ms"] <= TARGET_MS else "OVER"
    print(f"eval runner overhead over {int(r['samples']):,} samples (instant backend, exact scorer): "
          f"{r['cold_ms']:.3f} ms/sample ({verdict} the {TARGET_MS:.0f} ms target); "
          f"all cached {r['cached_ms']:.3f} ms/sample; bare asyncio loop {r['bare_ms']:.3f} ms/sample "
          f"(runner/bare {r['cold_ms'] / max(r['bare_ms'], 1e-9):.1f}x)")


def main() -> None:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    print(f"machine: {machine()}")
    report_runner(samples)
    # The compare half lives in compare_bench.py; run it too when present.
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import compare_bench
    except ImportError:
        return
    sys.argv = sys.argv[:1]  # its own argument is a row count, not ours
    compare_bench.main()


if __name__ == "__main__":
    main()
