"""The Files API on a live `gateway serve`, with the official openai SDK as the client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from servers import gateway_server

from gateway.store import Store


@dataclass
class FilesServer:
    url: str
    home: Path

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def files_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilesServer]:
    home = tmp_path_factory.mktemp("files") / "home"
    home.mkdir()
    # A small limit (about 20 KB) so the size check is cheap to reach.
    (home / "config.toml").write_text("[server]\nmax_upload_mb = 0.02\n", encoding="utf-8")
    with gateway_server(home) as url:
        yield FilesServer(url, home)


def chat_jsonl(count: int = 12, pad: int = 0) -> bytes:
    rows = [{"messages": [{"role": "user", "content": f"Double {i}" + " " * pad},
                          {"role": "assistant", "content": str(2 * i)}]} for i in range(count)]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_upload_list_retrieve_content_delete(files_server: FilesServer) -> None:
    client = files_server.client()
    data = chat_jsonl()
    created = client.files.create(file=("../../evil.jsonl", data), purpose="fine-tune")
    assert created.id.startswith("file-") and created.object == "file"
    assert (created.bytes, created.purpose, created.filename) == (len(data), "fine-tune", "evil.jsonl")
    # Stored by content under the home, never under the client's name.
    import hashlib

    stored = files_server.home / "files" / f"{hashlib.sha256(data).hexdigest()}.jsonl"
    assert stored.read_bytes() == data
    assert not (files_server.home.parent / "evil.jsonl").exists()

    again = client.files.create(file=("copy.jsonl", data), purpose="fine-tune")
    assert again.id != created.id
    assert {f.id for f in client.files.list()} >= {created.id, again.id}
    assert client.files.retrieve(created.id).filename == "evil.jsonl"
    assert client.files.content(created.id).read() == data

    assert client.files.delete(again.id).deleted is True
    assert stored.exists()  # the other upload still names these bytes
    assert client.files.delete(created.id).deleted is True
    assert not stored.exists()
    with pytest.raises(openai.NotFoundError) as info:
        client.files.retrieve(created.id)
    assert info.value.status_code == 404 and "No such File object" in info.value.message


def test_a_bad_file_is_refused_with_its_line_numbers(files_server: FilesServer) -> None:
    bad = b'{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n'
    with pytest.raises(openai.BadRequestError) as info:
        files_server.client().files.create(file=("bad.jsonl", bad), purpose="fine-tune")
    body = info.value.body
    assert isinstance(body, dict) and body["code"] == "invalid_file" and body["param"] == "file"
    assert "line 1: no assistant message" in body["message"]
    assert "line 2: invalid JSON" in body["message"]
    assert list((files_server.home / "files").glob(".upload-*")) == []  # nothing left behind


def test_size_limit_purpose_and_shape_errors(files_server: FilesServer) -> None:
    client = files_server.client()
    big = chat_jsonl(count=40, pad=600)
    with pytest.raises(openai.APIStatusError) as info:
        client.files.create(file=("big.jsonl", big), purpose="fine-tune")
    assert info.value.status_code == 413
    assert "the limit is 20971 bytes" in info.value.message
    with pytest.raises(openai.BadRequestError, match="purpose 'assistants' is not supported"):
        client.files.create(file=("ok.jsonl", chat_jsonl()), purpose="assistants")  # type: ignore[arg-type]
    plain = httpx.post(f"{files_server.url}/v1/files", content=b"{}",
                       headers={"content-type": "application/json"})
    assert plain.status_code == 415 and "multipart/form-data" in plain.json()["error"]["message"]
    # Found by the fuzzer: a multipart body with no boundary was a 500.
    no_boundary = httpx.post(f"{files_server.url}/v1/files", content=b"x",
                             headers={"content-type": "multipart/form-data"})
    assert no_boundary.status_code == 400 and "boundary" in no_boundary.json()["error"]["message"]


def test_a_file_an_unfinished_job_uses_cannot_be_deleted(files_server: FilesServer) -> None:
    client = files_server.client()
    created = client.files.create(file=("train.jsonl", chat_jsonl(13)), purpose="fine-tune")
    store = Store(files_server.home / "gateway.duckdb")
    stored = store.query_one("SELECT path FROM files WHERE id = ?", [created.id])
    assert stored is not None
    store.execute(
        "INSERT INTO jobs (id, trainer, base, status, training_file, hyperparameters, output_dir, "
        "created) VALUES ('ftjob-busy', 'local', 'tiny', 'running', ?, '{}', '/tmp/x', now())",
        [stored["path"]])
    with pytest.raises(openai.ConflictError) as info:
        client.files.delete(created.id)
    assert info.value.status_code == 409 and "ftjob-busy" in info.value.message
    store.execute("UPDATE jobs SET status = 'succeeded' WHERE id = 'ftjob-busy'")
    assert client.files.delete(created.id).deleted is True
