"""Tool calling in chat fine-tuning files, checked as OpenAI's fine-tuning does.

An example may carry `tools` (function definitions) and `parallel_tool_calls`.
Its assistant messages may hold `tool_calls` instead of content, each naming a
function of the example's `tools`, with `arguments` as JSON text of an object;
a `role: "tool"` message answers an earlier call by its `tool_call_id`.
The deprecated `functions` / `function_call` forms are refused with a pointer
to `tools`.
"""

from __future__ import annotations

import json
import re
from typing import Any

FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def tools_problems(example: dict[str, Any]) -> tuple[list[str], set[str]]:
    """Errors in the example's `tools`, and the function names it defines."""
    if "functions" in example:
        return ["'functions' is deprecated; give function definitions as 'tools'"], set()
    if "parallel_tool_calls" in example and not isinstance(example["parallel_tool_calls"], bool):
        return ["'parallel_tool_calls' must be true or false"], set()
    if "tools" not in example:
        return [], set()
    tools = example["tools"]
    if not isinstance(tools, list) or not tools:
        return ["'tools' must be a non-empty list of function definitions"], set()
    errors: list[str] = []
    names: set[str] = set()
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            errors.append(f'{where}: expected {{"type": "function", "function": {{"name": ...}}}}')
            continue
        name = function.get("name")
        if not isinstance(name, str) or not FUNCTION_NAME.match(name):
            errors.append(f"{where}.function.name: expected 1 to 64 letters, digits, _ or -")
        elif name in names:
            errors.append(f"{where}.function.name: {name!r} is defined twice")
        else:
            names.add(name)
        if "parameters" in function and not isinstance(function["parameters"], dict):
            errors.append(f"{where}.function.parameters: expected a JSON schema object")
        if "description" in function and not isinstance(function["description"], str):
            errors.append(f"{where}.function.description: expected a string")
    return errors, names


def calls_problems(where: str, calls: Any, names: set[str] | None, has_tools: bool,
                   parallel: bool) -> tuple[list[str], list[str]]:
    """Errors in one assistant message's `tool_calls`, and the call ids it makes.

    `names` is None when the example's tools are themselves broken (reported already)."""
    if not isinstance(calls, list) or not calls:
        return [f"{where}.tool_calls: expected a non-empty list"], []
    # The ids count even when the calls are wrong, so their answers are not reported too.
    ids = [c["id"] for c in calls if isinstance(c, dict) and isinstance(c.get("id"), str) and c["id"]]
    if not has_tools:
        return [f"{where}.tool_calls: the example has no 'tools' to call"], ids
    if not parallel and len(calls) > 1:
        return [f"{where}.tool_calls: {len(calls)} calls, but parallel_tool_calls is false"], ids
    errors: list[str] = []
    for index, call in enumerate(calls):
        at = f"{where}.tool_calls[{index}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            errors.append(f'{at}: expected {{"id", "type": "function", "function": {{"name", "arguments"}}}}')
            continue
        if not isinstance(call.get("id"), str) or not call["id"]:
            errors.append(f"{at}.id: expected a non-empty string")
        if call.get("type", "function") != "function":
            errors.append(f"{at}.type: only 'function' calls are supported")
        if names is not None and function.get("name") not in names:
            errors.append(f"{at}.function.name: {function.get('name')!r} is not one of the example's tools")
        errors.extend(_arguments_problems(at, function.get("arguments")))
    return errors, ids


def _arguments_problems(at: str, arguments: Any) -> list[str]:
    if not isinstance(arguments, str):
        return [f"{at}.function.arguments: expected JSON text (a string), as OpenAI sends it"]
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError as exc:
        return [f"{at}.function.arguments: not valid JSON ({exc.msg})"]
    return [] if isinstance(value, dict) else [f"{at}.function.arguments: expected a JSON object"]
