"""One request's bookkeeping: its request-log row and its metrics, ended once."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from gateway.contracts import Usage
from gateway.serving.errors import ApiError, as_api_error
from gateway.serving.request_log import LogRow
from gateway.serving.state import ServerState, server_state

# The metrics label for requests whose model did not resolve: keeps a stream
# of unknown names from growing the label set without bound.
UNKNOWN_MODEL = "(unknown)"


@dataclass
class Call:
    state: ServerState
    route: str
    started: float = field(default_factory=time.perf_counter)
    row: LogRow = field(default_factory=LogRow)
    metric_model: str = UNKNOWN_MODEL
    ttft_s: float | None = None

    def finish(
        self, status: int, error: str | None = None, usage: Usage | None = None,
        cost: float | None = None,
    ) -> None:
        """Queue the log row and count the request."""
        latency = time.perf_counter() - self.started
        row = self.row
        row.route, row.status, row.error = self.route, status, error
        row.latency_ms = latency * 1000
        row.ttft_ms = self.ttft_s * 1000 if self.ttft_s is not None else None
        row.cost = cost
        if usage is not None:
            row.prompt_tokens, row.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        self.state.log.add(row)
        self.state.metrics.record(
            model=self.metric_model,
            route=self.route,
            status=status,
            latency_s=latency,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            ttft_s=self.ttft_s,
        )


async def admin_call(
    request: Request,
    work: Callable[[ServerState, Call], Awaitable[Response]],
    to_error: Callable[[BaseException], ApiError] = as_api_error,
    scope: str = "admin",
) -> Response:
    """A management route's frame: a key of `scope`, the request-log row, and every
    failure answered in OpenAI's shape (`to_error` maps the route's own errors)."""
    state = server_state(request)
    call = Call(state, request.url.path)
    try:
        key = await state.keys.check(request, scope)
        call.row.key_id = key.id if key else None
        response = await work(state, call)
    except Exception as exc:
        error = to_error(exc)
        call.finish(error.status, error.message)
        return error.response()
    call.finish(response.status_code)
    return response
