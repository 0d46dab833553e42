"""Errors the gateway raises on purpose. Each carries a message meant for a user."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error a user should see as a message, not a traceback."""

    exit_code = 1


class ConfigError(GatewayError):
    """The configuration file is missing a value, or holds a wrong one."""


class StoreError(GatewayError):
    """The DuckDB store cannot be opened, or a write to it failed."""


class NotFoundError(GatewayError):
    """A named thing (model, job, run, key, plugin) does not exist."""


class ValidationError(GatewayError):
    """Input data breaks a rule. `errors` holds (line, message) pairs."""

    def __init__(self, message: str, errors: list[tuple[int | None, str]] | None = None):
        super().__init__(message)
        self.errors = errors or []


class PluginError(GatewayError):
    """A plugin is unavailable or misbehaved."""
