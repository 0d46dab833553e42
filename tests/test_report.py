"""`gateway report`: one self-contained HTML file with its data embedded as JSON."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from test_compare import insert_run, use_test_evalsets

from gateway.store import Store


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gateway_home: Path,
          register_plugin: Any) -> Store:
    use_test_evalsets(tmp_path, monkeypatch, register_plugin)
    return Store(gateway_home / "gateway.duckdb")


class PageParser(HTMLParser):
    """Collects the embedded JSON, tag names and every src/href attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.data_blocks: list[str] = []
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        self.links += [v for k, v in attrs if k in ("src", "href") and v]
        self._in_data = tag == "script" and values.get("id") == "report-data"
        if tag == "script":
            assert values.get("type") == "application/json", "no executable scripts"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_data = False

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data_blocks.append(data)


def test_report_is_self_contained_and_embeds_its_data(
    store: Store, gateway_cli: Any, tmp_path: Path
) -> None:
    insert_run(store, "evalrun-base01", "smollm2-135m", "tickets", set(range(1, 7)),
               variant="fewshot:5")
    insert_run(store, "evalrun-tuned1", "ft:smollm2-135m:bot:ab12", "tickets", set(range(1, 12)))
    insert_run(store, "evalrun-worse1", "smollm2-135m", "tickets", {1, 2})
    with store.transaction() as con:  # an output that tries to close the script element
        con.execute("UPDATE eval_samples SET output = '</script><b>x' "
                    "WHERE run_id = 'evalrun-worse1' AND sample_id = 'q05'")

    out = tmp_path / "out" / "report.html"
    result = gateway_cli("report", "evalrun-base", "evalrun-tuned", "evalrun-worse1", "-o", str(out))
    assert result.exit_code == 0, result.output
    html = out.read_text()

    parser = PageParser()
    parser.feed(html)
    assert parser.links == []
    assert not re.search(r"https?://", html), "no references to anything on the network"
    assert "@import" not in html and "url(" not in html
    assert parser.tags.count("svg") >= 4  # the runs' swatches, a chart per scorer, latency
    assert len(parser.data_blocks) == 1
    data = json.loads(parser.data_blocks[0])

    assert [r["label"] for r in data["runs"]] == [
        "smollm2-135m [fewshot:5]", "ft:smollm2-135m:bot:ab12", "smollm2-135m"]
    base_exact = data["scores"]["evalrun-base01"]["exact"]["mean_ci"]
    assert base_exact["estimate"] == 0.5 and base_exact["low"] < 0.5 < base_exact["high"]
    assert data["scores"]["evalrun-tuned1"]["acc"]["corpus"] == 11 / 12
    assert data["latency"]["evalrun-base01"]["p50"] == 165.0

    better, worse = data["comparisons"]
    assert better["sentences"]["acc"].startswith(
        "ft:smollm2-135m:bot:ab12 is significantly better than smollm2-135m [fewshot:5] on acc: +0.417 (95% CI +")
    assert {s["scorer"]: s["verdict"] for s in worse["scorers"]}["exact"] == "worse"
    assert better["sentences"]["acc"] in html.replace("&#x27;", "'")

    # q03..q06 differ from the baseline in the worse run, q07..q11 in the tuned one.
    samples = {s["sample_id"]: s for s in data["samples"]}
    assert sorted(samples) == [f"q{i:02d}" for i in range(3, 12)]
    q05 = samples["q05"]
    assert q05["input"] == "Ticket 5: help" and q05["ideal"] == "login"
    assert q05["runs"]["evalrun-worse1"]["output"] == "</script><b>x"
    assert q05["runs"]["evalrun-worse1"]["scores"]["exact"]["passed"] is False
    assert "&lt;/script&gt;&lt;b&gt;x" in html  # escaped in the table too


def test_report_of_one_run_and_unknown_run(
    store: Store, gateway_cli: Any, tmp_path: Path
) -> None:
    insert_run(store, "evalrun-solo01", "base", "tickets", {1, 2, 3})
    out = tmp_path / "solo.html"
    assert gateway_cli("report", "evalrun-solo01", "-o", str(out)).exit_code == 0
    parser = PageParser()
    parser.feed(out.read_text())
    data = json.loads(parser.data_blocks[0])
    assert data["comparisons"] == [] and data["samples"] == []
    missing = gateway_cli("report", "evalrun-nope", "-o", str(tmp_path / "x.html"))
    assert missing.exit_code == 1 and "no eval run" in missing.output
    assert not (tmp_path / "x.html").exists()
