"""Chat-JSONL validation: every error with its line, statistics, and `gateway data validate`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway import hookimpl
from gateway.data import DataReport, iter_examples, summarize, validate_chat_file
from gateway.errors import GatewayError, ValidationError
from gateway.util import sha256_file


def example(question: str, answer: str, **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        **extra,
    }


def write_lines(path: Path, lines: Sequence[str | dict[str, Any]]) -> Path:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8"
    )
    return path


def good_lines(n: int) -> list[str | dict[str, Any]]:
    return [example(f"What is {i} + {i}?", str(2 * i)) for i in range(n)]


@pytest.fixture
def broken_file(tmp_path: Path) -> Path:
    lines = good_lines(14)
    lines[2] = '{"messages": [{"role": "user", "content": "hi"}'  # line 3: broken JSON
    lines[3] = ""  # line 4: blank lines are skipped
    lines[4] = {"messages": [{"role": "user", "content": "no answer"}]}  # line 5
    lines[5] = {  # line 6
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "tool", "content": "sunny"},
            {"role": "assistant", "content": "Sunny."},
        ]
    }
    lines[6] = {  # line 7
        "messages": [
            {"role": "user", "content": "hi", "weight": 1},
            {"role": "assistant", "content": "hello", "weight": 0.5},
        ]
    }
    lines[7] = {"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "ok"}]}
    lines[8] = "[1, 2]"  # line 9: not an object
    lines[9] = {"messages": [{"role": "bot", "content": "?"}, {"role": "assistant", "content": "!"}]}
    lines[10] = {"prompt": "old format", "completion": "no"}  # line 11
    lines[11] = lines[0]  # line 12: a duplicate is a warning, not an error
    return write_lines(tmp_path / "broken.jsonl", lines)


def test_every_error_with_its_line(broken_file: Path) -> None:
    report = validate_chat_file(broken_file)
    assert report.errors == [
        (3, "invalid JSON: Expecting ',' delimiter (column 48)"),
        (5, "no assistant message: an example needs at least one to learn from"),
        (6, "messages[1]: a tool message needs the 'tool_call_id' it answers"),
        (7, "messages[0]: weight is only allowed on assistant messages"),
        (7, "messages[1]: weight must be 0 or 1, got 0.5"),
        (8, "messages[0]: content must be a string, got int"),
        (9, "expected a JSON object, got list"),
        (10, "messages[0]: role 'bot' is not one of system, user, assistant, tool"),
        (11, "missing the 'messages' list"),
    ]
    assert report.warnings == [(12, "duplicate of line 1")]
    assert report.examples == 13  # 14 lines, one blank
    assert not report.ok
    assert report.sha256 == sha256_file(broken_file)
    assert report.token_stats is None and report.too_long == []
    # Character statistics cover the valid examples only (lines 1, 2, 12, 13, 14).
    assert report.char_stats is not None and report.char_stats["total"] > 0


def test_valid_file_and_weights(tmp_path: Path) -> None:
    lines = good_lines(10)
    lines[0] = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "draft", "weight": 0},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": "final", "weight": 1},
        ]
    }
    report = validate_chat_file(write_lines(tmp_path / "ok.jsonl", lines))
    assert report.ok and report.errors == [] and report.warnings == []
    assert report.examples == 10


def test_too_few_examples_and_empty_file(tmp_path: Path) -> None:
    report = validate_chat_file(write_lines(tmp_path / "few.jsonl", good_lines(3)))
    assert report.errors == [(None, "the file has 3 examples; at least 10 are required")]
    assert validate_chat_file(tmp_path / "few.jsonl", min_examples=3).ok
    (tmp_path / "empty.jsonl").write_text("\n\n")
    assert validate_chat_file(tmp_path / "empty.jsonl").errors == [(None, "the file has no examples")]
    with pytest.raises(GatewayError, match="training file not found"):
        validate_chat_file(tmp_path / "missing.jsonl")


WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def tool_example(arguments: str = '{"city": "Oslo"}', **changes: Any) -> dict[str, Any]:
    """An example that calls a tool, reads its answer and replies (OpenAI's fine-tuning shape)."""
    example: dict[str, Any] = {
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "3 degrees"},
            {"role": "assistant", "content": "It is 3 degrees in Oslo."},
        ],
        "tools": [WEATHER_TOOL],
    }
    example.update(changes)
    return example


def test_tool_calling_examples_are_checked_as_openai_does(tmp_path: Path) -> None:
    good = tool_example()
    two_calls = tool_example(parallel_tool_calls=False)
    two_calls["messages"][1]["tool_calls"] *= 2
    unknown = tool_example()
    unknown["messages"][1]["tool_calls"][0]["function"]["name"] = "get_time"
    orphan = tool_example()
    orphan["messages"][2]["tool_call_id"] = "call_9"
    lines: list[Any] = [
        good,                                                   # 1: fine
        tool_example(arguments='{"city": '),                    # 2: arguments not JSON
        tool_example(arguments='["Oslo"]'),                     # 3: arguments not an object
        {**tool_example(), "tools": []},                        # 4: empty tools
        {"messages": tool_example()["messages"]},               # 5: calls, but no tools
        two_calls,                                              # 6: two calls, parallel off
        unknown,                                                # 7: a function not in tools
        orphan,                                                 # 8: a result of no call
        {**tool_example(), "functions": [{"name": "f"}]},       # 9: the deprecated form
        {"messages": [{"role": "user", "content": "x"},         # 10: tool_calls on a user turn
                      {"role": "user", "content": "y", "tool_calls": []},
                      {"role": "assistant", "content": "z"}], "tools": [WEATHER_TOOL]},
    ]
    path = write_lines(tmp_path / "tools.jsonl", lines)
    path.write_bytes(path.read_bytes() + b'{"messages": "\xff"}\n')
    report = validate_chat_file(path, min_examples=1)
    assert report.errors == [
        (2, "messages[1].tool_calls[0].function.arguments: not valid JSON (Expecting value)"),
        (3, "messages[1].tool_calls[0].function.arguments: expected a JSON object"),
        (4, "'tools' must be a non-empty list of function definitions"),
        (5, "messages[1].tool_calls: the example has no 'tools' to call"),
        (6, "messages[1].tool_calls: 2 calls, but parallel_tool_calls is false"),
        (7, "messages[1].tool_calls[0].function.name: 'get_time' is not one of the example's tools"),
        (8, "messages[2]: tool_call_id 'call_9' answers no earlier tool call"),
        (9, "'functions' is deprecated; give function definitions as 'tools'"),
        (10, "messages[1]: only assistant messages carry 'tool_calls'"),
        (11, "not valid UTF-8 (invalid start byte at byte 14)"),
    ]
    assert report.warnings == []


def test_iter_examples(broken_file: Path, tmp_path: Path) -> None:
    good = write_lines(tmp_path / "good.jsonl", ["", *good_lines(2)])
    assert [n for n, _ in iter_examples(good)] == [2, 3]
    with pytest.raises(ValidationError) as info:
        list(iter_examples(broken_file))
    assert info.value.errors == [(3, "invalid JSON: Expecting ',' delimiter (column 48)")]
    assert "line 3" in str(info.value)


def test_summarize() -> None:
    assert summarize([]) is None
    stats = summarize(list(range(1, 101)))
    assert stats == {"total": 5050.0, "min": 1.0, "mean": 50.5, "p50": 50.0, "p95": 95.0, "max": 100.0}


def test_token_stats_with_the_real_tokenizer(tmp_path: Path, tiny_model_dir: Path) -> None:
    from gateway_local.models import load_counter
    from transformers import AutoTokenizer

    lines = good_lines(12)
    lines[5] = example("Tell me a long story. " * 40, "Once upon a time. " * 40)
    path = write_lines(tmp_path / "train.jsonl", lines)
    counter = load_counter(str(tiny_model_dir))
    assert counter.context_length == 2048

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    expected = [
        len(tok.apply_chat_template(ex["messages"], tokenize=True, return_dict=False))
        for _, ex in iter_examples(path)
    ]
    report = validate_chat_file(path, counter, max_tokens=200)
    assert report.ok
    assert report.token_stats is not None
    assert report.token_stats["total"] == sum(expected)
    assert report.token_stats["max"] == max(expected) > 200
    assert report.too_long == [6]
    assert report.warnings == [(6, f"{max(expected)} tokens, longer than the limit of 200; training truncates it")]
    # Without an explicit limit the model's context applies.
    assert validate_chat_file(path, counter).too_long == []


class WordCounter:
    """A throwaway tokenizer: one token per whitespace-separated word."""

    context_length = 9

    def count(self, messages: Sequence[dict[str, Any]]) -> int:
        return sum(len(m["content"].split()) for m in messages)


class WordCounterPlugin:
    def __init__(self) -> None:
        self.paths: list[str] = []

    @hookimpl(tryfirst=True)
    def load_token_counter(self, model_path: str) -> WordCounter:
        self.paths.append(model_path)
        return WordCounter()


def test_cli_validate_reports_errors(gateway_home: Path, gateway_cli: Any, broken_file: Path) -> None:
    result = gateway_cli("data", "validate", str(broken_file))
    assert result.exit_code == 1
    out = result.output
    assert f"{broken_file}: 13 examples" in out
    assert "line 3: invalid JSON: Expecting ',' delimiter (column 48)" in out
    assert "line 7: messages[1]: weight must be 0 or 1, got 0.5" in out
    assert "line 11: missing the 'messages' list" in out
    assert "line 12: duplicate of line 1" in out
    assert "Error: " in out and "has 9 errors" in out

    as_json = gateway_cli("data", "validate", str(broken_file), "--format", "json")
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout[: as_json.stdout.rindex("}") + 1])
    assert data["ok"] is False and data["examples"] == 13
    assert [e["line"] for e in data["errors"]] == [3, 5, 6, 7, 7, 8, 9, 10, 11]
    # The old flag still works, with a note on stderr.
    legacy = gateway_cli("data", "validate", str(broken_file), "--json")
    assert legacy.exit_code == 1
    assert json.loads(legacy.stdout[: legacy.stdout.rindex("}") + 1]) == data
    assert "--json is deprecated; use --format json" in legacy.stderr


def test_cli_validate_with_base_uses_the_token_counter_hook(
    gateway_home: Path, gateway_cli: Any, register_plugin: Any, tmp_path: Path
) -> None:
    model_dir = tmp_path / "fake-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    assert gateway_cli("models", "add", "--path", str(model_dir), "--name", "fake").exit_code == 0
    plugin = WordCounterPlugin()
    register_plugin(plugin, "word-counter")
    lines = good_lines(10)
    lines[3] = example("one two three four five", "six seven")
    result = gateway_cli("data", "validate", str(write_lines(tmp_path / "t.jsonl", lines)), "--base", "fake")
    assert result.exit_code == 0, result.output
    assert plugin.paths == [str(model_dir.resolve())]
    assert "tokens with fake (limit 9): total 91" in result.output
    assert "1 example exceeds 9 tokens: lines 4" in result.output
    assert "OK: the file is valid" in result.output


def test_cli_validate_unknown_base(gateway_home: Path, gateway_cli: Any, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", good_lines(10))
    result = gateway_cli("data", "validate", str(path), "--base", "nope")
    assert result.exit_code == 1
    assert "unknown base model 'nope'. Known base models: none yet" in result.output


def test_cli_validate_real_tokenizer(
    gateway_home: Path, gateway_cli: Any, tmp_path: Path, tiny_model_dir: Path
) -> None:
    gateway_cli("models", "add", "--path", str(tiny_model_dir), "--name", "tiny")
    path = write_lines(tmp_path / "t.jsonl", good_lines(10))
    result = gateway_cli("data", "validate", str(path), "--base", "tiny")
    assert result.exit_code == 0, result.output
    assert "tokens with tiny (limit 2048): total" in result.output


def test_report_dict_roundtrip(tmp_path: Path) -> None:
    report = validate_chat_file(write_lines(tmp_path / "t.jsonl", good_lines(10)))
    assert isinstance(report, DataReport)
    data = report.as_dict()
    assert json.loads(json.dumps(data))["char_stats"]["total"] == report.char_stats["total"]  # type: ignore[index]
