"""The generated docs (docs/cli.md, docs/schema.md) stay current, and the README names the commands."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
GEN_DOCS = ROOT / "scripts" / "gen_docs.py"

# Top-level commands README.md must show as `gateway <command>`. Only these are
# checked for now; add each command here once the README covers it.
README_COMMANDS = [
    "compare", "data", "db", "demo", "diagnose", "eval", "evalsets", "jobs", "keys", "models", "plugins",
    "regress", "report", "runs", "serve", "train",
]


def gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", GEN_DOCS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def builtin_commands() -> dict[str, click.Command]:
    """The top-level commands the docs cover: the core's and the built-in plugins'."""
    return dict(gen_docs().assemble_builtin_cli().commands)


def run_gen_docs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GEN_DOCS), *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def test_generated_docs_are_current() -> None:
    result = run_gen_docs("--check")
    assert result.returncode == 0, (
        "docs/ is stale; run `python scripts/gen_docs.py`\n" + result.stderr[-4000:]
    )


def test_check_reports_a_stale_file(tmp_path: Path) -> None:
    for name in ("cli.md", "schema.md"):
        shutil.copy(ROOT / "docs" / name, tmp_path / name)
    schema = tmp_path / "schema.md"
    schema.write_text(schema.read_text().replace("| `applied` | TIMESTAMP |", "| `applied` | DATE |"))
    (tmp_path / "cli.md").unlink()

    result = run_gen_docs("--check", "--docs-dir", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path / 'cli.md'}: missing" in result.stderr
    assert f"{schema}: stale (+1 -1 lines)" in result.stderr
    assert "-| `applied` | DATE |" in result.stderr
    # --check writes nothing.
    assert not (tmp_path / "cli.md").exists()


def test_generation_is_deterministic_and_machine_free(tmp_path: Path) -> None:
    result = run_gen_docs("--docs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for name in ("cli.md", "schema.md"):
        text = (tmp_path / name).read_text()
        assert text == (ROOT / "docs" / name).read_text()
        for local in (str(Path.home()), str(ROOT), str(tmp_path)):
            assert local not in text, f"{name} embeds the path {local}"


def test_cli_reference_covers_every_command() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    for name, command in builtin_commands().items():
        assert f"\n## gateway {name}\n" in text
        for sub in getattr(command, "commands", {}):
            assert f"\n## gateway {name} {sub}\n" in text


def test_schema_lists_every_migration_and_table() -> None:
    import duckdb

    from gateway.store.migrations import MIGRATIONS, migrate

    text = (ROOT / "docs" / "schema.md").read_text()
    for name, _ in MIGRATIONS:
        assert f"| `{name}` |" in text
    con = duckdb.connect(":memory:")
    migrate(con)
    tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
    con.close()
    for table in tables:
        assert f"\n### {table}\n" in text


def test_readme_command_list_is_complete() -> None:
    assert sorted(README_COMMANDS) == sorted(builtin_commands())


@pytest.mark.parametrize("command", README_COMMANDS)
def test_readme_shows_command(command: str) -> None:
    assert command in builtin_commands(), f"{command!r} is not a gateway command"
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"\bgateway {re.escape(command)}\b", readme), (
        f"README.md never shows `gateway {command}`"
    )
