"""Helpers for tests that need a real `gateway serve` process.

- `gateway_server(home, ...)`: starts `gateway serve` on a free 127.0.0.1 port
  with GATEWAY_HOME=home, waits (bounded) for /health, yields the base URL
  (`http://127.0.0.1:PORT`; the OpenAI SDK wants `base_url + "/v1"`) and always
  stops the process. Its output goes to `home / "server.log"`.
- `write_echo_plugin(folder)`: the deterministic "echo" backend below as a plugin.
- `make_adapter(folder, base)`: a folder shaped like a LoRA adapter for `base`.
- `write_plugin(folder, entry_name, module_name, source)`: writes a plugin
  module plus a dist-info with an entry point in the "gateway" group, so a
  subprocess with `folder` on PYTHONPATH discovers it like an installed one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

GATEWAY_MAIN = "from gateway.cli import main; main()"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_plugin(folder: Path, entry_name: str, module_name: str, source: str) -> Path:
    """A module `module_name` registered as plugin `entry_name`, findable from `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module_name}.py").write_text(source, encoding="utf-8")
    dist = folder / f"{module_name}-0.0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {module_name}\nVersion: 0.0.1\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        f"[gateway]\n{entry_name} = {module_name}\n", encoding="utf-8"
    )
    return folder


def make_adapter(folder: Path, base: str | None = "tiny") -> Path:
    """A folder that looks like a PEFT LoRA adapter trained on `base` (no real weights)."""
    folder.mkdir(parents=True)
    config = {"r": 8} if base is None else {"base_model_name_or_path": base, "r": 8}
    (folder / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "adapter_model.safetensors").write_bytes(b"not real weights")
    return folder


def gateway_env(
    home: Path, config: Path | None = None, pythonpath: Sequence[Path] = (), **extra: str
) -> dict[str, str]:
    """The environment of a gateway subprocess for `home`."""
    env = dict(os.environ)
    env.pop("GATEWAY_CONFIG", None)
    env["GATEWAY_HOME"] = str(home)
    if config is not None:
        env["GATEWAY_CONFIG"] = str(config)
    paths = [str(p) for p in pythonpath]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def _log_tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-chars:] if log.exists() else ""


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextmanager
def gateway_server(
    home: Path,
    *,
    config: Path | None = None,
    pythonpath: Sequence[Path] = (),
    env: dict[str, str] | None = None,
    startup_timeout: float = 60.0,
    port: int | None = None,
    processes: list[subprocess.Popen[bytes]] | None = None,
) -> Iterator[str]:
    """A running `gateway serve` for `home`; yields its base URL.

    `port` fixes the port (a restarted server keeps its address); the process
    is appended to `processes` when given, for tests that kill it."""
    port = port or free_port()
    log = home / "server.log"
    home.mkdir(parents=True, exist_ok=True)
    environ = gateway_env(home, config, pythonpath, **(env or {}))
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", GATEWAY_MAIN, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    if processes is not None:
        processes.append(proc)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"gateway serve exited with {proc.returncode} before it was ready:\n{_log_tail(log)}"
                )
            try:
                if httpx.get(f"{base_url}/health", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"gateway serve not healthy after {startup_timeout:.0f}s:\n{_log_tail(log)}"
                )
            time.sleep(0.1)
        yield base_url
    finally:
        stop_process(proc)


# A deterministic backend for serving tests. It answers "<label>: <text>" where
# label is the adapter (or the base) and text the last user message or the
# prompt; tokens are whitespace-separated words. Messages starting with
# "please fail: " make it raise: unavailable, bad, crash, midstream; one that
# contains "please be slow" streams a word every 0.3 s.
ECHO_PLUGIN = '''
from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from gateway import hookimpl
from gateway.contracts import (
    BackendContext, BackendRequestError, BackendUnavailable, BaseBackend, Delta, Generation, Usage,
)


class EchoBackend(BaseBackend):
    name: ClassVar[str] = "echo"
    description: ClassVar[str] = "repeats the prompt (tests)"

    def __init__(self, settings: dict[str, Any], context: BackendContext) -> None:
        super().__init__(settings, context)
        self.loaded: set[str] = set()

    async def start(self) -> None:
        await asyncio.sleep(float(self.settings.get("start_delay", 0)))
        if self.settings.get("fail_start"):
            raise BackendUnavailable("echo is still warming up")

    async def close(self) -> None:
        pass

    def _answer(self, request: Any) -> tuple[list[str], str, Usage]:
        target = request.target
        if target.adapter_path and target.version_id is None and target.adapter_name not in self.loaded:
            raise BackendRequestError(f"adapter {target.adapter_name} is not loaded")
        if hasattr(request, "messages"):
            users = [m for m in request.messages if m["role"] == "user"]
            text = users[-1]["content"] if users else ""
        else:
            text = request.prompt
        if text.startswith("please fail: "):
            how = text.split(": ", 1)[1]
            if how == "unavailable":
                raise BackendUnavailable("echo is overloaded")
            if how == "bad":
                raise BackendRequestError("echo refuses this prompt")
            if how == "crash":
                raise RuntimeError("echo crashed")
        label = target.adapter_name or target.base
        words = f"{label}: {text}".split()
        finish = "stop"
        out = " ".join(words)
        for stop in request.params.stop:
            if stop in out:
                out = out[: out.index(stop)]
        words = out.split()
        limit = request.params.max_tokens
        if limit is not None and len(words) > limit:
            words, finish = words[:limit], "length"
        return words, finish, Usage(len(text.split()), len(words))

    async def chat(self, request: Any) -> Generation:
        words, finish, usage = self._answer(request)
        if "please be slow" in " ".join(words):
            await asyncio.sleep(0.3 * len(words))
        return Generation(" ".join(words), finish, usage)

    async def complete(self, request: Any) -> Generation:
        return await self.chat(request)

    async def stream(self, request: Any):
        words, finish, usage = self._answer(request)
        slow = "please be slow" in " ".join(words)
        for i, word in enumerate(words):
            await asyncio.sleep(0.3 if slow else 0.001)
            if i == 1 and "please fail: midstream" in " ".join(words):
                raise RuntimeError("echo broke mid-stream")
            text = word if i == 0 else " " + word
            last = i == len(words) - 1
            yield Delta(text, finish if last else None, usage if last else None)

    async def load_adapter(self, target: Any) -> None:
        self.loaded.add(target.adapter_name)

    async def unload_adapter(self, target: Any) -> None:
        self.loaded.discard(target.adapter_name)

    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "adapters": sorted(self.loaded)}


@hookimpl
def register_backends(register):
    register(EchoBackend)
'''


def write_echo_plugin(folder: Path) -> Path:
    """The echo backend as plugin "echo" (module gw_test_echo) under `folder`."""
    return write_plugin(folder, "echo", "gw_test_echo", ECHO_PLUGIN)
