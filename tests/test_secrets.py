"""Secrets: one scenario over every path, then a search for the keys everywhere.

Gateway A (keys on) serves chat and streams, loads an adapter, answers bad
requests, and trains and serves a hosted fine-tune through gateway B (a second
process, the "provider"), reached with litellm. Afterwards no log file, no
DuckDB table, no CLI output and no error body holds A's API keys or B's
provider key. (A key's 9-character display prefix is stored on purpose, so the
search looks for the whole key and for its first 16 characters.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import openai
from lora import make_lora_adapter
from servers import GATEWAY_MAIN, free_port, gateway_env, gateway_server
from test_files_api import chat_jsonl
from test_hosted import KEY_ENV, QUICK, caller_home, provider_home

from gateway.store import Store

SEARCHED = 16  # characters of each secret looked for, beyond the stored prefix


def every_table_as_text(db: Path) -> str:
    store = Store(db)
    tables = [r["table_name"] for r in store.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")]
    return "\n".join(json.dumps(store.query(f'SELECT * FROM "{table}"'), default=str) for table in tables)


def test_no_key_reaches_a_log_a_table_an_output_or_an_error_body(tmp_path: Path, tiny_model_dir: Path) -> None:
    home_b, provider_key = provider_home(tmp_path, tiny_model_dir)
    port_b = free_port()
    home_a = caller_home(tmp_path, tiny_model_dir, port_b)
    config = home_a / "config.toml"
    config.write_text('adapter_roots = ["adapters"]\n' + config.read_text(encoding="utf-8"), encoding="utf-8")
    make_lora_adapter(tiny_model_dir, home_a / "adapters" / "style", seed=4)
    (tmp_path / "train.jsonl").write_bytes(chat_jsonl(16))
    env_a = gateway_env(home_a, **{KEY_ENV: provider_key})
    outputs: list[str] = []

    def gateway_a(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", GATEWAY_MAIN, *args], env=env_a, capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"gateway {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        outputs.extend([done.stdout, done.stderr])
        return done.stdout

    # The one output that shows a key is its creation; it is left out of the search.
    admin_key = gateway_a("keys", "create", "--scope", "admin", "--name", "ops").split()[-1]
    inference_key = gateway_a("keys", "create", "--name", "app").split()[-1]
    outputs.clear()
    assert admin_key.startswith("gw-") and inference_key.startswith("gw-")
    bodies: list[str] = []

    with gateway_server(home_b, port=port_b):
        trained = gateway_a("train", "--trainer", "hosted", "--provider", "b", "--base", "tiny",
                            "--data", str(tmp_path / "train.jsonl"), "--suffix", "secret", *QUICK, "--yes")
        hosted_version = trained.strip().splitlines()[-2]
        with gateway_server(home_a, env={KEY_ENV: provider_key}) as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=inference_key, max_retries=0)
            question = [{"role": "user", "content": "Double 4"}]
            assert client.chat.completions.create(model="tiny", messages=question, max_tokens=4).choices
            streamed = client.chat.completions.create(model="tiny", messages=question, max_tokens=4, stream=True)
            assert [c for c in streamed]
            # The hosted version, served by A through litellm with B's key.
            assert client.chat.completions.create(model=hosted_version, messages=question, max_tokens=4).choices
            admin = {"Authorization": f"Bearer {admin_key}"}
            loaded = httpx.post(f"{url}/v1/load_lora_adapter", headers=admin,
                                json={"lora_name": "style", "lora_path": str(home_a / "adapters" / "style")})
            assert loaded.status_code == 200, loaded.text
            assert client.chat.completions.create(model="style", messages=question, max_tokens=4).choices
            chat_url = f"{url}/v1/chat/completions"
            bad = [
                httpx.post(chat_url, json={"model": "tiny", "messages": question},
                           headers={"Authorization": f"Bearer {admin_key}x"}),  # a near miss: 401
                httpx.post(chat_url, json={"model": "tiny", "messages": question},
                           headers={"Authorization": admin_key}),  # no "Bearer": 401
                httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "x"},
                           headers={"Authorization": f"Bearer {inference_key}"}),  # wrong scope: 403
                httpx.post(chat_url, json={"model": "nope", "messages": question}, headers=admin),
                httpx.post(chat_url, json={"model": "tiny", "messages": "hi"}, headers=admin),
                httpx.post(chat_url, content=b"{not json", headers={**admin, "Content-Type": "application/json"}),
                httpx.post(f"{url}/v1/load_lora_adapter", headers=admin,
                           json={"lora_name": "escape", "lora_path": "/etc"}),
            ]
            assert [r.status_code for r in bad] == [401, 401, 403, 404, 400, 400, 403]
            bodies += [r.text for r in bad]
            bodies.append(httpx.get(f"{url}/status", headers=admin).text)
            bodies.append(httpx.get(f"{url}/metrics", headers=admin).text)
        bodies.append(httpx.get(f"http://127.0.0.1:{port_b}/v1/fine_tuning/jobs",
                                headers={"Authorization": f"Bearer {provider_key}"}).text)
    outputs.append(gateway_a("jobs", "list"))
    outputs.append(gateway_a("keys", "list"))

    secrets = {"admin key": admin_key, "inference key": inference_key, "provider key": provider_key}
    files = [p for home in (home_a, home_b) for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "server.log" for p in files) and len(files) > 10
    tables = every_table_as_text(home_a / "gateway.duckdb") + every_table_as_text(home_b / "gateway.duckdb")
    assert "/v1/chat/completions" in tables and "adapter.load" in tables  # request_log, audit_log
    texts = {"tables": tables, "outputs": "\n".join(outputs), "error bodies": "\n".join(bodies)}
    for what, secret in secrets.items():
        for needle in (secret, secret[:SEARCHED]):
            for path in files:
                assert needle.encode() not in path.read_bytes(), f"{what} in {path}"
            for where, text in texts.items():
                assert needle not in text, f"{what} in the {where}"
    print(f"\nsecrets: {len(files)} files, {len(tables)} characters of tables, {len(bodies)} bodies "
          "searched for 3 secrets; none found")
