"""POST /v1/load_lora_adapter and /v1/unload_lora_adapter, as vLLM answers them.

A registered adapter (by id, name@vN or alias) needs no path. A path-loaded
adapter is kept in the Router's runtime targets under its lora_name, on the
base its adapter_config.json names.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from gateway.audit import record
from gateway.contracts import ModelTarget
from gateway.errors import NotFoundError
from gateway.registry import list_base_models, resolve
from gateway.serving.adapters import check_adapter_path, choose_base
from gateway.serving.calls import Call, admin_call
from gateway.serving.errors import ApiError
from gateway.serving.params import read_json
from gateway.serving.requests import LoadAdapterRequest, UnloadAdapterRequest, validate
from gateway.serving.state import ServerState
from gateway.util import NAME_RE

# A registry name, or a version reference (`ft:<base>:<name>:<id>`, `NAME@ALIAS`).
ADAPTER_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$")


def _lora_name(body: dict[str, Any], model: type[LoadAdapterRequest | UnloadAdapterRequest]) -> str:
    name = validate(model, body).lora_name
    if not name.strip():
        raise ApiError(400, "Invalid value for 'lora_name': expected a non-empty string.", param="lora_name")
    if not ADAPTER_REF_RE.match(name):
        # Checked like registry names: no path pieces, control characters or huge strings
        # reach vLLM, the metric labels or the log.
        raise ApiError(400, "Invalid value for 'lora_name': use letters, digits, '.', '_', '-' "
                       "(a registered version may also be named by its id or NAME@ALIAS), at most "
                       "200 characters.", param="lora_name")
    return name


async def _registered(state: ServerState, name: str) -> ModelTarget | None:
    try:
        return await run_in_threadpool(resolve, state.store, name)
    except NotFoundError:
        return None


async def _path_target(state: ServerState, name: str, raw_path: object) -> ModelTarget:
    if not NAME_RE.match(name):
        raise ApiError(400, "Invalid value for 'lora_name': a new adapter's name uses letters, "
                       "digits, '.', '_' or '-' (at most 64 characters).", param="lora_name")
    if await _registered(state, name) is not None:
        raise ApiError(
            400,
            f"lora_name '{name}' already names a registered model; choose another name.",
            param="lora_name",
        )
    folder = check_adapter_path(raw_path, state.config.allowed_adapter_roots())
    base = choose_base(folder, await run_in_threadpool(list_base_models, state.store))
    return ModelTarget(
        requested=name, base=base.name, base_path=base.path, adapter_name=name, adapter_path=str(folder)
    )


async def _registry_adapter(state: ServerState, name: str) -> ModelTarget:
    target = await _registered(state, name)
    if target is None:
        raise ApiError(
            404,
            f"The lora adapter '{name}' cannot be found. Give lora_path to load one from disk.",
            param="lora_name",
            code="model_not_found",
        )
    if target.adapter_path is None:
        raise ApiError(400, f"'{name}' is not a LoRA adapter.", param="lora_name")
    return target


AdapterAction = Callable[[ServerState, Call, str, dict[str, Any]], Awaitable[None]]


async def _manage_adapter(
    request: Request, act: AdapterAction, done: str,
    model: type[LoadAdapterRequest | UnloadAdapterRequest],
) -> Response:
    """What both adapter routes share: the admin frame, the lora_name, vLLM's reply text."""
    async def work(state: ServerState, call: Call) -> Response:
        body = await read_json(request)
        name = call.row.model = call.row.adapter = _lora_name(body, model)
        await act(state, call, name, body)
        return PlainTextResponse(f"Success: LoRA adapter '{name}' {done} successfully.")

    return await admin_call(request, work)


async def _load(state: ServerState, call: Call, name: str, body: dict[str, Any]) -> None:
    raw_path = body.get("lora_path")
    if raw_path is None:
        target = await _registry_adapter(state, name)
        await _publish(state, call, name, target)
        await run_in_threadpool(record, state.store, "adapter.load", name, call.row.key_id,
                                version=target.version_id)
        return
    if name in state.router.runtime_targets or name in state.loading_adapters:
        raise ApiError(400, f"The lora adapter '{name}' has already been loaded.", param="lora_name")
    # Reserved before the first await: of two concurrent loads of one name, one wins and
    # the other gets 400, so the name never serves weights other than the recorded ones.
    state.loading_adapters.add(name)
    try:
        target = await _path_target(state, name, raw_path)
        await _publish(state, call, name, target)
        state.router.runtime_targets[name] = target
        state.resolver.forget(name)
    finally:
        state.loading_adapters.discard(name)
    await run_in_threadpool(record, state.store, "adapter.load", name, call.row.key_id,
                            path=target.adapter_path, base=target.base)


async def _publish(state: ServerState, call: Call, name: str, target: ModelTarget) -> None:
    # Named in metrics only once it resolved, so unknown names cannot grow the label set.
    call.metric_model = name
    call.row.backend = state.router.backend_name(target)
    backend = await state.router.backend_for(target)
    await backend.load_adapter(target)


async def _unload(state: ServerState, call: Call, name: str, body: dict[str, Any]) -> None:
    target = state.router.runtime_targets.get(name) or await _registry_adapter(state, name)
    call.metric_model = name
    call.row.backend = state.router.backend_name(target)
    backend = await state.router.backend_for(target)
    await backend.unload_adapter(target)
    if state.router.runtime_targets.pop(name, None) is not None:
        state.resolver.forget(name)
    await run_in_threadpool(record, state.store, "adapter.unload", name, call.row.key_id)


async def load_lora_adapter(request: Request) -> Response:
    return await _manage_adapter(request, _load, "added", LoadAdapterRequest)


async def unload_lora_adapter(request: Request) -> Response:
    return await _manage_adapter(request, _unload, "removed", UnloadAdapterRequest)
