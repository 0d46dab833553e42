"""A pytest plugin for people who write gateway plugins (registered as `pytest11`).

Fixtures:
- `gateway_home`: an empty GATEWAY_HOME for the test, with the plugin manager reset.
- `register_plugin`: registers a plugin object for the test and unregisters it after.
- `gateway_cli`: runs `gateway` commands in-process and returns click's Result.
"""

from gateway.testing.fixtures import gateway_cli, gateway_home, register_plugin

__all__ = ["gateway_cli", "gateway_home", "register_plugin"]
