"""Entry point of the built-in "hosted" plugin, once it provides something.

It registers nothing today; pyproject.toml gains its entry point with the
hosted trainer and backend.
"""

from __future__ import annotations

GATEWAY_REQUIRES = ["litellm"]
GATEWAY_EXTRA = "hosted"
