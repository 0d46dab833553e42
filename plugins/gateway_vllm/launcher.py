"""Starting and stopping one vLLM OpenAI server as a child process.

vLLM runs in its own interpreter (often its own venv), so the gateway never
imports it. The server gets a process group of its own: stopping it signals
the whole group, which takes vLLM's engine-core and worker processes along.
On Linux the child also receives SIGTERM if the gateway dies first, so a
killed gateway leaves no orphan holding the port and the memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.contracts import (
    AUTO,
    BackendUnavailable,
    ConfigError,
    choose_dtype,
    probe_capabilities,
)

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
READY_POLL_S = 0.5
STOP_GRACE_S = 20.0


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the server will: connections in TIME_WAIT do not block the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel for SIGTERM when the parent dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def has_flag(args: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def server_command(
    *,
    python: str,
    model: str,
    served_name: str,
    host: str,
    port: int,
    max_lora_rank: int,
    max_loras: int,
    args: list[str],
    dtype: str | None = None,
) -> list[str]:
    """The vLLM command line. Flags given in `args` win over the derived ones."""
    command = [python, "-m", SERVER_MODULE, "--model", model, "--served-model-name", served_name,
               "--host", host, "--port", str(port)]
    if not has_flag(args, "--enable-lora"):
        command.append("--enable-lora")
    if not has_flag(args, "--max-lora-rank"):
        command += ["--max-lora-rank", str(max_lora_rank)]
    if not has_flag(args, "--max-loras"):
        command += ["--max-loras", str(max_loras)]
    if dtype and not has_flag(args, "--dtype"):
        command += ["--dtype", dtype]
    return command + args



def check_settings(base: str, settings: dict[str, Any]) -> None:
    """Reject settings of the wrong type, naming the config table they came from."""
    table = f'[backends."{base}"]'
    if not isinstance(settings.get("args", []), list):
        raise ConfigError(f'{table}: args must be a list of strings, e.g. ["--max-model-len", "2048"]')
    if not isinstance(settings.get("env", {}), dict):
        raise ConfigError(f"{table}: env must be a table of strings")
    for key in ("port", "max_lora_rank", "max_loras"):
        if not isinstance(settings.get(key, 0), int):
            raise ConfigError(f"{table}: {key} must be an integer, got {settings[key]!r}")
    for key in ("startup_timeout", "request_timeout"):
        if not isinstance(settings.get(key, 0), (int, float)):
            raise ConfigError(f"{table}: {key} must be a number of seconds, got {settings[key]!r}")


def flag_value(args: list[str], flag: str) -> str | None:
    """The value the user's extra vLLM arguments give `flag` (`--f v` or `--f=v`)."""
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def launch_dtype(configured: str, args: list[str], python: str) -> str:
    """vLLM's --dtype: the one in `args`, else the config's, else the hardware rule
    as the torch of vLLM's own interpreter reports it."""
    given = flag_value(args, "--dtype")
    if given:
        return given
    if configured != AUTO:
        return configured
    try:
        caps = probe_capabilities(python)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise BackendUnavailable(f"cannot read the hardware report from {python}: {exc}") from exc
    return choose_dtype(caps)


def server_env(extra: dict[str, str], model_is_local: bool) -> dict[str, str]:
    env = dict(os.environ)
    # Runtime /v1/load_lora_adapter needs this; it is how adapters are published.
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    # vLLM otherwise reports usage statistics over the network.
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    # A small KV cache by default on CPU builds; vLLM's own default takes GBs.
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    if model_is_local:
        env.setdefault("HF_HUB_OFFLINE", "1")
    env.update({str(k): str(v) for k, v in extra.items()})
    return env


class VllmProcess:
    """One vLLM server process; spawn() again after it died to restart it."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.env = env
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def spawn(self) -> None:
        """Start the server. Call it on the event loop's thread: the parent-death
        signal is tied to the thread that forks, and a pool thread may exit."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    async def wait_ready(self, client: httpx.AsyncClient, url: str, timeout: float) -> None:
        """Poll GET /health until it answers 200; BackendUnavailable on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.returncode()
            if code is not None:
                raise BackendUnavailable(
                    f"vLLM exited with code {code} while starting (log: {self.log_path}):\n"
                    f"{self.log_tail()}"
                )
            try:
                response = await client.get(f"{url}/health", timeout=5.0)
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                await self.stop()
                raise BackendUnavailable(
                    f"vLLM was not ready after {timeout:.0f}s (log: {self.log_path}):\n{self.log_tail()}"
                )
            await asyncio.sleep(READY_POLL_S)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM to the whole group, then SIGKILL for whatever is left."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        # Engine and worker processes may outlive the API server: kill the group.
        self._signal_group(signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    def kill(self) -> None:
        """Kill the whole group at once (tests use it to simulate a crash)."""
        self._signal_group(signal.SIGKILL)
