"""Base models, model versions (adapters and hosted fine-tunes) and aliases.

Naming:
- a version's immutable id is `ft:<base>:<name>:<short-id>`;
- people also write `name@vN`, a movable alias `name@prod`, or just `name`
  for its latest version;
- a base model is addressed by its registered name.
Every one of these resolves to a ModelTarget with `resolve()`.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from gateway.contracts import BaseModel, ModelTarget, ModelVersion
from gateway.errors import GatewayError, NotFoundError
from gateway.store import Store
from gateway.util import NAME_RE, utcnow

VERSION_REF_RE = re.compile(r"^(?P<name>[^@]+)@v(?P<version>\d+)$")


def validate_name(name: str, what: str = "name") -> str:
    if not NAME_RE.match(name):
        raise GatewayError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' or '-' (at most 64 characters)"
        )
    return name


def _version_from_row(row: dict[str, Any]) -> ModelVersion:
    data = dict(row)
    for key in ("hyperparameters", "metrics"):
        value = data.get(key)
        data[key] = json.loads(value) if isinstance(value, str) else (value or {})
    return ModelVersion(**data)


# ------------------------------------------------------------------ base models


def add_base_model(store: Store, model: BaseModel, replace: bool = False) -> BaseModel:
    validate_name(model.name, "model name")
    model.created = model.created or utcnow()
    with store.transaction() as con:
        exists = con.execute("SELECT 1 FROM base_models WHERE name = ?", [model.name]).fetchone()
        if exists and not replace:
            raise GatewayError(f"a base model named {model.name!r} already exists")
        if exists:
            con.execute("DELETE FROM base_models WHERE name = ?", [model.name])
        con.execute(
            """INSERT INTO base_models (name, source, path, hf_id, architecture, context_length,
               parameters, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                model.name, model.source, model.path, model.hf_id, model.architecture,
                model.context_length, model.parameters, model.created,
            ],
        )
    return model


def list_base_models(store: Store) -> list[BaseModel]:
    return [BaseModel(**r) for r in store.query("SELECT * FROM base_models ORDER BY name")]


def get_base_model(store: Store, name: str) -> BaseModel:
    row = store.query_one("SELECT * FROM base_models WHERE name = ?", [name])
    if row is None:
        known = ", ".join(m.name for m in list_base_models(store)) or "none yet"
        raise NotFoundError(
            f"unknown base model {name!r}. Known base models: {known}. "
            "Add one with `gateway models add` or `gateway models pull smollm2-135m`."
        )
    return BaseModel(**row)


# ------------------------------------------------------------------ versions


def create_version(
    store: Store,
    *,
    base: str,
    name: str,
    kind: str,
    **fields: Any,
) -> ModelVersion:
    """Store a new version of `name` (numbered after the last).

    Storage only: the host announces it (gateway.plugins.announce_version) once
    the job that made it has succeeded.
    """
    validate_name(name, "version name")
    short = secrets.token_hex(4)
    with store.transaction() as con:
        row = con.execute("SELECT max(version) FROM model_versions WHERE name = ?", [name]).fetchone()
        number = int(row[0] or 0) + 1 if row else 1
        version = ModelVersion(
            id=f"ft:{base}:{name}:{short}",
            name=name,
            version=number,
            base=base,
            kind=kind,
            created=utcnow(),
            **fields,
        )
        con.execute(
            """INSERT INTO model_versions (id, name, version, base, kind, provider, artifact_uri,
               remote_id, trainer, trainer_version, job_id, dataset_sha256, hyperparameters,
               metrics, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                version.id, version.name, version.version, version.base, version.kind,
                version.provider, version.artifact_uri, version.remote_id, version.trainer,
                version.trainer_version, version.job_id, version.dataset_sha256,
                json.dumps(version.hyperparameters), json.dumps(version.metrics), version.created,
            ],
        )
    return version


def list_versions(store: Store, name: str | None = None) -> list[ModelVersion]:
    if name:
        rows = store.query("SELECT * FROM model_versions WHERE name = ? ORDER BY version", [name])
    else:
        rows = store.query("SELECT * FROM model_versions ORDER BY name, version")
    return [_version_from_row(r) for r in rows]


def get_version(store: Store, ref: str) -> ModelVersion:
    """A version by id, `name@vN`, `name@alias` or `name` (its latest)."""
    row = store.query_one("SELECT * FROM model_versions WHERE id = ?", [ref])
    if row is None and (match := VERSION_REF_RE.match(ref)):
        row = store.query_one(
            "SELECT * FROM model_versions WHERE name = ? AND version = ?",
            [match["name"], int(match["version"])],
        )
    if row is None and "@" in ref:
        name, alias = ref.split("@", 1)
        row = store.query_one(
            """SELECT v.* FROM aliases a JOIN model_versions v ON v.id = a.version_id
               WHERE a.name = ? AND a.alias = ?""",
            [name, alias],
        )
    if row is None and "@" not in ref:
        row = store.query_one(
            "SELECT * FROM model_versions WHERE name = ? ORDER BY version DESC LIMIT 1", [ref]
        )
    if row is None:
        raise NotFoundError(f"unknown model version {ref!r}")
    return _version_from_row(row)


def set_alias(store: Store, alias_ref: str, version_ref: str) -> ModelVersion:
    """Point `name@alias` at a version of that name."""
    if "@" not in alias_ref:
        raise GatewayError(f"an alias looks like NAME@ALIAS, got {alias_ref!r}")
    name, alias = alias_ref.split("@", 1)
    if VERSION_REF_RE.match(alias_ref) or not alias:
        raise GatewayError(f"{alias!r} cannot be an alias name (v<N> is reserved for versions)")
    validate_name(alias, "alias")
    version = get_version(store, version_ref)
    if version.name != name:
        raise GatewayError(f"{version.id} is a version of {version.name!r}, not of {name!r}")
    with store.transaction() as con:
        con.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", [name, alias])
        con.execute("INSERT INTO aliases (name, alias, version_id, updated) VALUES (?, ?, ?, ?)",
                    [name, alias, version.id, utcnow()])
    return version


def list_aliases(store: Store) -> list[dict[str, Any]]:
    return store.query("SELECT name, alias, version_id, updated FROM aliases ORDER BY name, alias")


# ------------------------------------------------------------------ resolution


def resolve(store: Store, model: str) -> ModelTarget:
    """Turn whatever a user typed as `model` into a ModelTarget."""
    base_row = store.query_one("SELECT * FROM base_models WHERE name = ?", [model])
    if base_row is not None:
        return ModelTarget(requested=model, base=model, base_path=base_row["path"])
    try:
        version = get_version(store, model)
    except NotFoundError:
        known_bases = [m.name for m in list_base_models(store)]
        known_versions = sorted({v.ref for v in list_versions(store)})
        raise NotFoundError(
            f"the model {model!r} does not exist. Base models: {', '.join(known_bases) or 'none'}; "
            f"versions: {', '.join(known_versions[:20]) or 'none'}"
        ) from None
    base_path = None
    base_row = store.query_one("SELECT path FROM base_models WHERE name = ?", [version.base])
    if base_row is not None:
        base_path = base_row["path"]
    return ModelTarget(
        requested=model,
        base=version.base,
        base_path=base_path,
        version_id=version.id,
        adapter_name=version.id if version.kind == "local" else None,
        adapter_path=version.artifact_uri if version.kind == "local" else None,
        remote_id=version.remote_id,
        provider=version.provider,
    )
