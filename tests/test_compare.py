"""compare_runs on runs stored in a real DuckDB store, the compare CLI (table, JSON,
JUnit) and the regress gate, end to end through the runner with throwaway backends."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from xml.etree import ElementTree as ET

import pytest

from gateway import hookimpl
from gateway.config import load_config
from gateway.contracts import (
    BackendContext,
    BaseBackend,
    ChatRequest,
    Generation,
    PerSampleEvaluator,
    Sample,
    Score,
    Usage,
)
from gateway.errors import GatewayError, NotFoundError
from gateway.evaluation import stats
from gateway.evaluation.compare import compare_runs, get_run
from gateway.evaluation.evalset import load_evalset
from gateway.evaluation.verdicts import regression_decision, verdict_sentence
from gateway.registry import BaseModel, add_base_model
from gateway.store import Store
from gateway.util import utcnow

LABELS = ["billing", "refund", "login"]


class TMatch(PerSampleEvaluator):
    """Pass when the output is the ideal label."""

    name: ClassVar[str] = "t_match"
    description: ClassVar[str] = "test: exact label match"
    corpus_level: ClassVar[bool] = False

    def score(self, sample: Sample) -> Score:
        ok = sample.output.strip() == sample.ideal
        return Score(float(ok), ok)


class TAccuracy(TMatch):
    """Corpus-level accuracy (per-sample correctness too)."""

    name: ClassVar[str] = "t_accuracy"
    corpus_level: ClassVar[bool] = True

    def score_corpus(self, samples: list[Sample]) -> Score:
        return Score(sum(s.output.strip() == s.ideal for s in samples) / max(len(samples), 1))


class EvaluatorsPlugin:
    @hookimpl
    def register_evaluators(self, register: Callable[[type], None]) -> None:
        register(TMatch)
        register(TAccuracy)


def write_evalset(root: Path, name: str = "tickets", cluster: bool = True, rows: int = 12) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    with open(folder / "eval.jsonl", "w") as fh:
        for i in range(1, rows + 1):
            row = {"id": f"q{i:02d}", "messages": [{"role": "user", "content": f"Ticket {i}: help"}],
                   "ideal": LABELS[i % 3], "metadata": {"customer": f"c{i % 4}"}}
            fh.write(json.dumps(row) + "\n")
    (folder / "evalset.yaml").write_text(
        f"name: {name}\ndata: eval.jsonl\n" + ("cluster: customer\n" if cluster else "")
        + "generation: {max_tokens: 4, temperature: 0}\n"
        + "scorers:\n  - name: t_match\n    id: exact\n  - name: t_accuracy\n    id: acc\n"
    )
    return folder


def insert_run(store: Store, run_id: str, model: str, evalset: str, right: set[int],
               rows: int = 12, variant: str | None = None, status: str = "completed",
               skip: set[int] | None = None) -> None:
    """A run that answers row i correctly when i is in `right`, stored as the runner would."""
    try:
        sha = load_evalset(evalset).sha256
    except GatewayError:
        sha = "unknown"
    samples, scores = [], []
    correct = 0
    ids = [i for i in range(1, rows + 1) if i not in (skip or set())]
    for i in ids:
        sid, ideal = f"q{i:02d}", LABELS[i % 3]
        output = ideal if i in right else "no idea"
        samples.append([run_id, sid, output, 100.0 + 10 * i, 20, 2, None, None, False, utcnow()])
        ok = i in right
        correct += ok
        scores += [[run_id, sid, "exact", float(ok), ok, ""], [run_id, sid, "acc", float(ok), ok, ""]]
    scores.append([run_id, "*", "acc", correct / len(ids), None, ""])
    with store.transaction() as con:
        con.execute(
            """INSERT INTO eval_runs (id, evalset, evalset_sha256, model, prompt_variant, status,
               sample_count, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            [run_id, evalset, sha, model, variant, status, len(ids), utcnow()],
        )
        con.executemany("INSERT INTO eval_samples (run_id, sample_id, output, latency_ms, prompt_tokens, "
                        "completion_tokens, cost, error, cached, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", samples)
        con.executemany("INSERT INTO eval_scores VALUES (?, ?, ?, ?, ?, ?)", scores)


def use_test_evalsets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, register_plugin: Any) -> Path:
    """Sets "tickets" (clustered by customer) and "flat", and their evaluators."""
    root = tmp_path / "sets"
    write_evalset(root)
    write_evalset(root, "flat", cluster=False)
    monkeypatch.setenv("GATEWAY_EVALSETS_PATH", str(root))
    register_plugin(EvaluatorsPlugin(), "test-evaluators")
    return root


@pytest.fixture
def evalsets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gateway_home: Path,
             register_plugin: Any) -> Path:
    return use_test_evalsets(tmp_path, monkeypatch, register_plugin)


@pytest.fixture
def store(gateway_home: Path) -> Store:
    return Store(gateway_home / "gateway.duckdb")


def test_paired_clustered_mcnemar_and_bootstrap(evalsets: Path, store: Store) -> None:
    insert_run(store, "evalrun-aaa111", "base", "tickets", set(range(1, 7)), variant="fewshot:5")
    insert_run(store, "evalrun-bbb222", "ft:base:bot:1234", "tickets", set(range(1, 12)))
    c = compare_runs(store, "evalrun-aaa111", "evalrun-bbb222", bootstrap_resamples=400)
    assert c.run_a.label == "base [fewshot:5]"
    assert (c.shared, c.only_a, c.only_b) == (12, 0, 0)
    assert c.clustered_by == "customer" and c.notes == []

    exact = c.scorer("exact")
    assert exact.kind == "pass_fail"
    assert exact.a is not None and exact.b is not None and exact.diff is not None
    assert exact.a.estimate == pytest.approx(0.5) and exact.b.estimate == pytest.approx(11 / 12)
    assert exact.diff.estimate == pytest.approx(5 / 12)
    assert (exact.wins, exact.ties, exact.losses) == (5, 7, 0)
    # McNemar: 5 discordant pairs, all for B: p = 2 / 2^5.
    assert (exact.a_only, exact.b_only) == (0, 5)
    assert exact.mcnemar_p == pytest.approx(0.0625)
    # The SQL cluster-robust interval equals the pure-Python one on the same diffs.
    diffs = [float(6 < i < 12) for i in range(1, 13)]
    expected = stats.cluster_robust(diffs, [f"c{i % 4}" for i in range(1, 13)])
    assert exact.diff.method == "cluster-robust" and exact.diff.clusters == 4
    assert exact.diff.se == pytest.approx(expected.se)
    assert exact.diff.low == pytest.approx(expected.low)

    acc = c.scorer("acc")
    assert acc.kind == "corpus"
    assert (acc.corpus_a, acc.corpus_b) == (pytest.approx(0.5), pytest.approx(11 / 12))
    assert acc.bootstrap is not None and acc.bootstrap.diff == pytest.approx(5 / 12)
    assert acc.bootstrap.low > 0 and acc.verdict() == "better"
    again = compare_runs(store, "evalrun-aaa111", "evalrun-bbb222", bootstrap_resamples=400)
    assert again.scorer("acc").bootstrap == acc.bootstrap  # seeded
    sentence = verdict_sentence(c, acc)
    assert sentence.startswith("ft:base:bot:1234 is significantly better than base [fewshot:5] on acc: +0.417")
    assert regression_decision(c).passed
    reverse = compare_runs(store, "evalrun-bbb222", "evalrun-aaa111", bootstrap_resamples=400)
    decision = regression_decision(reverse)
    assert not decision.passed and "acc" in decision.failing
    # A tolerance wider than the whole interval lets the drop through.
    assert regression_decision(reverse, max_drop=0.99).passed


def test_sql_statistics_match_python_unclustered(evalsets: Path, store: Store) -> None:
    rng = random.Random(3)
    values = {run: [rng.random() for _ in range(12)] for run in ("evalrun-s1", "evalrun-s2")}
    insert_run(store, "evalrun-s1", "base", "flat", set())
    insert_run(store, "evalrun-s2", "other", "flat", set())
    with store.transaction() as con:
        for run, vals in values.items():
            con.executemany("INSERT INTO eval_scores VALUES (?, ?, 'sim', ?, NULL, '')",
                            [[run, f"q{i + 1:02d}", v] for i, v in enumerate(vals)])
    sim = compare_runs(store, "evalrun-s1", "evalrun-s2").scorer("sim")
    a, b = values["evalrun-s1"], values["evalrun-s2"]
    expected = stats.paired_diff(a, b)
    assert sim.kind == "score" and sim.mcnemar_p is None
    assert sim.diff is not None and sim.diff.method == "paired-t"
    assert sim.diff.estimate == pytest.approx(expected.estimate)
    assert sim.diff.low == pytest.approx(expected.low) and sim.diff.high == pytest.approx(expected.high)
    assert sim.a is not None and sim.a.low == pytest.approx(stats.mean_ci(a).low)
    assert (sim.wins, sim.ties, sim.losses) == stats.win_tie_loss(a, b)


def test_unloadable_set_unshared_samples_and_usage(evalsets: Path, store: Store) -> None:
    insert_run(store, "evalrun-g1", "base", "gone", {1, 2, 3}, status="failed")
    insert_run(store, "evalrun-g2", "other", "gone", {1, 2, 3, 4}, skip={12})
    c = compare_runs(store, "evalrun-g1", "evalrun-g2")
    notes = " ".join(c.notes)
    assert "could not be loaded" in notes and "not bootstrapped" in notes
    assert "run evalrun-g1 is failed" in notes
    assert "1 samples only in A and 0 only in B" in notes
    assert (c.shared, c.only_a) == (11, 1)
    assert c.clustered_by is None and c.scorer("exact").diff is not None
    assert c.scorer("exact").diff.method == "paired-t"  # type: ignore[union-attr]
    assert c.scorer("acc").bootstrap is None
    # A pass rate gets a Wilson interval: 3 of 11 shared samples.
    wilson = c.scorer("exact").a
    assert wilson is not None and wilson.method == "wilson"
    assert wilson.low == pytest.approx(stats.wilson_interval(3, 11).low)
    assert c.usage_a.samples == 12 and c.usage_b.samples == 11
    # latencies 110, 120, ..., 220 ms: p50 = (160+170)/2 = 165; p95 at 11·0.95 = 10.45 -> 214.5
    assert c.usage_a.latency_p50_ms == pytest.approx(165.0)
    assert c.usage_a.latency_p95_ms == pytest.approx(214.5)
    assert c.usage_a.prompt_tokens_mean == 20 and c.usage_a.completion_tokens_mean == 2
    json.dumps(c.as_dict())  # valid JSON: no NaN


def test_diffs_and_run_prefixes(evalsets: Path, store: Store) -> None:
    insert_run(store, "evalrun-abc1", "base", "tickets", {1, 2})
    insert_run(store, "evalrun-abc2", "other", "tickets", {2, 3})
    c = compare_runs(store, "evalrun-abc1", "evalrun-abc2", diffs=True)
    assert c.diffs is not None
    assert sorted({(d["sample_id"], d["scorer"]) for d in c.diffs}) == [
        ("q01", "acc"), ("q01", "exact"), ("q03", "acc"), ("q03", "exact")]
    first = next(d for d in c.diffs if d["sample_id"] == "q01")
    assert (first["a_passed"], first["b_passed"]) == (True, False)
    assert (first["a_output"], first["b_output"]) == ("refund", "no idea")
    assert compare_runs(store, "evalrun-abc1", "evalrun-abc2").diffs is None
    assert get_run(store, "evalrun-abc2").model == "other"
    assert get_run(store, "evalrun-abc1").id == "evalrun-abc1"
    with pytest.raises(GatewayError, match="matches several"):
        get_run(store, "evalrun-abc")
    with pytest.raises(NotFoundError):
        get_run(store, "evalrun-zzz")


def test_compare_cli_formats(evalsets: Path, store: Store, gateway_cli: Any) -> None:
    insert_run(store, "evalrun-aaa111", "base", "tickets", set(range(1, 7)), variant="fewshot:5")
    insert_run(store, "evalrun-bbb222", "tuned", "tickets", set(range(1, 12)))
    table = gateway_cli("compare", "evalrun-aaa", "evalrun-bbb", "--diffs")
    assert table.exit_code == 0, table.output
    assert "base [fewshot:5]" in table.output and "clustered by customer" in table.output
    assert "McNemar p=0.0625" in table.output and "tuned is significantly better" in table.output
    assert "Samples whose outcome differs" in table.output and "q07" in table.output

    data = json.loads(gateway_cli("compare", "evalrun-aaa", "evalrun-bbb", "--format", "json").output)
    assert data["run_b"]["label"] == "tuned" and data["decision"]["passed"] is True
    assert {s["scorer"]: s["verdict"] for s in data["scorers"]}["acc"] == "better"

    ok = ET.fromstring(gateway_cli("compare", "evalrun-aaa", "evalrun-bbb", "--format", "junit").output)
    suite = ok.find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    assert sorted(tc.get("name") or "" for tc in suite.iter("testcase")) == ["acc", "exact"]
    bad = ET.fromstring(gateway_cli("compare", "evalrun-bbb", "evalrun-aaa", "--format", "junit").output)
    failed = {tc.get("name"): tc.find("failure") for tc in bad.iter("testcase")}
    assert failed["acc"] is not None and "significantly worse" in (failed["acc"].get("message") or "")
    missing = gateway_cli("compare", "evalrun-nope", "evalrun-bbb")
    assert missing.exit_code == 1 and "Error: no eval run 'evalrun-nope'" in missing.output


# ---------------------------------------------------------------- regress, end to end


class AnswerBackend(BaseBackend):
    """Answers the ideal label (settings["right"]) or always "no idea"."""

    name: ClassVar[str] = "t_answers"
    description: ClassVar[str] = "test backend"

    def __init__(self, settings: dict[str, Any], context: BackendContext) -> None:
        super().__init__(settings, context)
        self.right = bool(settings.get("right"))

    async def chat(self, request: ChatRequest) -> Generation:
        number = int(str(request.messages[-1]["content"]).split()[1].rstrip(":"))
        text = LABELS[number % 3] if self.right or number % 2 else "no idea"
        return Generation(text=text, usage=Usage(10, 1))


class BackendPlugin:
    @hookimpl
    def register_backends(self, register: Callable[[type], None]) -> None:
        register(AnswerBackend)


@pytest.fixture
def answer_models(evalsets: Path, gateway_home: Path, register_plugin: Any, store: Store) -> None:
    register_plugin(BackendPlugin(), "test-answers")
    (gateway_home / "config.toml").write_text(
        '[backends.good]\nbackend = "t_answers"\nright = true\n'
        '[backends.bad]\nbackend = "t_answers"\nright = false\n'
    )
    for name in ("good", "bad"):
        add_base_model(store, BaseModel(name=name, source="builtin"))


def test_regress_passes_for_a_model_against_itself(answer_models: None, gateway_cli: Any) -> None:
    result = gateway_cli("regress", "tickets", "--baseline", "good", "--candidate", "good")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "no significant difference between good and good" in result.output


def test_regress_fails_when_the_candidate_answers_wrongly(answer_models: None, gateway_cli: Any) -> None:
    result = gateway_cli("regress", "tickets", "--baseline", "good", "--candidate", "bad")
    assert result.exit_code == 1, result.output
    assert "FAIL: regression on" in result.output
    assert "bad is significantly worse than good on acc" in result.output
    junit = gateway_cli("regress", "tickets", "--baseline", "good", "--candidate", "bad",
                        "--format", "junit")
    assert junit.exit_code == 1
    root = ET.fromstring(junit.output)
    assert any(tc.find("failure") is not None for tc in root.iter("testcase"))
    # Half the answers are wrong (−0.5): a tolerance of 0.9 lets it pass.
    lenient = gateway_cli("regress", "tickets", "--baseline", "good", "--candidate", "bad",
                          "--max-drop", "0.9", "--format", "json")
    assert lenient.exit_code == 0
    assert json.loads(lenient.output)["decision"]["passed"] is True


def test_regress_and_compare_keep_an_evalset_given_as_a_folder(
    answer_models: None, evalsets: Path, gateway_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not findable by name any more: only the folder path leads to it.
    monkeypatch.delenv("GATEWAY_EVALSETS_PATH")
    folder = str(evalsets / "tickets")
    result = gateway_cli("regress", folder, "--baseline", "good", "--candidate", "bad",
                         "--format", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert "could not be loaded" not in result.output
    runs = Store(load_config().db_path).query("SELECT id FROM eval_runs ORDER BY created")
    compared = gateway_cli("compare", runs[0]["id"], runs[1]["id"])
    assert compared.exit_code == 0, compared.output
    assert "clustered by customer" in compared.output
    assert "could not be loaded" not in compared.output and report["decision"]["passed"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchset", "--baseline", "good", "--candidate", "bad"], "no eval set named 'nosuchset'"),
        (["tickets", "--baseline", "good", "--candidate", "ghost"], "--candidate: the model 'ghost'"),
        (["tickets", "--baseline", "good", "--candidate", "bad", "--candidate-prompt", "zzz"],
         "unknown prompt variant"),
        (["tickets", "--baseline", "good"], "Missing option '--candidate'"),
        (["tickets", "--baseline", "good", "--candidate", "bad", "--max-drop", "-1"], "--max-drop"),
    ],
)
def test_regress_usage_errors_exit_2(answer_models: None, gateway_cli: Any, args: list[str],
                                     message: str) -> None:
    from click.testing import CliRunner

    from gateway.cli import assemble

    result = CliRunner().invoke(assemble(), ["regress", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
