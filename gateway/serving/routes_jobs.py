"""OpenAI's fine-tuning jobs API: /v1/fine_tuning/jobs and its cancel, events and checkpoints.

Creating a job stores it (gateway.fine_tuning); the server's job supervisor
(gateway.serving.supervisor) runs it in a worker process. These routes need a
`fine-tune` (or `admin`) key whenever keys exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.audit import record
from gateway.errors import GatewayError, NotFoundError
from gateway.fine_tuning import (
    FineTuningRequestError,
    ModelNotFound,
    checkpoint_objects,
    create_api_job,
    event_objects,
    job_object,
    page,
)
from gateway.job_records import get_job, list_jobs
from gateway.serving.calls import Call, admin_call
from gateway.serving.errors import ApiError, as_api_error, model_not_found
from gateway.serving.params import read_json
from gateway.serving.requests import FineTuningJobRequest, validate
from gateway.serving.state import ServerState

SCOPE = "fine-tune"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _as_jobs_error(exc: BaseException) -> ApiError:
    if isinstance(exc, ModelNotFound):
        return model_not_found("", str(exc))
    if isinstance(exc, NotFoundError):
        return ApiError(404, str(exc), param="fine_tuning_job_id", code="job_not_found")
    if isinstance(exc, FineTuningRequestError):
        return ApiError(400, str(exc), param=exc.param, code="invalid_request")
    if isinstance(exc, GatewayError) and not isinstance(exc, ApiError):
        return ApiError(400, str(exc))
    return as_api_error(exc)


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be an integer from 1 to {MAX_LIMIT}", param="limit")
    return int(raw)


async def _frame(request: Request, work: Callable[[ServerState, Call], Any]) -> Response:
    async def run(state: ServerState, call: Call) -> Response:
        return JSONResponse(await work(state, call))

    return await admin_call(request, run, _as_jobs_error, SCOPE)


async def create(request: Request) -> Response:
    async def work(state: ServerState, call: Call) -> dict[str, Any]:
        body = await read_json(request)
        validate(FineTuningJobRequest, body)  # the shape; create_api_job checks the meaning
        job = await run_in_threadpool(create_api_job, state.config, state.store, body)
        call.row.model = job.base
        await run_in_threadpool(record, state.store, "job.create", job.id, call.row.key_id,
                                model=job.base, trainer=job.trainer)
        state.jobs.wake()
        return await run_in_threadpool(job_object, job, state.store)

    return await _frame(request, work)


async def list_all(request: Request) -> Response:
    async def work(state: ServerState, call: Call) -> dict[str, Any]:
        limit, after = _limit(request), request.query_params.get("after")

        def listing() -> dict[str, Any]:
            jobs = list_jobs(state.store, limit + 1, after)
            items = [job_object(j, state.store) for j in jobs]
            return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}

        return await run_in_threadpool(listing)

    return await _frame(request, work)


def _job_route(build: Callable[[ServerState, Request, str, Call], Any]) -> Callable[[Request], Any]:
    async def route(request: Request) -> Response:
        async def work(state: ServerState, call: Call) -> Any:
            return await run_in_threadpool(build, state, request, request.path_params["job_id"], call)

        return await _frame(request, work)

    return route


def _retrieve(state: ServerState, request: Request, job_id: str, call: Call) -> dict[str, Any]:
    return job_object(get_job(state.store, job_id), state.store)


def _cancel(state: ServerState, request: Request, job_id: str, call: Call) -> dict[str, Any]:
    from gateway.jobs import cancel_job

    job = get_job(state.store, job_id)
    if job.status in ("succeeded", "failed", "cancelled"):
        raise ApiError(400, f"Job {job_id} has already {job.status}; it cannot be cancelled.",
                       param="fine_tuning_job_id", code="job_already_finished")
    cancelled = cancel_job(state.store, job_id, state.config)
    record(state.store, "job.cancel", job_id, call.row.key_id)
    return job_object(cancelled, state.store)


def _events(state: ServerState, request: Request, job_id: str, call: Call) -> dict[str, Any]:
    job = get_job(state.store, job_id)
    return page(event_objects(job, state.store), request.query_params.get("after"), _limit(request))


def _checkpoints(state: ServerState, request: Request, job_id: str, call: Call) -> dict[str, Any]:
    job = get_job(state.store, job_id)
    return page(checkpoint_objects(job, state.store), request.query_params.get("after"),
                _limit(request))


retrieve = _job_route(_retrieve)
cancel = _job_route(_cancel)
events = _job_route(_events)
checkpoints = _job_route(_checkpoints)
