"""`gateway diagnose` end to end on a scripted backend whose levers are known:
the knowledge and behaviour verdicts, --expect's exit codes, --format json,
the stored diagnosis, and the usage errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from test_retrieval import ROWS, write_set

from gateway import hookimpl
from gateway.config import load_config
from gateway.contracts import BaseBackend, ChatRequest, Generation, Usage
from gateway.evaluation.diagnosis import latest_diagnoses
from gateway.registry import BaseModel, add_base_model, create_version
from gateway.store import Store

ANSWERS = {question: ideal for _, question, ideal, _ in ROWS}
MODE = {"fine_tune_knows": False}


class LeverBackend(BaseBackend):
    """The base reads numbers out of retrieved passages; the fine-tune (an adapter)
    knows every answer when MODE says so, and otherwise behaves like the base."""

    name: ClassVar[str] = "levers"
    description: ClassVar[str] = "answers with known lever effects"

    async def chat(self, request: ChatRequest) -> Generation:
        content = str(request.messages[-1]["content"])
        if request.target.adapter_name and MODE["fine_tune_knows"]:
            question = content.rsplit("Question: ", 1)[-1]
            return Generation(text=ANSWERS.get(question, "?"), usage=Usage(8, 1))
        found = re.search(r"\] [^\[]*?(\d+)", content)
        return Generation(text=found.group(1) if found else "?", usage=Usage(len(content) // 4, 1),
                          cost=0.0001)


class Plugin:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register(LeverBackend)


@pytest.fixture
def home(gateway_home: Path, register_plugin: Any, tmp_path: Path) -> Iterator[tuple[Store, Path]]:
    register_plugin(Plugin(), "diagnosis-test")
    (gateway_home / "config.toml").write_text('default_backend = "levers"\n')
    store = Store(load_config().db_path)
    add_base_model(store, BaseModel(name="tiny", source="path", path=None))
    create_version(store, base="tiny", name="bot", kind="local")
    yield store, write_set(tmp_path / "lookup")


def test_knowledge_problem_with_expect_json_and_report(home: tuple[Store, Path], gateway_cli: Any,
                                                       tmp_path: Path) -> None:
    store, root = home
    MODE["fine_tune_knows"] = False
    args = ["diagnose", str(root), "--base", "tiny", "--fine-tune", "bot@v1", "--retrieve", "1",
            "--fewshot", "1", "-q"]
    result = gateway_cli(*args, "--expect", "knowledge")
    assert result.exit_code == 0, result.output
    assert "verdict: knowledge problem: retrieval helps (+1.000" in result.output
    assert "fine-tuning does not (+0.000" in result.output
    for contender in ("base + few-shot", "base + retrieval", "fine-tune + retrieval"):
        assert contender in result.output
    assert "retrieval recall (gold passage retrieved): 1.000" in result.output

    # Pinned to the wrong verdict: exit 1, and the answers come from the cache.
    mismatch = gateway_cli(*args, "--expect", "behaviour", "--format", "json")
    assert mismatch.exit_code == 1
    out = json.loads(mismatch.output[:mismatch.output.rindex("}") + 1])
    assert out["verdict"] == "knowledge" and out["n"] == 4 and out["scorer"] == "exact"
    assert set(out["runs"]) == {"base", "base + few-shot", "base + retrieval", "fine-tune",
                                "fine-tune + retrieval"}
    assert out["effects"]["retrieval"]["estimate"] == 1.0
    assert out["effects"]["interaction"]["estimate"] == 0.0
    assert out["effects"]["fine-tune vs best prompt-only"]["name"] == "fine-tune vs base + retrieval"
    costs = out["costs"]
    assert costs["base + retrieval"]["prompt_tokens"] > costs["base"]["prompt_tokens"]
    assert costs["base"]["cost"] == pytest.approx(0.0001)
    # Cached answers have no latency of their own; the first diagnosis measured them.
    assert costs["base"]["latency_ms"] is None and costs["base"]["cached"] == 4
    assert latest_diagnoses(store, "lookup")[0]["id"] == out["id"]
    cached = store.query_one("SELECT count_if(cached) AS c, count(*) AS n FROM eval_samples "
                             "WHERE run_id = ?", [out["runs"]["base + retrieval"]])
    assert cached == {"c": 4, "n": 4}
    stored = latest_diagnoses(store, "lookup")
    assert [d["id"] for d in stored] == [out["id"]] and stored[0]["verdict"] == "knowledge"

    # The report opens with the 2x2 chart and the verdict, and reports the five runs.
    page = tmp_path / "diagnosis.html"
    assert gateway_cli("report", "--diagnosis", "lookup", "-o", str(page)).exit_code == 0
    html = page.read_text()
    assert html.index("Behaviour or knowledge? (lookup, 4 samples, exact)") < html.index("<h2>Runs")
    assert 'aria-label="2x2: fine-tuning against retrieval"' in html
    assert "with retrieval" in html and out["sentence"].split(" (")[0] in html
    data = json.loads(html.split('id="report-data">')[1].split("</script>")[0])
    assert data["diagnosis"]["id"] == out["id"] and len(data["runs"]) == 5
    assert gateway_cli("report", "-o", str(page)).exit_code == 2


def test_behaviour_problem(home: tuple[Store, Path], gateway_cli: Any) -> None:
    _, root = home
    MODE["fine_tune_knows"] = True
    # The retrieval contender is scored, but on a set where passages do not help:
    # a corpus of unrelated text.
    unrelated = root / "unrelated"
    unrelated.mkdir()
    (unrelated / "notes.md").write_text("# Notes\n\nThe office plants are watered on Fridays.\n")
    result = gateway_cli("diagnose", str(root), "--base", "tiny", "--fine-tune", "bot@v1",
                         "--retrieve", "1", "--fewshot", "1", "--corpus", str(unrelated),
                         "--expect", "behaviour",
                         "-q", "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["verdict"] == "behaviour", out["sentence"]
    assert out["sentence"].startswith("behaviour problem: fine-tuning helps (+1.000")
    assert out["retrieval_recall"] == 0.0


def test_usage_errors_exit_2(home: tuple[Store, Path], gateway_cli: Any, tmp_path: Path) -> None:
    _, root = home
    base = ["diagnose", str(root), "--base", "tiny", "--fine-tune", "bot@v1", "-q", "--fewshot", "1"]
    for extra, problem in ((["--scorer", "nope"], "no per-sample scorer 'nope'"),
                           (["--expect", "maybe"], "Invalid value for '--expect'"),
                           (["--fewshot", "5"], "has only 1 usable examples")):
        result = gateway_cli(*base, *extra)
        assert result.exit_code == 2 and problem in result.output, result.output
    unknown = gateway_cli("diagnose", str(root), "--base", "tiny", "--fine-tune", "ghost@v9", "-q",
                          "--fewshot", "0")
    assert unknown.exit_code == 2 and "--fine-tune" in unknown.output
    no_corpus = write_set(tmp_path / "bare")
    (no_corpus / "evalset.yaml").write_text(
        (no_corpus / "evalset.yaml").read_text().replace("corpus: corpus\n", ""))
    result = gateway_cli("diagnose", str(no_corpus), "--base", "tiny", "--fine-tune", "bot@v1",
                         "--fewshot", "0")
    assert result.exit_code == 2 and "names no corpus" in result.output
