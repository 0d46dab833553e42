"""Entry point of the built-in "hosted" plugin."""

from __future__ import annotations

GATEWAY_REQUIRES = ["litellm"]
GATEWAY_EXTRA = "hosted"
