"""Eval set loading and validation, and prompt variants."""

from __future__ import annotations

import glob
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import GatewayError, NotFoundError, ValidationError
from gateway.evaluation.evalset import discover, load_evalset, shipped_evalsets_dir
from gateway.evaluation.prompts import display_name, parse_variant

DATA = Path(__file__).parent / "data" / "evalsets"


def test_load_by_path_and_name(gateway_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    es = load_evalset(DATA / "capitals")
    assert es.name == "capitals" and len(es.rows) == 8
    assert es.rows[0].id == "fr" and es.rows[0].ideal == "Paris"
    assert es.rows[0].metadata == {"continent": "europe"}
    assert es.cluster == "continent" and es.generation == {"max_tokens": 8, "temperature": 0}
    assert [(s.name, s.id, s.options) for s in es.scorers] == [("exact", "exact", {"normalize": True})]
    assert es.train_path == (DATA / "capitals" / "train.jsonl").resolve()
    assert len(es.sha256) == 64
    assert load_evalset(DATA / "capitals" / "evalset.yaml").sha256 == es.sha256

    monkeypatch.setenv("GATEWAY_EVALSETS_PATH", str(DATA))
    assert load_evalset("capitals").path == es.path
    # Found by the `name:` in its YAML too, whatever its folder is called.
    assert load_evalset("oaievals-capitals").path == (DATA / "oaievals" / "evalset.yaml").resolve()
    assert {"capitals", "oaievals-capitals", "broken"} <= set(discover())


def test_config_evalset_paths(gateway_home: Path) -> None:
    (gateway_home / "config.toml").write_text(f"evalset_paths = [{json.dumps(str(DATA))}]\n")
    assert load_evalset("capitals").name == "capitals"


def test_unknown_name_lists_known_sets(gateway_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_EVALSETS_PATH", str(DATA))
    with pytest.raises(NotFoundError, match=r"no eval set named 'nope'.*capitals"):
        load_evalset("nope")


def test_sha_changes_with_data(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    for name in ("evalset.yaml", "eval.jsonl", "train.jsonl"):
        (folder / name).write_bytes((DATA / "capitals" / name).read_bytes())
    before = load_evalset(folder).sha256
    with open(folder / "eval.jsonl", "a") as fh:
        fh.write(json.dumps({"id": "x", "messages": [{"role": "user", "content": "?"}], "ideal": "y"}) + "\n")
    assert load_evalset(folder).sha256 != before


def test_openai_evals_rows() -> None:
    es = load_evalset(DATA / "oaievals")
    assert [r.id for r in es.rows] == ["1", "2", "4"]  # line numbers; line 3 is blank
    assert es.rows[1].messages == [{"role": "user", "content": "What is the capital of Japan?"}]
    assert es.rows[1].ideal == ["Tokyo", "Tōkyō"]
    assert es.rows[0].messages[0]["role"] == "system"
    assert es.scorers[0].name == "exact"


def test_broken_rows_report_line_numbers() -> None:
    with pytest.raises(ValidationError) as info:
        load_evalset(DATA / "broken")
    lines = {line for line, _ in info.value.errors}
    assert lines == {2, 3, 4, 5}
    message = str(info.value)
    assert "line 2: invalid JSON" in message
    assert "line 3: a row needs 'messages'" in message
    assert "line 4: duplicate id 'a' (first on line 1)" in message
    assert "line 5: messages[0] has role 'robot'" in message


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        ("name: x\nscorers: [exact]\n", "needs a 'data' string"),
        ("name: x\ndata: missing.jsonl\nscorers: [exact]\n", "does not exist"),
        ("name: x\ndata: eval.jsonl\nscorers: []\n", "'scorers' must be a non-empty list"),
        ("name: x\ndata: eval.jsonl\nscorers: [exact, exact]\n", "id 'exact' is used twice"),
        ("name: x\ndata: eval.jsonl\ngeneration: {max_token: 3}\nscorers: [exact]\n", "unknown generation keys"),
        ("name: [x\n", "invalid YAML"),
    ],
)
def test_bad_yaml(tmp_path: Path, yaml_text: str, problem: str) -> None:
    (tmp_path / "eval.jsonl").write_text('{"id": 1, "messages": [{"role": "user", "content": "q"}]}\n')
    (tmp_path / "evalset.yaml").write_text(yaml_text)
    with pytest.raises(GatewayError, match=problem):
        load_evalset(tmp_path)


def test_fewshot_is_deterministic() -> None:
    es = load_evalset(DATA / "capitals")
    first = parse_variant("fewshot:3", es.train_path)
    again = parse_variant("fewshot:3", es.train_path)
    assert first.shots == again.shots and len(first.shots) == 3
    assert parse_variant("fewshot:3:7", es.train_path).shots != first.shots
    messages = first.apply(es.rows[0].messages)
    # system, three user/assistant pairs, then the row's question
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert messages[0] == es.rows[0].messages[0] and messages[-1] == es.rows[0].messages[-1]
    train_answers = {json.loads(line)["messages"][-1]["content"]
                     for line in es.train_path.read_text().splitlines()}  # type: ignore[union-attr]
    assert {m["content"] for m in messages[2:7:2]} <= train_answers
    assert first.fingerprint() == again.fingerprint()


def test_system_and_none_variants(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"role": "system", "content": "old"}, {"role": "user", "content": "q"}]
    assert parse_variant(None).apply(rows) == rows
    assert parse_variant("none").spec is None
    assert parse_variant("system:Be brief.").apply(rows) == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}]
    prompt = tmp_path / "sys.txt"
    prompt.write_text("From a file.\n")
    variant = parse_variant(f"system:@{prompt}")
    assert variant.apply(rows[1:])[0] == {"role": "system", "content": "From a file."}
    assert display_name("smollm2-135m", "fewshot:5") == "smollm2-135m [fewshot:5]"
    assert display_name("smollm2-135m", None) == "smollm2-135m"


@pytest.mark.parametrize(("spec", "problem"), [
    ("fewshot:x", "use fewshot:K"),
    ("fewshot:99", "only 6 usable examples"),
    ("shout:loud", "unknown prompt variant"),
    ("system:", "needs a text"),
])
def test_bad_variants(spec: str, problem: str) -> None:
    with pytest.raises(GatewayError, match=problem):
        parse_variant(spec, load_evalset(DATA / "capitals").train_path)


def test_fewshot_needs_a_train_file() -> None:
    with pytest.raises(GatewayError, match="needs an eval set with a 'train' file"):
        parse_variant("fewshot:2", None)


def test_cli_evalsets(gateway_home: Path, gateway_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_EVALSETS_PATH", str(DATA))
    listed = gateway_cli("evalsets", "list", "--format", "json")
    by_name = {r["name"]: r for r in json.loads(listed.output)}
    assert by_name["capitals"]["samples"] == 8
    assert by_name["broken"]["description"].startswith("INVALID")
    shown = json.loads(gateway_cli("evalsets", "show", "capitals", "--format", "json").output)
    assert shown["samples"] == 8 and len(shown["rows"]) == 3
    ok = gateway_cli("evalsets", "validate", str(DATA / "capitals"))
    assert ok.exit_code == 0 and ok.output.startswith("OK: capitals: 8 samples")
    from click.testing import CliRunner

    from gateway.cli import assemble

    bad = CliRunner().invoke(assemble(), ["evalsets", "validate", str(DATA / "broken")])
    assert bad.exit_code == 1 and "line 2: invalid JSON" in bad.output


def test_shipped_sets_load_by_name(gateway_home: Path, gateway_cli: Any,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_EVALSETS_PATH", raising=False)
    shipped = shipped_evalsets_dir()
    # A checkout finds the repo's folder; an installed wheel its gateway_evalsets copy.
    repo = Path(__file__).resolve().parent.parent / "evalsets"
    assert shipped is not None
    # Recursive, so nested files (policy-knowledge's corpus/) must ship too.
    shipped_files = sorted(p.relative_to(shipped).as_posix() for p in shipped.rglob("*.*")
                           if p.is_file() and "__pycache__" not in p.parts)
    repo_files = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*.*")
                        if p.is_file() and "__pycache__" not in p.parts)
    assert shipped_files == repo_files
    assert any(f.count("/") >= 2 for f in repo_files)
    names = discover([shipped])
    for name in names:
        assert load_evalset(name).path == names[name].resolve()
        result = gateway_cli("evalsets", "validate", name)
        assert result.exit_code == 0 and result.output.startswith(f"OK: {name}:")


def test_package_data_globs_reach_every_shipped_file() -> None:
    """The wheel's package-data globs (matched as setuptools does, recursively)
    cover every file of the shipped sets, including those in subfolders."""
    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["gateway_evalsets"]
    package = root / "plugins" / "gateway_evalsets"
    matched = {Path(hit).as_posix() for pattern in patterns
               for hit in glob.glob(pattern, root_dir=package, recursive=True)}
    files = {p.relative_to(package).as_posix() for p in package.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}
    assert any("/corpus/" in f for f in files)
    assert files - matched == set()
