"""Defaults that follow the hardware: the compute dtype and the thread count.

The decision is made from torch's own capability reports, never from lists of
CPU names. The core never imports torch: a plugin passes its `torch` module to
`read_capabilities`, and a backend whose engine runs in another interpreter
(vLLM in its own venv) runs `PROBE_SCRIPT` there, which reads the same report.

The rule for dtype = "auto":
- CUDA with bf16 support: bfloat16; CUDA without it: float16;
- a CPU with native bf16 (AVX512-BF16 or AMX): bfloat16;
- any other CPU: float32. Emulated bf16 there is several times slower than
  float32 (measured: 6.3x on an AVX2 CPU, a SmolLM2 forward pass).

The rule for threads (see `default_threads`): all usable cores when the
backend runs inside a batch command (eval, demo, regress), one fewer when it
serves HTTP, where the event loop and tokenising need a core of their own.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DTYPES = ("bfloat16", "float16", "float32")
AUTO = "auto"


@dataclass(frozen=True)
class Capabilities:
    """What torch reports about the machine it runs on."""

    cuda: bool = False
    cuda_bf16: bool = False
    cpu_avx512_bf16: bool = False
    cpu_amx: bool = False
    # torch.backends.cpu.get_cpu_capability(): "AVX512", "AVX2", "DEFAULT", ...
    cpu_capability: str = ""

    @property
    def cpu_native_bf16(self) -> bool:
        return self.cpu_avx512_bf16 or self.cpu_amx

    def describe(self) -> str:
        if self.cuda:
            return f"CUDA ({'bf16' if self.cuda_bf16 else 'no bf16'})"
        flags = [self.cpu_capability or "CPU"]
        if self.cpu_avx512_bf16:
            flags.append("AVX512-BF16")
        if self.cpu_amx:
            flags.append("AMX")
        if not self.cpu_native_bf16:
            flags.append("no native bf16")
        return ", ".join(flags)


def _report(torch: Any) -> dict[str, Any]:
    """Read torch's capability report; `torch` is the torch module (or a stand-in)."""
    def ask(question: Any) -> Any:
        try:
            return question()
        except Exception:  # a report that is missing or fails counts as "not supported"
            return None

    cuda = bool(ask(lambda: torch.cuda.is_available()))
    return {
        "cuda": cuda,
        "cuda_bf16": bool(cuda and ask(lambda: torch.cuda.is_bf16_supported())),
        "cpu_avx512_bf16": bool(ask(lambda: torch.cpu._is_avx512_bf16_supported())),
        "cpu_amx": bool(ask(lambda: torch.cpu._is_amx_tile_supported())),
        "cpu_capability": str(ask(lambda: torch.backends.cpu.get_cpu_capability()) or ""),
    }


def read_capabilities(torch: Any) -> Capabilities:
    """The capabilities of the machine as the given torch module reports them."""
    return Capabilities(**_report(torch))


# The same report, run in another interpreter (a backend's own venv).
PROBE_SCRIPT = (
    "import json, torch\nfrom typing import Any\n"
    + inspect.getsource(_report)
    + "print(json.dumps(_report(torch)))\n"
)


def probe_capabilities(python: str, timeout: float = 120.0) -> Capabilities:
    """Run the capability report in `python` (which must have torch)."""
    out = subprocess.run([python, "-c", PROBE_SCRIPT], capture_output=True, text=True,
                         timeout=timeout, check=True)
    return Capabilities(**json.loads(out.stdout.strip().splitlines()[-1]))


def choose_dtype(caps: Capabilities, device: str = "auto") -> str:
    """The fastest dtype the device runs natively (see the module docstring)."""
    on_cuda = device.startswith("cuda") or (device == "auto" and caps.cuda)
    if on_cuda:
        return "bfloat16" if caps.cuda_bf16 else "float16"
    return "bfloat16" if caps.cpu_native_bf16 else "float32"


def dtype_reason(caps: Capabilities, configured: str) -> str:
    """Why this dtype: the config's word, or the auto rule's evidence."""
    if configured != AUTO:
        return "set in the config"
    return f"auto: {caps.describe()}"


def threads_reason(serving: bool) -> str:
    return "auto: serving, one core kept for the server" if serving else "auto: all cores"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads(serving: bool, cores: int | None = None) -> int:
    """Torch threads: all cores in a batch command, one fewer when serving HTTP.

    Serving keeps a core free because OpenMP threads that lose their core to
    the event loop stall every op of a decode step (measured on 2 cores; see
    README "Hardware defaults" for the figures behind this rule).
    """
    n = usable_cores() if cores is None else max(1, cores)
    return max(1, n - 1) if serving else n


def resolve_dtype(configured: str, caps: Capabilities, device: str = "auto") -> str:
    """A configured dtype ("auto" or one of DTYPES) made concrete; ValueError otherwise."""
    if configured == AUTO:
        return choose_dtype(caps, device)
    if configured not in DTYPES:
        raise ValueError(f"dtype {configured!r} is not supported: use auto, {', '.join(DTYPES)}")
    return configured


# Flags that decide CPU speed for these models, in the order they are shown.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_summary() -> str:
    """The CPU model, usable cores and the flags that matter, from /proc/cpuinfo."""
    import platform

    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    shown = [f for f in CPU_FLAGS if f in flags]
    missing = [f for f in ("avx512_bf16", "amx_bf16") if f not in flags]
    text_flags = " ".join(shown) if shown else "flags unknown"
    if flags and missing == ["avx512_bf16", "amx_bf16"]:
        text_flags += " (no native bf16)"
    return f"{model}, {usable_cores()} cores, {text_flags}"
