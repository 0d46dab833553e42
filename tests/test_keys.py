"""API keys: the `gateway keys` commands, hashing, and what a live server enforces."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from servers import gateway_server, write_echo_plugin

from gateway.keys import create_key, list_keys, revoke_key, scope_allows
from gateway.registry import BaseModel, add_base_model
from gateway.store import Store
from gateway.util import is_loopback, sha256_text

# ---------------------------------------------------------------- CLI and storage


def test_create_prints_the_key_once_and_stores_only_its_hash(
    gateway_home: Path, gateway_cli: Callable[..., Any]
) -> None:
    result = gateway_cli("keys", "create", "--name", "ci", "--scope", "admin")
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret.startswith("gw-") and len(secret) > 30
    rows = Store(gateway_home / "gateway.duckdb").query("SELECT * FROM api_keys")
    assert len(rows) == 1
    row = rows[0]
    assert row["hash"] == sha256_text(secret) and row["scope"] == "admin" and row["name"] == "ci"
    assert secret not in str(row)
    assert secret.startswith(row["prefix"]) and row["revoked"] is None

    listing = gateway_cli("keys", "list", "--format", "json")
    assert listing.exit_code == 0
    assert secret not in listing.output and row["prefix"] in listing.output
    assert '"scope": "admin"' in listing.output
    assert gateway_cli("keys", "revoke", row["id"]).exit_code == 0
    audit = Store(gateway_home / "gateway.duckdb").query(
        "SELECT action, target, actor, detail FROM audit_log ORDER BY created")
    assert [(a["action"], a["target"]) for a in audit] == [("key.create", row["id"]), ("key.revoke", row["id"])]
    assert all(a["actor"].startswith("cli") for a in audit) and secret not in str(audit)


def test_revoke_and_its_errors(gateway_home: Path, gateway_cli: Callable[..., Any]) -> None:
    store = Store(gateway_home / "gateway.duckdb")
    key, _ = create_key(store, "inference", "app")
    result = gateway_cli("keys", "revoke", key.id)
    assert result.exit_code == 0 and key.id in result.output
    (listed,) = list_keys(store)
    assert listed.revoked is not None and not listed.active
    first = listed.revoked
    assert gateway_cli("keys", "revoke", key.prefix).exit_code == 0  # by prefix, idempotent
    assert list_keys(store)[0].revoked == first
    missing = gateway_cli("keys", "revoke", "key-nope")
    assert missing.exit_code == 1 and "Error: no API key" in missing.output
    bad_scope = gateway_cli("keys", "create", "--scope", "root")
    assert bad_scope.exit_code == 2
    table = gateway_cli("keys", "list")
    assert "prefix" in table.output and key.id in table.output


def test_scopes() -> None:
    assert scope_allows("admin", "inference") and scope_allows("admin", "admin")
    assert scope_allows("inference", "inference") and not scope_allows("inference", "admin")


# ---------------------------------------------------------------- binding


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org"])
def test_non_loopback_hosts(host: str) -> None:
    assert not is_loopback(host)


def test_serve_refuses_non_loopback_without_keys(
    gateway_home: Path, gateway_cli: Callable[..., Any]
) -> None:
    result = gateway_cli("serve", "--host", "0.0.0.0", "--port", "9")
    assert result.exit_code == 1
    assert "Error: refusing to serve on 0.0.0.0" in result.output
    assert "gateway keys create" in result.output
    # The configured host counts the same as --host.
    (gateway_home / "config.toml").write_text('[server]\nhost = "0.0.0.0"\n')
    result = gateway_cli("serve", "--port", "9")
    assert result.exit_code == 1 and "refusing to serve on 0.0.0.0" in result.output


def test_import_of_cli_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from gateway.cli import assemble; assemble(); "
        "print(sorted(m for m in ('starlette', 'uvicorn', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- a live server with keys


@dataclass
class Keyed:
    url: str
    home: Path
    inference: str
    admin: str
    adapter: Path

    @property
    def store(self) -> Store:
        return Store(self.home / "gateway.duckdb")

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    tmp = tmp_path_factory.mktemp("keys")
    home = tmp / "home"
    home.mkdir()
    (home / "config.toml").write_text('default_backend = "echo"\n[server]\nlog_flush_interval = 0.2\n')
    store = Store(home / "gateway.duckdb")
    add_base_model(store, BaseModel(name="tiny", source="path", path=str(tmp / "tiny")))
    _, inference = create_key(store, "inference", "app")
    _, admin = create_key(store, "admin", "ops")
    folder = home / "adapters" / "a1"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"base_model_name_or_path": "tiny"}')
    plugins = write_echo_plugin(tmp / "plugins")
    with gateway_server(home, pythonpath=[plugins], env={"GATEWAY_PLUGINS": "echo"}) as url:
        yield Keyed(url, home, inference, admin, folder)


def hi(client: openai.OpenAI) -> str:
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}])
    return str(reply.choices[0].message.content)


def test_requests_without_a_valid_key_get_401(keyed: Keyed) -> None:
    response = httpx.post(f"{keyed.url}/v1/chat/completions", json={"model": "tiny"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert httpx.get(f"{keyed.url}/v1/models").status_code == 401
    with pytest.raises(openai.AuthenticationError) as info:
        hi(keyed.client("gw-wrong-key-entirely"))
    assert "gw-wrong-key-entirely" not in info.value.message
    with pytest.raises(openai.AuthenticationError):
        keyed.client("gw-wrong").models.list()
    basic = httpx.get(f"{keyed.url}/v1/models", headers={"Authorization": f"Basic {keyed.admin}"})
    assert basic.status_code == 401


def test_health_is_public_and_says_nothing_status_and_metrics_need_a_key(keyed: Keyed) -> None:
    assert httpx.get(f"{keyed.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{keyed.url}/ready").status_code == 200
    assert httpx.get(f"{keyed.url}/status").status_code == 401
    assert httpx.get(f"{keyed.url}/metrics").status_code == 401
    headers = {"Authorization": f"Bearer {keyed.inference}"}
    assert httpx.get(f"{keyed.url}/status", headers=headers).json()["auth"] == "keys"
    assert httpx.get(f"{keyed.url}/metrics", headers=headers).status_code == 200


def test_inference_key_serves_models_but_not_adapters(keyed: Keyed) -> None:
    client = keyed.client(keyed.inference)
    assert hi(client) == "tiny: hi"
    assert "tiny" in {m.id for m in client.models.list()}
    response = httpx.post(
        f"{keyed.url}/v1/load_lora_adapter",
        json={"lora_name": "a1", "lora_path": str(keyed.adapter)},
        headers={"Authorization": f"Bearer {keyed.inference}"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"


def test_files_need_the_admin_key(keyed: Keyed) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        keyed.client(keyed.inference).files.list()
    with pytest.raises(openai.AuthenticationError):
        keyed.client("gw-not-a-key").files.list()
    assert keyed.client(keyed.admin).files.list().data == []


def test_admin_key_manages_adapters_and_serves(keyed: Keyed) -> None:
    headers = {"Authorization": f"Bearer {keyed.admin}"}
    body = {"lora_name": "a1", "lora_path": str(keyed.adapter)}
    response = httpx.post(f"{keyed.url}/v1/load_lora_adapter", json=body, headers=headers)
    assert response.status_code == 200, response.text
    reply = keyed.client(keyed.admin).chat.completions.create(
        model="a1", messages=[{"role": "user", "content": "yo"}]
    )
    assert reply.choices[0].message.content == "a1: yo"
    response = httpx.post(f"{keyed.url}/v1/unload_lora_adapter", json={"lora_name": "a1"}, headers=headers)
    assert response.status_code == 200


def test_new_key_works_at_once_and_revoked_key_stops(keyed: Keyed) -> None:
    key, secret = create_key(keyed.store, "inference", "short-lived")
    assert hi(keyed.client(secret)) == "tiny: hi"
    revoke_key(keyed.store, key.id)
    deadline = time.monotonic() + 15
    while True:
        try:
            hi(keyed.client(secret))
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "a revoked key kept working"
        time.sleep(0.2)
    assert hi(keyed.client(keyed.inference)) == "tiny: hi"


def test_request_log_records_the_key_and_no_secret_is_logged(keyed: Keyed) -> None:
    hi(keyed.client(keyed.inference))
    deadline = time.monotonic() + 10
    while httpx.get(f"{keyed.url}/status", headers={"Authorization": f"Bearer {keyed.admin}"}).json()[
            "request_log_queue"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (app_key,) = [k for k in list_keys(keyed.store) if k.name == "app"]
    rows = keyed.store.query("SELECT key_id, status FROM request_log WHERE key_id = ?", [app_key.id])
    assert rows and all(r["status"] == 200 for r in rows)
    log = (keyed.home / "server.log").read_text()
    assert keyed.inference not in log and keyed.admin not in log


def _wait_status(url: str, headers: dict[str, str], status: int, timeout: float = 15) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{url}/v1/models", headers=headers)
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, f"still {response.status_code}: {response.text}"
        time.sleep(0.2)


def test_auth_never_fails_open(tmp_path: Path) -> None:
    """Revoking the last key, or an emptied store, leaves every route needing a key (401)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('default_backend = "echo"\n')
    store = Store(home / "gateway.duckdb")
    add_base_model(store, BaseModel(name="tiny", source="path", path=str(tmp_path)))
    key, secret = create_key(store, "admin", "only")
    plugins = write_echo_plugin(tmp_path / "plugins")
    with gateway_server(home, pythonpath=[plugins], env={"GATEWAY_PLUGINS": "echo"}) as url:
        keyed = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(f"{url}/v1/models", headers=keyed).status_code == 200
        revoke_key(store, key.id)
        refused = _wait_status(url, keyed, 401)
        assert "none is active" in refused.json()["error"]["message"]
        assert httpx.get(f"{url}/v1/models").status_code == 401
        chat = httpx.post(f"{url}/v1/chat/completions",
                          json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 401
        admin = httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": "/x"})
        assert admin.status_code == 401
        assert httpx.get(f"{url}/status").status_code == 401
        # A new key works again at once.
        _, fresh = create_key(store, "inference", "fresh")
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_keys_are_not_trusted_for_long_while_the_store_is_unreadable(tmp_path: Path) -> None:
    """A revoked key cannot keep working while the store cannot be read: past max_stale, 503."""
    import asyncio

    from starlette.requests import Request

    from gateway.serving.auth import KeyCache
    from gateway.serving.errors import ApiError

    db = tmp_path / "gateway.duckdb"
    store = Store(db, lock_timeout=0.5)
    _, secret = create_key(store, "admin")
    cache = KeyCache(store, max_stale=0.5)
    cache.reload()
    request = Request({"type": "http", "method": "GET", "path": "/v1/models", "headers": [
        (b"authorization", f"Bearer {secret}".encode())]})
    assert asyncio.run(cache.check(request, "inference")) is not None
    db.rename(tmp_path / "moved.duckdb")
    db.write_bytes(b"not a database" * 100)  # unreadable from now on
    assert not cache.try_reload()
    time.sleep(0.6)
    with pytest.raises(ApiError) as info:
        asyncio.run(cache.check(request, "inference"))
    assert info.value.status == 503 and info.value.code == "keys_unavailable"


def test_wrong_keys_are_rate_limited_per_address(tmp_path: Path) -> None:
    from gateway.serving.auth import MAX_FAILURES

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('default_backend = "echo"\n')
    store = Store(home / "gateway.duckdb")
    _, secret = create_key(store, "inference")
    plugins = write_echo_plugin(tmp_path / "plugins")
    with gateway_server(home, pythonpath=[plugins], env={"GATEWAY_PLUGINS": "echo"}) as url:
        statuses = [httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer gw-guess-{i}"}).status_code
                    for i in range(MAX_FAILURES + 5)]
        assert statuses[:MAX_FAILURES] == [401] * MAX_FAILURES and set(statuses[MAX_FAILURES:]) == {429}
        limited = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer gw-guess-x"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        # The right key from the same address still works.
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
