"""Hardware-aware defaults: the dtype decision for each capability report, the
thread rule, and that a run records (and caches by) the dtype and threads."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.hardware import (
    PROBE_SCRIPT,
    Capabilities,
    choose_dtype,
    default_threads,
    probe_capabilities,
    read_capabilities,
    resolve_dtype,
    usable_cores,
)


def fake_torch(*, cuda: bool = False, cuda_bf16: bool = False, avx512_bf16: bool = False,
               amx: bool = False, capability: str = "AVX2") -> Any:
    """A stand-in for the torch module that reports exactly these capabilities."""
    return SimpleNamespace(
        cuda=SimpleNamespace(is_available=lambda: cuda, is_bf16_supported=lambda: cuda_bf16),
        cpu=SimpleNamespace(_is_avx512_bf16_supported=lambda: avx512_bf16,
                            _is_amx_tile_supported=lambda: amx),
        backends=SimpleNamespace(cpu=SimpleNamespace(get_cpu_capability=lambda: capability)),
    )


@pytest.mark.parametrize(("report", "device", "expected"), [
    ({"cuda": True, "cuda_bf16": True}, "auto", "bfloat16"),
    ({"cuda": True, "cuda_bf16": False}, "auto", "float16"),
    # A CUDA machine told to run on its CPU follows the CPU's own report.
    ({"cuda": True, "cuda_bf16": True}, "cpu", "float32"),
    ({"avx512_bf16": True, "capability": "AVX512"}, "auto", "bfloat16"),
    ({"amx": True, "capability": "AVX512"}, "auto", "bfloat16"),
    ({"capability": "AVX512"}, "auto", "float32"),  # AVX-512 without its bf16 extension
    ({"capability": "AVX2"}, "auto", "float32"),  # the machine the demo was too slow on
    ({"capability": "DEFAULT"}, "cpu", "float32"),
])
def test_dtype_follows_each_capability_report(report: dict[str, Any], device: str,
                                              expected: str) -> None:
    caps = read_capabilities(fake_torch(**report))
    assert choose_dtype(caps, device) == expected
    assert resolve_dtype("auto", caps, device) == expected


def test_a_report_that_raises_counts_as_unsupported() -> None:
    def boom() -> bool:
        raise RuntimeError("no such instruction")

    torch = fake_torch(capability="AVX2")
    torch.cpu._is_avx512_bf16_supported = boom
    torch.cuda.is_available = boom
    caps = read_capabilities(torch)
    assert caps == Capabilities(cpu_capability="AVX2")
    assert choose_dtype(caps) == "float32"


def test_a_configured_dtype_wins_and_a_bad_one_is_refused() -> None:
    caps = Capabilities(cpu_avx512_bf16=True)
    assert resolve_dtype("float32", caps) == "float32"
    with pytest.raises(ValueError, match="'fp8' is not supported: use auto, bfloat16"):
        resolve_dtype("fp8", caps)


def test_threads_all_cores_in_process_one_fewer_when_serving() -> None:
    assert default_threads(serving=False, cores=2) == 2
    assert default_threads(serving=True, cores=2) == 1
    assert default_threads(serving=True, cores=1) == 1
    assert default_threads(serving=False, cores=16) == 16
    assert default_threads(serving=False) == usable_cores()


def test_probe_in_another_interpreter_reads_the_same_report() -> None:
    torch = pytest.importorskip("torch")
    assert "def _report" in PROBE_SCRIPT
    assert probe_capabilities(sys.executable) == read_capabilities(torch)


# ---------------------------------------------------------------- the local backend


def _write_backend_config(home: Path, **settings: Any) -> None:
    lines = ['[backends."tiny"]', 'backend = "local"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    (home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_eval_run_records_dtype_and_threads_and_caches_by_them(
    gateway_home: Path, gateway_cli: Callable[..., Any], tiny_model_dir: Path
) -> None:
    pytest.importorskip("torch")
    from gateway.config import load_config
    from gateway.evaluation.runner import run_eval_sync
    from gateway.evaluation.runs import run_details
    from gateway.store import Store

    assert gateway_cli("models", "add", "--path", str(tiny_model_dir), "--name", "tiny").exit_code == 0
    capitals = Path(__file__).parent / "data" / "evalsets" / "capitals"

    def run(**settings: Any) -> dict[str, Any]:
        _write_backend_config(gateway_home, **settings)
        config = load_config()
        store = Store(config.db_path)
        run_id = run_eval_sync(config, store, capitals, "tiny", progress=False)
        details = run_details(store, run_id)
        cached = store.query_one(
            "SELECT count(*) FILTER (WHERE cached) AS n FROM eval_samples WHERE run_id = ?", [run_id])
        assert cached is not None
        return {"env": details["environment"], "cached": cached["n"], "rows": details["done"]}

    first = run(dtype="float32")
    assert first["env"]["dtype"] == "float32"
    assert first["env"]["threads"] == usable_cores()  # in-process: every core
    assert first["env"]["device"] == "cpu"
    assert first["cached"] == 0

    again = run(dtype="float32")
    assert again["cached"] == again["rows"] > 0  # same dtype and threads: answers reused

    other = run(dtype="bfloat16")
    assert other["env"]["dtype"] == "bfloat16"
    assert other["cached"] == 0  # a float32 answer is never reused for bfloat16

    fewer = run(dtype="float32", threads=1)
    assert fewer["env"]["threads"] == 1
    assert fewer["cached"] == 0


def test_local_backend_reports_auto_choice_and_serving_threads(tiny_model_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    import asyncio

    from gateway_local.backend import LocalBackend

    from gateway.testing import backend_context

    async def health(**settings: Any) -> dict[str, Any]:
        serving = bool(settings.pop("serving", False))
        backend = LocalBackend(settings, backend_context("tiny", tiny_model_dir, serving=serving))
        await backend.start()
        try:
            return await backend.health()
        finally:
            await backend.close()

    expected = choose_dtype(read_capabilities(torch))
    auto = asyncio.run(health())
    assert auto["dtype"] == expected
    assert auto["dtype_reason"].startswith("auto: ")
    assert auto["threads"] == usable_cores()
    served = asyncio.run(health(serving=True, dtype="float32"))
    assert served["dtype"] == "float32" and served["dtype_reason"] == "set in the config"
    assert served["threads"] == max(1, usable_cores() - 1)


def test_trainer_gpu_path_follows_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from gateway_local import training_loop

    for caps, expected in ((Capabilities(cuda=True, cuda_bf16=True), torch.bfloat16),
                           (Capabilities(cuda=True, cuda_bf16=False), torch.float16)):
        monkeypatch.setattr(training_loop, "read_capabilities", lambda _t, c=caps: c)
        device, autocast = training_loop.pick_device()
        assert (device.type, autocast) == ("cuda", expected)
    # The CPU keeps float32 (no autocast) even where bf16 is native: measured no faster.
    monkeypatch.setattr(training_loop, "read_capabilities",
                        lambda _t: Capabilities(cpu_avx512_bf16=True))
    assert training_loop.pick_device() == (torch.device("cpu"), None)
