"""Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.

Every failure the server answers goes through here, so no client ever sees a
bare 500 or an HTML page. Known exceptions map to their proper status; the
catch-all answers 500 in the same shape as a last resort.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.contracts import (
    BackendRateLimited,
    BackendRequestError,
    BackendUnavailable,
    UnsupportedParameter,
)
from gateway.errors import GatewayError, NotFoundError, PluginError, StoreError

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error answered to the client with `status` and OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")

    def body(self) -> dict[str, Any]:
        return {
            "error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        }

    def response(self) -> JSONResponse:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def model_not_found(model: str, detail: str = "") -> ApiError:
    """404 for an unknown model; `detail` (the registry's message) lists the known ones."""
    message = detail[:1].upper() + detail[1:] if detail else f"The model `{model}` does not exist."
    return ApiError(404, message, param="model", code="model_not_found")


def as_api_error(exc: BaseException, *, model: str | None = None) -> ApiError:
    """The ApiError a raised exception stands for."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        # Starlette's own refusals (a multipart body without a boundary) keep their status.
        return ApiError(exc.status_code, str(exc.detail))
    if isinstance(exc, BackendRateLimited):
        return ApiError(429, f"Rate limited by the provider: {exc}", code="rate_limit_exceeded",
                        retry_after=exc.retry_after)
    if isinstance(exc, BackendUnavailable):
        return ApiError(503, f"The backend is unavailable: {exc}", code="backend_unavailable",
                        retry_after=exc.retry_after)
    if isinstance(exc, UnsupportedParameter):
        return ApiError(400, str(exc), param=exc.param, code="unsupported_parameter")
    if isinstance(exc, BackendRequestError):
        return ApiError(400, str(exc), code="backend_rejected_request")
    if isinstance(exc, NotFoundError) and model is not None:
        return model_not_found(model, str(exc))
    if isinstance(exc, NotImplementedError):
        return ApiError(400, f"Not supported by this backend: {exc or 'operation not implemented'}")
    if isinstance(exc, PluginError):
        return ApiError(503, str(exc), code="gateway_unavailable")
    if isinstance(exc, StoreError) or type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb"):
        # Paths and SQL stay in the server's log; a conflict or a lock clears on retry.
        reference = _logged(exc)
        return ApiError(503, f"The gateway's store is busy or unavailable; retry shortly "
                        f"(reference {reference}).", code="store_unavailable", retry_after=1)
    if isinstance(exc, GatewayError):
        return ApiError(400, str(exc))
    # Last resort: keep the shape, say nothing of the internals (they go to the log).
    reference = _logged(exc)
    return ApiError(500, f"Internal error; the server log has the details (reference {reference}).",
                    code="internal_error")


def _logged(exc: BaseException) -> str:
    """Write the exception to the server's log under a short reference; return the reference."""
    import secrets

    reference = secrets.token_hex(4)
    print(f"gateway serve: [{reference}] {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    return reference


async def handle_api_error(request: Request, exc: Exception) -> Response:
    return as_api_error(exc).response()


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (unknown route, wrong method) in OpenAI's shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    elif exc.status_code == 405:
        message = f"Method {request.method} not allowed for {request.url.path}"
    else:
        message = str(exc.detail)
    error = ApiError(exc.status_code, message)
    response = error.response()
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    return as_api_error(exc).response()


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: handle_api_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
