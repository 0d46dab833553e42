"""The CLI skeleton: usage errors, `db path`, `db sql`, configuration, a light core."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from gateway.cli import assemble
from gateway.config import load_config


def test_unknown_command_is_usage_error(gateway_home: Path) -> None:
    result = CliRunner().invoke(assemble(), ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_unknown_option_is_usage_error(gateway_home: Path) -> None:
    result = CliRunner().invoke(assemble(), ["db", "path", "--bogus"])
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_db_path_is_under_home(gateway_home: Path, gateway_cli: Any) -> None:
    result = gateway_cli("db", "path")
    assert result.output.strip() == str(gateway_home / "gateway.duckdb")


def test_db_sql_formats(gateway_home: Path, gateway_cli: Any) -> None:
    table = gateway_cli("db", "sql", "SELECT 1 AS one, 'x' AS letter")
    assert table.exit_code == 0
    assert table.output.splitlines()[0].split() == ["one", "letter"]
    csv_out = gateway_cli("db", "sql", "SELECT 1 AS one, 'x' AS letter", "--format", "csv")
    assert csv_out.output == "one,letter\n1,x\n"
    js = gateway_cli("db", "sql", "SELECT 1 AS one, 'x' AS letter", "--format", "json")
    assert json.loads(js.output) == [{"one": 1, "letter": "x"}]


def test_db_sql_invalid_changes_nothing(gateway_home: Path, gateway_cli: Any) -> None:
    gateway_cli("db", "sql", "INSERT INTO aliases VALUES ('bot', 'prod', 'ft:x', now())")
    result = CliRunner().invoke(
        assemble(), ["db", "sql", "DELETE FROM aliases; SELEC broken"]
    )
    assert result.exit_code == 1
    assert "syntax error" in result.output.lower()
    rows = json.loads(gateway_cli("db", "sql", "SELECT name FROM aliases", "--format", "json").output)
    assert rows == [{"name": "bot"}]


def test_config_file_is_read(gateway_home: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "custom.toml"
    cfg.write_text(
        'adapter_roots = ["adapters"]\n[server]\nport = 9123\n'
        '[backends."smollm2-135m"]\nbackend = "vllm"\nurl = "http://127.0.0.1:8001"\n'
    )
    config = load_config(cfg)
    assert config.server.port == 9123
    assert config.server.host == "127.0.0.1"
    assert config.backend_config("smollm2-135m").backend == "vllm"
    assert config.backend_config("smollm2-135m").settings == {"url": "http://127.0.0.1:8001"}
    assert config.backend_config("other").backend == "local"
    assert tmp_path / "adapters" in config.allowed_adapter_roots()


def test_bad_config_is_clear(gateway_home: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[server\nport = ")
    result = CliRunner().invoke(assemble(), ["--config", str(cfg), "db", "path"])
    assert result.exit_code == 1
    assert "invalid TOML" in result.output and str(cfg) in result.output


def test_core_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, gateway.cli; gateway.cli.assemble(); "
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'vllm', 'litellm') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
