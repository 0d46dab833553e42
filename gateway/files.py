"""Uploaded training files: validated like `gateway data validate`, stored by content.

A file lands under `$GATEWAY_HOME/files/<sha256>.jsonl`, never under a name the
client chose; the client's filename is kept only as metadata. The `files`
table records each upload; two uploads of the same bytes share one stored copy.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.errors import GatewayError, NotFoundError, ValidationError
from gateway.store import Store
from gateway.util import new_id, utcnow

PURPOSES = ("fine-tune",)
MAX_LISTED_ERRORS = 20


class FileInUse(GatewayError):
    """A stored file that a job still uses cannot be deleted."""


class FileTooLarge(GatewayError):
    """An upload over the configured size limit."""


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    bytes: int
    sha256: str
    path: str
    created: datetime

    def as_openai(self) -> dict[str, Any]:
        """OpenAI's `file` object."""
        return {"id": self.id, "object": "file", "bytes": self.bytes,
                "created_at": int(self.created.timestamp()), "filename": self.filename,
                "purpose": self.purpose, "status": "processed", "status_details": None}


def _problems(errors: list[tuple[int | None, str]]) -> str:
    shown = [f"{'line ' + str(line) if line else 'file'}: {message}"
             for line, message in errors[:MAX_LISTED_ERRORS]]
    more = len(errors) - len(shown)
    return "; ".join(shown) + (f"; ... and {more} more" if more else "")


def store_file(config: Config, store: Store, filename: str, purpose: str, data: bytes) -> StoredFile:
    """Validate and store one upload. ValidationError lists the line-numbered problems."""
    from gateway.data import validate_chat_file

    if purpose not in PURPOSES:
        raise GatewayError(f"purpose {purpose!r} is not supported: use {', '.join(PURPOSES)}")
    limit = config.server.max_upload_bytes
    if len(data) > limit:
        raise FileTooLarge(f"the file has {len(data)} bytes; the limit is {limit} bytes "
                           "([server] max_upload_mb)")
    folder = config.home / "files"
    folder.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256(data).hexdigest()
    dest = folder / f"{sha}.jsonl"
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".jsonl")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        report = validate_chat_file(tmp)
        if not report.ok:
            raise ValidationError(f"{filename} has {len(report.errors)} errors: "
                                  f"{_problems(report.errors)}", report.errors)
        os.replace(tmp, dest)  # same bytes, same name: a second upload changes nothing
    finally:
        tmp.unlink(missing_ok=True)
    record = StoredFile(id=new_id("file"), filename=Path(filename).name or "upload.jsonl",
                        purpose=purpose, bytes=len(data), sha256=sha, path=str(dest),
                        created=utcnow())
    store.execute(
        "INSERT INTO files (id, filename, purpose, bytes, sha256, path, created) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [record.id, record.filename, record.purpose, record.bytes, record.sha256, record.path,
         record.created],
    )
    return record


def list_files(store: Store, purpose: str | None = None) -> list[StoredFile]:
    rows = store.query(
        "SELECT * FROM files WHERE ? IS NULL OR purpose = ? ORDER BY created DESC, id",
        [purpose, purpose])
    return [StoredFile(**r) for r in rows]


def get_file(store: Store, file_id: str) -> StoredFile:
    row = store.query_one("SELECT * FROM files WHERE id = ?", [file_id])
    if row is None:
        raise NotFoundError(f"No such File object: {file_id}")
    return StoredFile(**row)


def file_content(store: Store, file_id: str) -> bytes:
    return Path(get_file(store, file_id).path).read_bytes()


def delete_file(store: Store, file_id: str) -> StoredFile:
    """Forget an upload (and its bytes when no other upload shares them)."""
    record = get_file(store, file_id)
    users = store.query(
        "SELECT id FROM jobs WHERE status NOT IN ('succeeded', 'failed', 'cancelled') "
        "AND (training_file IN (?, ?) OR validation_file IN (?, ?))",
        [record.id, record.path, record.id, record.path])
    if users:
        raise FileInUse(f"file {file_id} is used by job {users[0]['id']}, which has not finished")
    with store.transaction() as con:
        con.execute("DELETE FROM files WHERE id = ?", [file_id])
        shared = con.execute("SELECT count(*) FROM files WHERE sha256 = ?", [record.sha256]).fetchone()
    if not shared or not shared[0]:
        Path(record.path).unlink(missing_ok=True)
    return record
