"""The DuckDB store: migrations from a blank file, bad files, two writing processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from gateway.errors import StoreError
from gateway.store import Store
from gateway.store.connection import forget_migrations
from gateway.store.migrations import MIGRATIONS, migrate


def test_migrations_from_blank_file_and_rerun(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "blank.duckdb"))
    applied = migrate(con)
    assert applied == [name for name, _ in MIGRATIONS]
    assert migrate(con) == []
    recorded = [r[0] for r in con.execute("SELECT name FROM _migrations ORDER BY applied, name").fetchall()]
    assert sorted(recorded) == sorted(applied)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"base_models", "model_versions", "aliases", "jobs", "job_events", "checkpoints",
            "eval_runs", "eval_samples", "eval_scores", "api_keys", "request_log"} <= tables


def test_migration_names_are_ordered_and_unique() -> None:
    names = [name for name, _ in MIGRATIONS]
    assert len(names) == len(set(names))
    assert names == sorted(names)


def test_corrupt_file_gets_clear_error_and_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "gateway.duckdb"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    before = path.read_bytes()
    forget_migrations()
    with pytest.raises(StoreError) as info, Store(path).connect():
        pass
    assert str(path) in str(info.value)
    assert path.read_bytes() == before


def test_foreign_duckdb_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gateway.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE invoices (id INTEGER)")
    con.close()
    forget_migrations()
    with pytest.raises(StoreError, match="not a gateway store"), Store(path).connect():
        pass
    con = duckdb.connect(str(path))
    assert {r[0] for r in con.execute("SHOW TABLES").fetchall()} == {"invoices"}
    con.close()


WRITER = textwrap.dedent(
    """
    import sys
    from gateway.store import Store
    store = Store(sys.argv[1])
    who, n = sys.argv[2], int(sys.argv[3])
    for i in range(n):
        store.execute(
            "INSERT INTO request_log (id, created, route, status) VALUES (?, now(), ?, 200)",
            [f"{who}-{i}", who],
        )
    """
)


def test_two_processes_write_without_losing_rows(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    Store(path).execute("SELECT 1")  # migrate once up front
    n = 60
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), who, str(n)])
        for who in ("server", "cli")
    ]
    for proc in procs:
        assert proc.wait(timeout=300) == 0
    rows = Store(path).query("SELECT route, count(*) AS n FROM request_log GROUP BY route ORDER BY route")
    assert rows == [{"route": "cli", "n": n}, {"route": "server", "n": n}]


def test_lock_timeout_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    Store(path).execute("SELECT 1")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match="locked by another process") as info:
            Store(path, lock_timeout=0.5).execute("SELECT 1")
        assert str(path) in str(info.value)
    finally:
        holder.kill()
        holder.wait()


def test_concurrent_writers_in_one_process_are_serialised(tmp_path: Path) -> None:
    """Several Store objects on one file (the server builds a few) never collide inside DuckDB."""
    import threading

    from gateway.registry import create_version

    path = tmp_path / "gateway.duckdb"
    Store(path).query("SELECT 1")
    errors: list[BaseException] = []

    def make() -> None:
        try:
            create_version(Store(path), base="tiny", name="racer", kind="local")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    numbers = [r["version"] for r in Store(path).query("SELECT version FROM model_versions ORDER BY version")]
    assert numbers == list(range(1, 9))
