"""schemathesis hooks for the fuzz tests (loaded through SCHEMATHESIS_HOOKS).

Generated bodies keep max_tokens and max_completion_tokens at 8 or less, so
generation on the tiny model stays quick, and most of them name the served
model, so the fuzzer reaches the backend and not only the 404 for an unknown
model (the rest keep their generated name).
"""

from __future__ import annotations

from typing import Any

import schemathesis

MAX_TOKENS = 8
SERVED_MODEL = "tiny"


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TOKENS:
            body[name] = MAX_TOKENS
    model = body.get("model")
    if isinstance(model, str) and len(model) % 4:
        body["model"] = SERVED_MODEL
    return body
