"""Starting, waiting for and stopping the servers a benchmark compares."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_healthy(url: str, alive: Any, timeout: float, log: Path) -> None:
    """Poll url/health until 200; fail early with the log's tail if the server exits."""
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise SystemExit(f"the server for {url} exited early:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} not healthy after {timeout:.0f}s (log: {log})")
        time.sleep(0.5)


def stop(proc: Any) -> None:
    if hasattr(proc, "alive"):  # vLLM's process wrapper: ends its whole process group
        asyncio.run(proc.stop())
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
