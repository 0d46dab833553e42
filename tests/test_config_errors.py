"""A bad configuration file is a one-line error naming the file and the key, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError

BAD = {
    "not UTF-8": b"[server]\nhost = \"\xff\xfe\"\n",
    "deep nesting": b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "infinite interval": b"[server]\nlog_flush_interval = inf\n",
    "nan interval": b"[server]\nlog_flush_interval = nan\n",
    "port out of range": b"[server]\nport = 99999999\n",
    "port not whole": b"[server]\nport = 80.5\n",
    "upload limit text": b"[server]\nmax_upload_mb = \"big\"\n",
    "jobs limit": b"[jobs]\nmax_running = 0\n",
}
KEYS = {"infinite interval": "log_flush_interval", "nan interval": "log_flush_interval",
        "port out of range": "port", "port not whole": "port", "upload limit text": "max_upload_mb",
        "jobs limit": "max_running"}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_a_clear_error(gateway_home: Path, gateway_cli: Any, case: str) -> None:
    path = gateway_home / "config.toml"
    path.write_bytes(BAD[case])
    with pytest.raises(ConfigError) as info:
        load_config()
    message = str(info.value)
    assert str(path) in message and KEYS.get(case, "") in message
    result = gateway_cli("models", "list")
    assert result.exit_code == 1 and "Traceback" not in result.output and str(path) in result.output


def test_a_directory_as_config(gateway_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "conf.toml"
    folder.mkdir()
    monkeypatch.setenv("GATEWAY_CONFIG", str(folder))
    with pytest.raises(ConfigError, match="is a directory"):
        load_config()
