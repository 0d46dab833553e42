"""`gateway data check` on files with planted duplicates, conflicts, imbalance and contamination."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_data import write_lines

from gateway.data_check import check_file, jaccard, normalise, shingles
from gateway.evaluation.evalset import load_evalset

SYSTEM = {"role": "system", "content": "Route the ticket to one queue: billing, refund or shipping. " * 5}


def ticket(text: str, label: str, system: bool = True) -> dict[str, Any]:
    return {"messages": [*([SYSTEM] if system else []), {"role": "user", "content": text},
                         {"role": "assistant", "content": label}]}


TICKETS = [
    ("I was charged twice for the March invoice, please explain", "billing"),
    ("My parcel has not arrived after ten days of waiting", "shipping"),
    ("Please send my money back for the broken kettle I returned", "refund"),
    ("The courier left the box at the wrong address on Elm Street", "shipping"),
    ("Why does my receipt show a different price than the website", "billing"),
    ("Tracking says delivered but nothing is at my door today", "shipping"),
    ("I would like a refund for the order I cancelled last week", "refund"),
    ("Can you change the card you charge every month for my plan", "billing"),
]


def planted(tmp_path: Path) -> Path:
    lines: list[Any] = [ticket(text, label) for text, label in TICKETS]       # lines 1-8
    lines.append(ticket(*TICKETS[1]))                                          # 9: exact duplicate of 2
    lines.append(ticket("My parcel still has not arrived after ten days of waiting!", "shipping",
                        system=False))                                         # 10: near duplicate of 2
    lines.append(ticket(TICKETS[0][0], "refund"))                              # 11: conflicts with 1
    lines.append(ticket("Where is the invoice for the premium plan I bought", "billing"))  # 12
    lines.append(ticket("The screen of my new thermostat flickers at night", "billing"))   # 13: contaminated
    lines.append(ticket("My thermostat screen flickers every night since Monday", "billing"))  # 14: near
    return write_lines(tmp_path / "train.jsonl", lines)


def write_evalset(folder: Path) -> Path:
    folder.mkdir()
    rows = [{"id": "ev-1", "messages": [SYSTEM, {"role": "user", "content":
             "The screen of my new thermostat flickers at night"}], "ideal": "bug"},
            {"id": "ev-2", "messages": [SYSTEM, {"role": "user", "content":
             "My thermostat screen flickers every night since Monday morning"}], "ideal": "bug"},
            {"id": "ev-3", "messages": [SYSTEM, {"role": "user", "content":
             "A completely different question about gift cards"}], "ideal": "billing"}]
    (folder / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # A scorer that needs no reference: answers must be one of three labels.
    (folder / "evalset.yaml").write_text(
        "name: tickets\ndescription: planted\ndata: eval.jsonl\n"
        "scorers:\n  - name: classification\n    options: {labels: [billing, refund, shipping]}\n"
        "  - name: json\n    id: as-json\n")
    return folder


def test_similarity_is_the_jaccard_of_character_5_grams() -> None:
    a, b = shingles("abcdef"), shingles("abcdeg")
    assert a == {"abcde", "bcdef"} and jaccard(a, b) == pytest.approx(1 / 3)
    assert jaccard(shingles("hi"), shingles("hi")) == 1.0
    assert normalise("  Hello,   WORLD!! ") == "hello world"


def test_planted_problems_are_found_with_their_lines(tmp_path: Path) -> None:
    report = check_file(planted(tmp_path))
    found = {(f.kind, tuple(f.lines)) for f in report.findings}
    assert ("duplicate", (2, 9)) in found
    assert ("near-duplicate", (2, 10)) in found
    assert ("conflict", (1, 11)) in found
    # The shared system prompt alone does not make examples alike.
    assert not any(f.kind == "near-duplicate" and 10 not in f.lines for f in report.findings), found
    assert report.labels == {"billing": 6, "shipping": 5, "refund": 3} and not report.ok
    assert [f.kind for f in report.findings if f.error] == ["conflict"]


def test_contamination_and_scorer_failures_against_an_eval_set(tmp_path: Path) -> None:
    evalset = load_evalset(write_evalset(tmp_path / "tickets"))
    report = check_file(planted(tmp_path), evalset)
    contaminated = [f for f in report.findings if f.kind == "contamination"]
    assert [f.lines for f in contaminated] == [[13], [14]]
    assert "eval row 'ev-1' of tickets" in contaminated[0].message
    assert "alike eval row 'ev-2'" in contaminated[1].message and all(f.error for f in contaminated)
    # "billing" is a label but not JSON: every answer fails the json scorer, a warning each.
    failures = [f for f in report.findings if f.kind == "scorer"]
    assert len(failures) == 14 and all("scorer as-json" in f.message for f in failures)
    assert not any(f.error for f in failures)


def test_the_cli_exits_1_on_conflicts_or_contamination_and_0_with_warnings(
        tmp_path: Path, gateway_cli: Any) -> None:
    evalset = write_evalset(tmp_path / "tickets")
    bad = gateway_cli("data", "check", str(planted(tmp_path)), "--evalset", str(evalset))
    assert bad.exit_code == 1
    assert "[conflict] lines 1, 11 have the same input and 2 different answers" in bad.output
    assert "[contamination] line 13's input is eval row 'ev-1' of tickets" in bad.output
    clean = write_lines(tmp_path / "clean.jsonl", [ticket(t, label) for t, label in TICKETS])
    good = gateway_cli("data", "check", str(clean), "--format", "json")
    assert good.exit_code == 0, good.output
    data = json.loads(good.output)
    assert data["ok"] and data["examples"] == 8 and data["findings"] == []


def test_a_rare_label_is_a_warning(tmp_path: Path) -> None:
    lines = [ticket(f"Question number {i} about my invoice and its total", "billing") for i in range(20)]
    lines.append(ticket("Send my money back for the broken kettle", "refund"))
    report = check_file(write_lines(tmp_path / "skewed.jsonl", lines), near=0.99)
    assert report.ok and report.labels == {"billing": 20, "refund": 1}
    rare = [f for f in report.findings if f.kind == "label-balance"]
    assert len(rare) == 1 and rare[0].lines == [21] and "against 20 for the commonest" in rare[0].message
