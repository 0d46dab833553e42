"""Small helpers shared across the core: ids, names, time, hashing."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

# What a model, version, alias or plugin-registered class may be called.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def utcnow() -> datetime:
    """Naive UTC timestamp, the form DuckDB TIMESTAMP columns hold."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_id(prefix: str, nbytes: int = 6) -> str:
    """A random id such as `ftjob-3f9a1c2b7d4e`."""
    return f"{prefix}-{secrets.token_hex(nbytes)}"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_loopback(host: str) -> bool:
    """Whether `host` (a bind address) reaches only this machine."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
