"""The admin audit log: who changed what, and when, in the `audit_log` table.

Key creation and revocation, adapter loads and unloads, and fine-tuning job
creation and cancellation are recorded. `actor` is the API key's id for a
request (never the key), or `cli:<user>` for a command run on the machine.
A failed audit write never undoes the action; it is reported on stderr.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any

from gateway.store import Store
from gateway.util import new_id, utcnow


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def record(store: Store, action: str, target: str, actor: str | None, **detail: Any) -> None:
    """Append one audit row: `action` (e.g. "key.create") on `target` by `actor`."""
    try:
        store.execute(
            "INSERT INTO audit_log (id, created, actor, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
            [new_id("audit"), utcnow(), actor or "anonymous", action, target,
             json.dumps(detail, default=str)],
        )
    except Exception as exc:  # the action happened; say that its record did not
        print(f"gateway: audit row for {action} {target} not written: {type(exc).__name__}",
              file=sys.stderr)
