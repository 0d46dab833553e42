"""Entry point of the built-in "local" plugin. Cheap to import: heavy modules load on use."""

from __future__ import annotations

GATEWAY_REQUIRES = ["torch", "transformers", "peft"]
GATEWAY_EXTRA = "local"
