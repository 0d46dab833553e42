"""Which adapter folders may be loaded at runtime, and which base each belongs to:
the checks on real folders and symlinks, then POST /v1/load_lora_adapter and
/v1/unload_lora_adapter on a live `gateway serve` with the echo backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from servers import gateway_server, make_adapter, write_echo_plugin

from gateway.registry import BaseModel, ModelVersion, add_base_model, create_version, set_alias
from gateway.serving.adapters import adapter_base_name, check_adapter_path, choose_base
from gateway.serving.errors import ApiError
from gateway.store import Store


@pytest.fixture
def roots(tmp_path: Path) -> list[Path]:
    first, second = tmp_path / "root-a", tmp_path / "root-b"
    make_adapter(first / "good")
    make_adapter(second / "nested" / "deep")
    make_adapter(tmp_path / "outside" / "evil")
    return [first, second]


def refused(raw: str, roots: list[Path]) -> ApiError:
    with pytest.raises(ApiError) as info:
        check_adapter_path(raw, roots)
    assert info.value.param == "lora_path"
    return info.value


def test_folders_inside_any_root_are_accepted(roots: list[Path]) -> None:
    assert check_adapter_path(str(roots[0] / "good"), roots) == (roots[0] / "good").resolve()
    assert check_adapter_path(str(roots[1] / "nested" / "deep"), roots).name == "deep"


def test_dotdot_that_stays_inside_is_fine(roots: list[Path]) -> None:
    raw = str(roots[1] / "nested" / ".." / "nested" / "deep")
    assert check_adapter_path(raw, roots) == (roots[1] / "nested" / "deep").resolve()


def test_dotdot_escape_is_forbidden(roots: list[Path], tmp_path: Path) -> None:
    error = refused(str(roots[0] / ".." / "outside" / "evil"), roots)
    assert error.status == 403 and error.code == "adapter_path_not_allowed"
    # The answer names the problem, never the resolved path or the roots.
    assert str((tmp_path / "outside").resolve()) not in error.message
    assert all(str(root) not in error.message for root in roots)


def test_relative_path_resolves_from_the_working_dir(
    roots: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(roots[0])
    assert check_adapter_path("good", roots).name == "good"
    assert refused("../outside/evil", roots).status == 403


def test_symlinked_folder_pointing_outside_is_forbidden(roots: list[Path], tmp_path: Path) -> None:
    (roots[0] / "link").symlink_to(tmp_path / "outside" / "evil")
    assert refused(str(roots[0] / "link"), roots).status == 403


def test_symlinked_root_component_is_followed(roots: list[Path], tmp_path: Path) -> None:
    # A link between two roots stays allowed: the target is inside a root.
    (roots[0] / "to-b").symlink_to(roots[1] / "nested")
    assert check_adapter_path(str(roots[0] / "to-b" / "deep"), roots).name == "deep"


def test_symlinked_file_pointing_outside_is_forbidden(roots: list[Path], tmp_path: Path) -> None:
    folder = make_adapter(roots[0] / "sneaky")
    (folder / "adapter_model.safetensors").unlink()
    os.symlink(tmp_path / "outside" / "evil" / "adapter_model.safetensors",
               folder / "adapter_model.safetensors")
    error = refused(str(folder), roots)
    assert error.status == 403 and "link to a file outside" in error.message


def test_links_in_subfolders_and_hard_links_are_forbidden(roots: list[Path], tmp_path: Path) -> None:
    nested = make_adapter(roots[0] / "nested-link")
    (nested / "sub").mkdir()
    (nested / "sub" / "weights.bin").symlink_to(tmp_path / "outside" / "evil" / "adapter_model.safetensors")
    assert refused(str(nested), roots).status == 403
    hard = make_adapter(roots[0] / "hard-link")
    os.link(tmp_path / "outside" / "evil" / "adapter_model.safetensors", hard / "extra.safetensors")
    error = refused(str(hard), roots)
    assert error.status == 403 and "hard links" in error.message


def test_odd_paths_are_400(roots: list[Path], tmp_path: Path) -> None:
    loop = roots[0] / "loop"
    loop.symlink_to(loop)
    for raw in (str(loop), str(roots[0] / "a\x00b"), str(roots[0] / ("x" * 300)), "/" + "a/" * 3000):
        assert refused(raw, roots).status == 400, raw
    deep = make_adapter(roots[0] / "deep-config")
    (deep / "adapter_config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ApiError) as info:
        adapter_base_name(check_adapter_path(str(deep), roots))
    assert info.value.status == 400


@pytest.mark.parametrize("raw", ["", "   ", None, 5])
def test_empty_or_non_string_path_is_400(roots: list[Path], raw: object) -> None:
    with pytest.raises(ApiError) as info:
        check_adapter_path(raw, roots)
    assert info.value.status == 400 and info.value.param == "lora_path"


def test_missing_folder_or_config_is_400(roots: list[Path]) -> None:
    assert refused(str(roots[0] / "nope"), roots).status == 400
    (roots[0] / "plain").mkdir()
    error = refused(str(roots[0] / "plain"), roots)
    assert error.status == 400 and "adapter_config.json" in error.message


BASES = [
    BaseModel(name="tiny", source="path", path="/models/tiny"),
    BaseModel(name="smol", source="hf", hf_id="HuggingFaceTB/SmolLM2-135M-Instruct"),
]


def test_base_matched_by_name_hub_id_or_path(tmp_path: Path) -> None:
    assert choose_base(make_adapter(tmp_path / "a", "tiny"), BASES).name == "tiny"
    assert choose_base(make_adapter(tmp_path / "b", "HuggingFaceTB/SmolLM2-135M-Instruct"), BASES).name == "smol"
    assert choose_base(make_adapter(tmp_path / "c", "/models/tiny/"), BASES).name == "tiny"


def test_base_falls_back_to_the_only_registered_one(tmp_path: Path) -> None:
    only = [BASES[1]]
    assert choose_base(make_adapter(tmp_path / "a", "somewhere/else"), only).name == "smol"
    assert choose_base(make_adapter(tmp_path / "b", None), only).name == "smol"


def test_base_unknown_among_several_is_a_clear_400(tmp_path: Path) -> None:
    with pytest.raises(ApiError) as info:
        choose_base(make_adapter(tmp_path / "a", "org/unknown"), BASES)
    assert info.value.status == 400
    assert "org/unknown" in info.value.message and "tiny, smol" in info.value.message
    with pytest.raises(ApiError, match="none"):
        choose_base(make_adapter(tmp_path / "b", "tiny"), [])


def test_unreadable_adapter_config_is_400(tmp_path: Path) -> None:
    folder = make_adapter(tmp_path / "a")
    (folder / "adapter_config.json").write_text("{broken")
    with pytest.raises(ApiError) as info:
        adapter_base_name(folder)
    assert info.value.status == 400 and "adapter_config.json" in info.value.message


# ---------------------------------------------------------------- over HTTP


@dataclass
class Loader:
    url: str
    home: Path
    roots: Path
    v1: ModelVersion

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", timeout=10, **kwargs)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loader]:
    tmp = tmp_path_factory.mktemp("adapters")
    home, outside = tmp / "home", tmp / "outside"
    roots = home / "roots"
    home.mkdir()
    (home / "config.toml").write_text(
        'default_backend = "echo"\nadapter_roots = ["roots"]\n[server]\nlog_flush_interval = 0.2\n'
    )
    store = Store(home / "gateway.duckdb")
    tiny_path = tmp / "models" / "tiny"
    add_base_model(store, BaseModel(name="tiny", source="path", path=str(tiny_path)))
    add_base_model(store, BaseModel(name="other", source="hf", hf_id="org/other"))
    v1 = create_version(store, base="tiny", name="support", kind="local",
                        artifact_uri=str(make_adapter(home / "adapters" / "support-1", str(tiny_path))))
    set_alias(store, "support@prod", v1.id)
    make_adapter(roots / "a1", str(tiny_path))
    make_adapter(roots / "for-other", "org/other")
    make_adapter(roots / "nobody", "org/unknown")
    make_adapter(outside / "evil", str(tiny_path))
    (roots / "empty").mkdir()
    (roots / "link").symlink_to(outside / "evil")
    sneaky = make_adapter(roots / "sneaky", str(tiny_path))
    (sneaky / "adapter_model.safetensors").unlink()
    (sneaky / "adapter_model.safetensors").symlink_to(outside / "evil" / "adapter_model.safetensors")
    plugins = write_echo_plugin(tmp / "plugins")
    with gateway_server(home, pythonpath=[plugins], env={"GATEWAY_PLUGINS": "echo"}) as url:
        yield Loader(url, home, roots, v1)


def chat(client: openai.OpenAI, model: str, text: str) -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


def test_load_and_unload_adapter_from_a_path(served: Loader) -> None:
    client = served.client()
    response = served.post("/v1/load_lora_adapter", json={"lora_name": "a1", "lora_path": str(served.roots / "a1")})
    assert response.status_code == 200
    assert response.text == "Success: LoRA adapter 'a1' added successfully."
    models = {m.id: m.model_dump() for m in client.models.list()}
    assert models["a1"]["parent"] == "tiny"
    assert chat(client, "a1", "hi").choices[0].message.content == "a1: hi"
    health = httpx.get(f"{served.url}/status").json()
    assert "a1" in health["backends"]["echo:tiny"]["adapters"]
    again = served.post("/v1/load_lora_adapter", json={"lora_name": "a1", "lora_path": str(served.roots / "a1")})
    assert again.status_code == 400 and error_of(again)["param"] == "lora_name"
    response = served.post("/v1/unload_lora_adapter", json={"lora_name": "a1"})
    assert response.status_code == 200
    assert response.text == "Success: LoRA adapter 'a1' removed successfully."
    with pytest.raises(openai.NotFoundError):
        chat(client, "a1", "hi")
    gone = served.post("/v1/unload_lora_adapter", json={"lora_name": "a1"})
    assert gone.status_code == 404 and error_of(gone)["code"] == "model_not_found"
    audit = Store(served.home / "gateway.duckdb").query(
        "SELECT action, actor FROM audit_log WHERE target = 'a1' ORDER BY created")
    assert [(a["action"], a["actor"]) for a in audit] == [("adapter.load", "anonymous"), ("adapter.unload", "anonymous")]


def test_adapter_base_comes_from_its_config(served: Loader) -> None:
    response = served.post("/v1/load_lora_adapter",
                           json={"lora_name": "o1", "lora_path": str(served.roots / "for-other")})
    assert response.status_code == 200, response.text
    models = {m.id: m.model_dump() for m in served.client().models.list()}
    assert models["o1"]["parent"] == "other"
    assert chat(served.client(), "o1", "x").choices[0].message.content == "o1: x"
    response = served.post("/v1/load_lora_adapter",
                           json={"lora_name": "n1", "lora_path": str(served.roots / "nobody")})
    assert response.status_code == 400 and "org/unknown" in error_of(response)["message"]
    assert served.post("/v1/unload_lora_adapter", json={"lora_name": "o1"}).status_code == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("roots/../../outside/evil", 403),  # `..` climbs out of the root
        ("roots/link", 403),  # a symlink inside a root pointing outside
        ("roots/sneaky", 403),  # a weight file symlinked outside
        ("roots/missing", 400),
        ("roots/empty", 400),  # no adapter_config.json
    ],
)
def test_adapter_paths_outside_roots_are_refused(served: Loader, path: str, status: int) -> None:
    raw = str(served.home / path)
    response = served.post("/v1/load_lora_adapter", json={"lora_name": "x1", "lora_path": raw})
    assert response.status_code == status
    assert error_of(response)["param"] == "lora_path"
    with pytest.raises(openai.NotFoundError):
        chat(served.client(), "x1", "hi")


def test_registry_adapter_loads_by_name(served: Loader) -> None:
    response = served.post("/v1/load_lora_adapter", json={"lora_name": "support@prod"})
    assert response.status_code == 200, response.text
    assert served.v1.id in httpx.get(f"{served.url}/status").json()["backends"]["echo:tiny"]["adapters"]
    assert served.post("/v1/unload_lora_adapter", json={"lora_name": "support@prod"}).status_code == 200
    unknown = served.post("/v1/load_lora_adapter", json={"lora_name": "nothing-here"})
    assert unknown.status_code == 404
    base = served.post("/v1/load_lora_adapter", json={"lora_name": "tiny"})
    assert base.status_code == 400
    clash = served.post("/v1/load_lora_adapter",
                        json={"lora_name": "support", "lora_path": str(served.roots / "a1")})
    assert clash.status_code == 400 and "registered" in error_of(clash)["message"]
    missing = served.post("/v1/load_lora_adapter", json={"lora_path": str(served.roots / "a1")})
    assert missing.status_code == 400 and error_of(missing)["param"] == "lora_name"


@pytest.mark.parametrize("name", ["../x", "a\x00b", "a\nb", "x" * 100_000, "a/b", " "])
def test_adapter_names_are_checked_like_registry_names(served: Loader, name: str) -> None:
    response = served.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(served.roots / "a1")})
    assert response.status_code == 400 and error_of(response)["param"] == "lora_name"
    assert len(response.text) < 1000  # the name is not echoed back


def test_two_concurrent_loads_of_one_name_one_wins(served: Loader) -> None:
    import threading

    make_adapter(served.roots / "race-a", str(served.home.parent / "models" / "tiny"))
    make_adapter(served.roots / "race-b", str(served.home.parent / "models" / "tiny"))
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def load(folder: str) -> None:
        barrier.wait()
        statuses.append(served.post("/v1/load_lora_adapter",
                                    json={"lora_name": "racer", "lora_path": str(served.roots / folder)}).status_code)

    threads = [threading.Thread(target=load, args=(f,)) for f in ("race-a", "race-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 400]
    assert served.post("/v1/unload_lora_adapter", json={"lora_name": "racer"}).status_code == 200
