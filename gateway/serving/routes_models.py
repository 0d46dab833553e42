"""GET /v1/models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.registry import list_aliases, list_base_models, list_versions
from gateway.serving.calls import Call
from gateway.serving.errors import as_api_error
from gateway.serving.state import server_state
from gateway.store import Store

OWNER = "gateway"


def _epoch(value: datetime | None) -> int:
    if value is None:
        return 0
    return int(value.replace(tzinfo=UTC).timestamp())


def _entry(id: str, created: int, root: str, parent: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "id": id, "object": "model", "created": created, "owned_by": OWNER,
        "root": root, "parent": parent, **extra,
    }


def registry_models(store: Store) -> list[dict[str, Any]]:
    """Base models, then every version, then aliases, in OpenAI's model shape.

    A version's `parent` is its base (as vLLM lists adapters), `root` the base
    it ultimately runs on; an alias adds the version it points at.
    """
    data = [_entry(b.name, _epoch(b.created), b.name, None) for b in list_base_models(store)]
    versions = {v.id: v for v in list_versions(store)}
    for v in versions.values():
        data.append(_entry(v.id, _epoch(v.created), v.base, v.base, version=v.ref))
    for alias in list_aliases(store):
        target = versions.get(alias["version_id"])
        if target is None:
            continue
        data.append(
            _entry(f"{alias['name']}@{alias['alias']}", _epoch(alias["updated"]), target.base,
                   target.base, version=target.id)
        )
    return data


async def list_models(request: Request) -> Response:
    state = server_state(request)
    call = Call(state, request.url.path, metric_model="")
    try:
        key = await state.keys.check(request, "inference")
        call.row.key_id = key.id if key else None
        data = await run_in_threadpool(registry_models, state.store)
    except Exception as exc:
        error = as_api_error(exc)
        call.finish(error.status, error.message)
        return error.response()
    known = {entry["id"] for entry in data}
    extra = {**state.router.configured_hosted_models(), **state.router.runtime_targets}
    for name, target in extra.items():
        if name not in known:
            data.append(_entry(name, 0, target.base, target.base))
    call.finish(200)
    return JSONResponse({"object": "list", "data": data})
