"""Where the gateway keeps its files, and the one TOML configuration file.

GATEWAY_HOME (default: the per-user data directory) holds `gateway.duckdb`,
`config.toml`, the model store and job outputs. `--config` on the command line
or GATEWAY_CONFIG points at another configuration file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def gateway_home() -> Path:
    """The gateway's data directory: $GATEWAY_HOME, else the per-user data dir."""
    env = os.environ.get("GATEWAY_HOME")
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("gateway", appauthor=False))


@dataclass
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # Seconds between request-log flushes to DuckDB.
    log_flush_interval: float = 1.0
    # The largest upload POST /v1/files takes ([server] max_upload_mb, default 512 MiB).
    max_upload_bytes: int = 512 * 1024 * 1024
    # Host headers accepted on a non-loopback bind (empty: any, since keys are required there).
    allowed_hosts: list[str] = field(default_factory=list)
    # Origins whose state-changing requests are accepted (empty: none; CORS stays off).
    allowed_origins: list[str] = field(default_factory=list)
    # The largest JSON body (413 past it), in bytes ([server] max_body_mb, default 16 MiB).
    max_body_bytes: int = 16 * 1024 * 1024
    # Seconds a request body may stall before the request ends with 408.
    read_timeout: float = 30.0
    # Open connections beyond this get 503 (uvicorn's limit_concurrency).
    max_connections: int = 1000
    # Load the [backends] base models at startup (/ready answers 503 until they have).
    preload: bool = True
    # Serve /metrics without a key even when keys exist.
    public_metrics: bool = False
    # Reverse proxies whose X-Forwarded-For names the client (per-client limits).
    trusted_proxies: list[str] = field(default_factory=list)
    # Seconds requests in flight get to finish after SIGTERM.
    shutdown_timeout: float = 30.0
    # Days of request_log kept (older rows are deleted hourly); 0 keeps everything.
    request_log_days: float = 30.0


@dataclass
class BackendConfig:
    """Which backend serves a base model, and that backend's own settings."""

    base: str
    backend: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Config:
    home: Path
    path: Path | None = None
    server: ServerSettings = field(default_factory=ServerSettings)
    default_backend: str = "local"
    backends: dict[str, BackendConfig] = field(default_factory=dict)
    # Provider name -> settings (api_base, the NAME of the env var with the key...).
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    adapter_roots: list[Path] = field(default_factory=list)
    # Model name -> eval sets to run on each new version of it.
    auto_eval: dict[str, list[str]] = field(default_factory=dict)
    # [jobs] max_running: jobs training on this machine at once, across processes.
    max_running_jobs: int = 1
    # [fine_tuning] trainer: what POST /v1/fine_tuning/jobs trains with.
    api_trainer: str = "local"
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.home / "gateway.duckdb"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    def backend_config(self, base: str) -> BackendConfig:
        """The backend configured for `base`, or the default backend."""
        return self.backends.get(base) or BackendConfig(base=base, backend=self.default_backend)

    def allowed_adapter_roots(self) -> list[Path]:
        """Adapter roots: the configured ones plus the gateway's own adapter store."""
        return [self.adapters_dir.resolve(), *(p.resolve() for p in self.adapter_roots)]


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML; a clear ConfigError (never a traceback) for anything unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None


def _number(
    table: dict[str, Any], key: str, default: float, path: Path, *, low: float, high: float,
    whole: bool = False,
) -> float:
    """A finite number in [low, high] from [server]; the error names the file and the key."""
    import math

    value = table.get(key, default)
    kind = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (whole and int(value) != value) or not low <= value <= high:
        raise ConfigError(f"{path}: [server] {key} = {value!r}: must be {kind} from {low:g} to {high:g}")
    return float(value)


def _flag(table: dict[str, Any], key: str, default: bool, path: Path) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: [server] {key} must be true or false")
    return value


def _strings(table: dict[str, Any], key: str, path: Path) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: [server] {key} must be a list of strings")
    return list(value)


def _section(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{key}] must be a table")
    return value


# The litellm providers the hosted plugin fine-tunes and serves through.
PROVIDER_KINDS = ("openai", "azure", "vertex_ai")
SECRET_KEYS = ("api_key", "key", "secret", "token", "password")


def check_providers(providers: dict[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    """[providers.NAME] tables: a litellm provider, api_base, and the NAME of the
    environment variable that holds the key. A key written into the file is refused."""
    checked: dict[str, dict[str, Any]] = {}
    for name, entry in providers.items():
        where = f"{path}: [providers.{name}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table")
        kind = entry.get("provider")
        if kind not in PROVIDER_KINDS:
            raise ConfigError(f"{where}: provider = {kind!r}; use one of {', '.join(PROVIDER_KINDS)}")
        secrets = [k for k in entry if k.lower() in SECRET_KEYS]
        if secrets:
            # Never echo the value: it may be a real key.
            raise ConfigError(f"{where}: {secrets[0]} must not hold a secret in the file; put the "
                              "key in an environment variable and name it with api_key_env")
        env = entry.get("api_key_env")
        if env is not None and not (isinstance(env, str) and env.replace("_", "").isalnum()):
            raise ConfigError(f"{where}: api_key_env must be the NAME of an environment variable")
        checked[str(name)] = dict(entry)
    return checked


def load_config(path: Path | str | None = None, home: Path | None = None) -> Config:
    """Load the configuration. A missing default file means all defaults."""
    home = home or gateway_home()
    explicit = path or os.environ.get("GATEWAY_CONFIG")
    cfg_path = Path(explicit).expanduser() if explicit else home / "config.toml"
    data: dict[str, Any] = {}
    if cfg_path.exists():
        data = _read_toml(cfg_path)
    elif explicit:
        raise ConfigError(f"configuration file not found: {cfg_path}")

    server_data = _section(data, "server", cfg_path)
    server = ServerSettings(
        host=str(server_data.get("host", DEFAULT_HOST)),
        port=int(_number(server_data, "port", DEFAULT_PORT, cfg_path, low=0, high=65535, whole=True)),
        log_flush_interval=_number(server_data, "log_flush_interval", 1.0, cfg_path, low=0.01,
                                   high=3600),
        max_upload_bytes=int(_number(server_data, "max_upload_mb", 512, cfg_path, low=0.001,
                                     high=1024**2) * 1024 * 1024),
        allowed_hosts=_strings(server_data, "allowed_hosts", cfg_path),
        allowed_origins=_strings(server_data, "allowed_origins", cfg_path),
        max_body_bytes=int(_number(server_data, "max_body_mb", 16, cfg_path, low=0.001,
                                   high=1024) * 1024 * 1024),
        read_timeout=_number(server_data, "read_timeout", 30.0, cfg_path, low=0.1, high=3600),
        max_connections=int(_number(server_data, "max_connections", 1000, cfg_path, low=1,
                                    high=1_000_000, whole=True)),
        preload=_flag(server_data, "preload", True, cfg_path),
        public_metrics=_flag(server_data, "public_metrics", False, cfg_path),
        trusted_proxies=_strings(server_data, "trusted_proxies", cfg_path),
        shutdown_timeout=_number(server_data, "shutdown_timeout", 30.0, cfg_path, low=0, high=3600),
        request_log_days=_number(server_data, "request_log_days", 30.0, cfg_path, low=0,
                                 high=36500),
    )

    backends: dict[str, BackendConfig] = {}
    for base, settings in _section(data, "backends", cfg_path).items():
        if not isinstance(settings, dict) or "backend" not in settings:
            raise ConfigError(f'{cfg_path}: [backends."{base}"] needs a `backend = "..."` key')
        rest = {k: v for k, v in settings.items() if k != "backend"}
        backends[base] = BackendConfig(base=base, backend=str(settings["backend"]), settings=rest)

    roots = data.get("adapter_roots", [])
    if not isinstance(roots, list):
        raise ConfigError(f"{cfg_path}: adapter_roots must be a list of paths")
    base_dir = cfg_path.parent
    adapter_roots = [(base_dir / Path(str(r)).expanduser()).resolve() for r in roots]

    auto_eval = {
        str(k): [str(x) for x in (v if isinstance(v, list) else [v])]
        for k, v in _section(data, "auto_eval", cfg_path).items()
    }
    jobs_data = _section(data, "jobs", cfg_path)
    try:
        max_running = int(jobs_data.get("max_running", 1))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{cfg_path}: [jobs] max_running: {exc}") from exc
    if max_running < 1:
        raise ConfigError(f"{cfg_path}: [jobs] max_running must be at least 1")
    return Config(
        home=home,
        path=cfg_path if cfg_path.exists() else None,
        server=server,
        default_backend=str(data.get("default_backend", "local")),
        backends=backends,
        providers=check_providers(_section(data, "providers", cfg_path), cfg_path),
        adapter_roots=adapter_roots,
        auto_eval=auto_eval,
        max_running_jobs=max_running,
        api_trainer=str(_section(data, "fine_tuning", cfg_path).get("trainer", "local")),
        raw=data,
    )
