"""Entry point of the built-in "vllm" plugin."""

from __future__ import annotations

GATEWAY_REQUIRES = ["httpx"]
GATEWAY_EXTRA = "serve"
