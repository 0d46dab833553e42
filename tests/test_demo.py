"""`gateway demo` end to end in its reduced mode, on the tiny model.

The tiny model's answers are noise, so these tests check the chain (runs,
version, report, instructions, reuse on a re-run), not the verdicts; the full
demo on SmolLM2 is the README's first command.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.demo import FEWSHOT_PROMPT, SQL_EXAMPLE, VERSION_NAME
from gateway.store import Store

QUICK = ("--base", "tiny", "--limit", "8", "--max-steps", "5")


@pytest.fixture
def demo_home(gateway_home: Path, gateway_cli: Callable[..., Any], tiny_model_dir: Path) -> Path:
    result = gateway_cli("models", "add", "--path", str(tiny_model_dir), "--name", "tiny")
    assert result.exit_code == 0, result.output
    return gateway_home


def _store() -> Store:
    return Store(load_config().db_path)


def test_demo_runs_the_whole_chain(
    demo_home: Path, gateway_cli: Callable[..., Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = tmp_path / "out" / "report.html"
    result = gateway_cli("demo", *QUICK, "--output", str(report))
    assert result.exit_code == 0, result.output
    out = result.output

    for number in range(1, 6):
        assert f"[{number}/5]" in out
    store = _store()
    runs = store.query(
        "SELECT id, model, prompt_variant, status, sample_count FROM eval_runs "
        "WHERE evalset = 'support-tickets' ORDER BY created"
    )
    assert [(r["model"], r["prompt_variant"]) for r in runs] == [
        ("tiny", None), ("tiny", FEWSHOT_PROMPT), (f"{VERSION_NAME}@v1", None),
    ]
    assert all(r["status"] == "completed" and r["sample_count"] == 8 for r in runs)
    samples = store.query("SELECT run_id, count(*) AS n FROM eval_samples GROUP BY run_id")
    assert {r["run_id"]: r["n"] for r in samples} == {r["id"]: 8 for r in runs}

    versions = store.query("SELECT id, name, version, base, kind, job_id FROM model_versions")
    assert len(versions) == 1
    version = versions[0]
    assert (version["name"], version["version"], version["base"], version["kind"]) == (
        VERSION_NAME, 1, "tiny", "local")
    job = store.query_one("SELECT status, hyperparameters FROM jobs WHERE id = ?", [version["job_id"]])
    assert job is not None and job["status"] == "succeeded"
    assert json.loads(job["hyperparameters"])["max_steps"] == 5
    assert store.query_one(
        "SELECT model_version_id FROM eval_runs WHERE id = ?", [runs[2]["id"]]
    ) == {"model_version_id": version["id"]}

    # The report embeds all three runs in its data block.
    html = report.read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert match is not None
    data = json.loads(match.group(1))
    assert [r["id"] for r in data["runs"]] == [r["id"] for r in runs]
    assert str(report.resolve()) in out

    # Comparison tables and an honest verdict (either way on the tiny model).
    assert "Fine-tune (B) against zero-shot (A)" in out
    assert "Fine-tune (B) against few-shot (A)" in out
    assert "accuracy (95% CI)" in out and "B − A (95% CI)" in out
    assert "Verdict:" in out and f"{FEWSHOT_PROMPT} prompt" in out

    # Each step's wall time, the total, and the machine, dtype and threads it ran with.
    assert "Wall time per step:" in out
    assert re.search(r"^\s+[\d.]+ s  \[3/5\] Fine-tuning", out, re.M)
    assert re.search(r"^\s+[\d.]+ s  total, start to finish$", out, re.M)
    machine = out.rsplit("Machine: ", 1)[1]
    assert re.search(r"evals on the local backend, device cpu, dtype \w+, threads \d+", machine)
    assert re.search(r"training on cpu, float32, \d+ threads", machine)

    # Next steps: serve, curl, the openai SDK, the DuckDB file and a SQL query.
    assert "gateway serve" in out
    assert "curl -s http://127.0.0.1:8000/v1/chat/completions" in out
    assert f'"model": "{VERSION_NAME}@v1"' in out
    assert "from openai import OpenAI" in out and f'model="{VERSION_NAME}@v1"' in out
    assert str(demo_home / "gateway.duckdb") in out
    assert "gateway db sql" in out and "eval_scores" in out

    # The SQL it suggests runs as printed.
    assert SQL_EXAMPLE in out.replace("'\"'\"'", "'")
    sql = gateway_cli("db", "sql", SQL_EXAMPLE, "--format", "json")
    assert sql.exit_code == 0, sql.output
    found = json.loads(sql.output)
    assert {(r["model"], r["prompt_variant"]) for r in found} == {
        ("tiny", None), ("tiny", FEWSHOT_PROMPT), (f"{VERSION_NAME}@v1", None)}
    assert all(r["n"] == 8 and 0 <= r["accuracy"] <= 1 for r in found)

    # A re-run reuses the fine-tune and the cached answers; the report goes to ./report.html.
    monkeypatch.chdir(tmp_path)
    second = gateway_cli("demo", *QUICK)
    assert second.exit_code == 0, second.output
    assert f"Reusing {VERSION_NAME}@v1" in second.output
    assert "8 answers reused from the response cache" in second.output
    assert store.query_one("SELECT count(*) AS n FROM model_versions") == {"n": 1}
    assert store.query_one("SELECT count(*) AS n FROM jobs") == {"n": 1}
    assert store.query_one("SELECT count(*) AS n FROM eval_runs") == {"n": 6}
    assert (tmp_path / "report.html").is_file()


def test_unknown_base_is_a_clean_error(gateway_home: Path, gateway_cli: Callable[..., Any]) -> None:
    result = gateway_cli("demo", "--base", "nope", "--limit", "2")
    assert result.exit_code == 1
    assert "Error: unknown base model 'nope'" in result.output


def test_demo_diagnose_runs_the_five_contenders_and_reports(
    demo_home: Path, gateway_cli: Callable[..., Any], tmp_path: Path,
) -> None:
    from gateway.cli.demo_diagnose import DIAGNOSE_EVALSET, DIAGNOSE_VERSION

    report = tmp_path / "diagnosis.html"
    result = gateway_cli("demo", "--diagnose", "--base", "tiny", "--limit", "4", "--max-steps", "2",
                         "--output", str(report))
    assert result.exit_code == 0, result.output
    out = result.output
    for number in range(1, 5):
        assert f"[{number}/4]" in out
    assert "verdict: " in out and "total, start to finish" in out
    runs = _store().query("SELECT model, prompt_variant, sample_count FROM eval_runs "
                          "WHERE evalset = ? ORDER BY created", [DIAGNOSE_EVALSET])
    assert [(r["model"], r["prompt_variant"]) for r in runs] == [
        ("tiny", None), ("tiny", "fewshot:3"), ("tiny", "retrieve:4"),
        (f"{DIAGNOSE_VERSION}@v1", None), (f"{DIAGNOSE_VERSION}@v1", "retrieve:4")]
    assert all(r["sample_count"] == 4 for r in runs)
    assert "Behaviour or knowledge? (policy-knowledge, 4 samples" in report.read_text()
