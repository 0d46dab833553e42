"""The registry: base models, version numbering, aliases and every way to name a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import GatewayError, NotFoundError
from gateway.registry import (
    BaseModel,
    add_base_model,
    create_version,
    get_base_model,
    get_version,
    list_aliases,
    list_base_models,
    list_versions,
    resolve,
    set_alias,
)
from gateway.store import Store


@pytest.fixture
def store(gateway_home: Path) -> Store:
    store = Store(gateway_home / "gateway.duckdb")
    add_base_model(store, BaseModel(name="tiny", source="path", path="/models/tiny", context_length=2048))
    add_base_model(store, BaseModel(name="gpt-mini", source="hf", hf_id="org/gpt-mini"))
    return store


def test_base_models(store: Store) -> None:
    assert [m.name for m in list_base_models(store)] == ["gpt-mini", "tiny"]
    tiny = get_base_model(store, "tiny")
    assert (tiny.path, tiny.context_length, tiny.source) == ("/models/tiny", 2048, "path")
    assert tiny.created is not None
    with pytest.raises(GatewayError, match="a base model named 'tiny' already exists"):
        add_base_model(store, BaseModel(name="tiny", source="path", path="/elsewhere"))
    assert get_base_model(store, "tiny").path == "/models/tiny"  # nothing lost
    add_base_model(store, BaseModel(name="tiny", source="path", path="/elsewhere"), replace=True)
    assert get_base_model(store, "tiny").path == "/elsewhere"


def test_unknown_base_model_lists_known_ones(store: Store) -> None:
    with pytest.raises(NotFoundError) as info:
        get_base_model(store, "llama-9000")
    assert str(info.value).startswith(
        "unknown base model 'llama-9000'. Known base models: gpt-mini, tiny."
    )


def test_invalid_names(store: Store) -> None:
    with pytest.raises(GatewayError, match="invalid model name 'has space'"):
        add_base_model(store, BaseModel(name="has space", source="path"))
    with pytest.raises(GatewayError, match="invalid version name"):
        create_version(store, base="tiny", name="bad/name", kind="local")


def test_versions_are_numbered_per_name(store: Store) -> None:
    a1 = create_version(store, base="tiny", name="support", kind="local", artifact_uri="/a/1")
    b1 = create_version(store, base="gpt-mini", name="sql", kind="hosted", remote_id="ft:gpt:sql:x")
    a2 = create_version(
        store, base="tiny", name="support", kind="local", artifact_uri="/a/2",
        hyperparameters={"lora_r": 8}, metrics={"loss": 0.5}, dataset_sha256="ab" * 32,
    )
    assert (a1.version, b1.version, a2.version) == (1, 1, 2)
    assert a1.id.startswith("ft:tiny:support:") and a1.id != a2.id
    assert [v.ref for v in list_versions(store)] == ["sql@v1", "support@v1", "support@v2"]
    assert [v.ref for v in list_versions(store, "support")] == ["support@v1", "support@v2"]
    stored = get_version(store, a2.id)
    assert stored.hyperparameters == {"lora_r": 8} and stored.metrics == {"loss": 0.5}
    assert stored.dataset_sha256 == "ab" * 32


def test_aliases_move(store: Store) -> None:
    v1 = create_version(store, base="tiny", name="support", kind="local", artifact_uri="/a/1")
    v2 = create_version(store, base="tiny", name="support", kind="local", artifact_uri="/a/2")
    assert set_alias(store, "support@prod", "support@v1").id == v1.id
    assert get_version(store, "support@prod").id == v1.id
    set_alias(store, "support@prod", v2.id)
    assert get_version(store, "support@prod").id == v2.id
    assert [(a["name"], a["alias"], a["version_id"]) for a in list_aliases(store)] == [
        ("support", "prod", v2.id)
    ]


def test_bad_aliases(store: Store) -> None:
    create_version(store, base="tiny", name="support", kind="local")
    other = create_version(store, base="tiny", name="other", kind="local")
    with pytest.raises(GatewayError, match="an alias looks like NAME@ALIAS"):
        set_alias(store, "prod", "support@v1")
    with pytest.raises(GatewayError, match="v<N> is reserved"):
        set_alias(store, "support@v3", "support@v1")
    with pytest.raises(GatewayError, match=f"{other.id} is a version of 'other', not of 'support'"):
        set_alias(store, "support@prod", other.id)
    with pytest.raises(NotFoundError, match="unknown model version 'support@v9'"):
        set_alias(store, "support@prod", "support@v9")
    assert list_aliases(store) == []


def test_resolve_every_form(store: Store) -> None:
    v1 = create_version(store, base="tiny", name="support", kind="local", artifact_uri="/a/1")
    v2 = create_version(store, base="tiny", name="support", kind="local", artifact_uri="/a/2")
    hosted = create_version(
        store, base="gpt-mini", name="sql", kind="hosted", provider="openai", remote_id="ft:gpt:sql:x"
    )
    set_alias(store, "support@prod", v1.id)

    by_id = resolve(store, v2.id)
    assert (by_id.version_id, by_id.adapter_path, by_id.base_path) == (v2.id, "/a/2", "/models/tiny")
    assert by_id.adapter_name == v2.id and by_id.requested == v2.id
    assert resolve(store, "support@v1").version_id == v1.id
    assert resolve(store, "support@prod").version_id == v1.id
    assert resolve(store, "support").version_id == v2.id  # latest
    base = resolve(store, "tiny")
    assert (base.base, base.base_path, base.version_id, base.adapter_path) == (
        "tiny", "/models/tiny", None, None
    )
    remote = resolve(store, "sql@v1")
    assert (remote.version_id, remote.remote_id, remote.provider) == (
        hosted.id, "ft:gpt:sql:x", "openai"
    )
    assert remote.adapter_path is None and remote.base == "gpt-mini"


def test_unknown_model_error_names_what_exists(store: Store) -> None:
    create_version(store, base="tiny", name="support", kind="local")
    with pytest.raises(NotFoundError) as info:
        resolve(store, "supprt@v1")
    assert str(info.value) == (
        "the model 'supprt@v1' does not exist. Base models: gpt-mini, tiny; versions: support@v1"
    )
    with pytest.raises(NotFoundError, match="'support@staging' does not exist"):
        resolve(store, "support@staging")
