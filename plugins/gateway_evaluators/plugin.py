"""Entry point of the built-in "evaluators" plugin."""

from __future__ import annotations
