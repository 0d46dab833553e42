"""API keys for the server: created once, stored only as a sha256 hash.

A key looks like `gw-<random>`. Its first characters (the prefix) are kept to
recognise it in listings; the key itself is shown once, when it is created.
Scopes: "inference" (the model routes), "fine-tune" (files and fine-tuning
jobs, and the model routes: a key that trains models can use them) and "admin"
(everything, adapter management included).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from gateway.errors import GatewayError, NotFoundError
from gateway.store import Store
from gateway.util import new_id, sha256_text, utcnow

SCOPES = ("inference", "fine-tune", "admin")
KEY_PREFIX = "gw-"
PREFIX_LENGTH = len(KEY_PREFIX) + 6


@dataclass
class ApiKey:
    id: str
    name: str | None
    prefix: str
    scope: str
    created: datetime
    revoked: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


def hash_key(secret: str) -> str:
    return sha256_text(secret)


def scope_allows(have: str, need: str) -> bool:
    """Whether a key of scope `have` may do what needs `need` (admin includes every scope)."""
    return have == need or have == "admin" or (have == "fine-tune" and need == "inference")


def create_key(store: Store, scope: str, name: str | None = None) -> tuple[ApiKey, str]:
    """Store a new key and return it with its secret, which is never stored."""
    if scope not in SCOPES:
        raise GatewayError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id("key"), name=name, prefix=secret[:PREFIX_LENGTH], scope=scope, created=utcnow()
    )
    store.execute(
        "INSERT INTO api_keys (id, name, prefix, hash, scope, created, revoked) "
        "VALUES (?, ?, ?, ?, ?, ?, NULL)",
        [key.id, key.name, key.prefix, hash_key(secret), key.scope, key.created],
    )
    return key, secret


def list_keys(store: Store) -> list[ApiKey]:
    rows = store.query(
        "SELECT id, name, prefix, scope, created, revoked FROM api_keys ORDER BY created, id"
    )
    return [ApiKey(**row) for row in rows]


def active_keys_by_hash(store: Store) -> dict[str, ApiKey]:
    """Every key not revoked, by the hash of its secret."""
    rows = store.query(
        "SELECT id, name, prefix, hash, scope, created, revoked FROM api_keys WHERE revoked IS NULL"
    )
    return {row.pop("hash"): ApiKey(**row) for row in rows}


def revoke_key(store: Store, key_id: str) -> ApiKey:
    """Revoke a key by id (or by its prefix). Revoking twice keeps the first time."""
    with store.transaction() as con:
        row = con.execute(
            "SELECT id FROM api_keys WHERE id = ? OR prefix = ?", [key_id, key_id]
        ).fetchall()
        if not row:
            raise NotFoundError(f"no API key with id or prefix {key_id!r} (see `gateway keys list`)")
        if len(row) > 1:
            raise GatewayError(f"{key_id!r} matches {len(row)} keys; give the key id")
        found_id = str(row[0][0])
        con.execute(
            "UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", [utcnow(), found_id]
        )
    return next(k for k in list_keys(store) if k.id == found_id)
