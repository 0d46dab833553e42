"""Refuse cross-site and rebinding requests before any route runs (an ASGI middleware).

- `Host` must name this server: on a loopback bind the bound address,
  `localhost`, `127.0.0.1` or `[::1]` (a DNS-rebinding page sends its own name);
  on other binds any host, unless `[server] allowed_hosts` lists them.
- A state-changing request (POST, PUT, PATCH, DELETE) whose `Origin` is present
  and not in `[server] allowed_origins` is refused: browsers send Origin on
  cross-site requests, and the gateway sends no CORS headers, so no page can
  use it unless configured.
- A body must say what it is: `application/json` on the JSON routes,
  `multipart/form-data` on POST /v1/files. A `text/plain` form post, which a
  browser sends cross-site without asking, is refused.
- Bodies are bounded: `[server] max_body_mb` (default 16) on the JSON routes,
  `max_upload_mb` on POST /v1/files (413 past either), and a body that stops
  arriving for `read_timeout` seconds (default 30) ends the request with 408.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gateway.serving.errors import ApiError
from gateway.util import is_loopback

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "[::1]", "::1"}
MULTIPART_ROUTES = {"/v1/files"}


def host_name(header: str) -> str:
    """`example.com:8000` -> `example.com`; `[::1]:8000` -> `[::1]`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class BodyTooLarge(ApiError):
    """More body than the route's limit (413). An ApiError, so a route that maps its
    errors answers it as it is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes "
                         "([server] max_body_mb, max_upload_mb).", code="body_too_large")


class BodyTimeout(ApiError):
    """The client stopped sending its body (408)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"The request body stopped arriving for {seconds:g} s "
                         "([server] read_timeout).", code="request_timeout")


class RequestGuard:
    def __init__(self, app: ASGIApp, *, bind_host: str, allowed_hosts: list[str],
                 allowed_origins: list[str], max_body: int = 16 * 1024 * 1024,
                 max_upload: int = 512 * 1024 * 1024, read_timeout: float = 30.0) -> None:
        self.app = app
        self.max_body, self.max_upload, self.read_timeout = max_body, max_upload, read_timeout
        self.loopback = is_loopback(bind_host)
        names = {bind_host.lower(), f"[{bind_host.lower()}]"} if ":" in bind_host else {bind_host.lower()}
        self.hosts = (names | LOOPBACK_NAMES) if self.loopback else {h.lower() for h in allowed_hosts}
        self.origins = {o.rstrip("/").lower() for o in allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.check(scope)
        if problem is not None:
            response = problem.response()
            await response(scope, receive, send)
            return
        limit = self.body_limit(scope["path"])
        started = body_done = False
        received = 0

        async def bounded_receive() -> MutableMapping[str, Any]:
            nonlocal received, body_done
            if body_done:  # a route waiting for the client to leave waits without a deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except TimeoutError:
                raise BodyTimeout(self.read_timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                body_done = not message.get("more_body", False)
            return message

        async def tracking_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except (BodyTooLarge, BodyTimeout) as exc:  # raised where no route caught it
            if started:
                raise
            await exc.response()(scope, receive, send)

    def body_limit(self, path: str) -> int:
        """The most body bytes `path` takes (an upload's multipart envelope included)."""
        return self.max_upload + 64 * 1024 if path in MULTIPART_ROUTES else self.max_body

    def check(self, scope: Scope) -> ApiError | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = host_name(headers.get("host", ""))
        if self.hosts and host not in self.hosts:
            where = "this loopback server" if self.loopback else "[server] allowed_hosts"
            return ApiError(400, f"The Host header does not name {where}.", code="invalid_host")
        if scope["method"] not in STATE_CHANGING:
            return None
        origin = headers.get("origin")
        if origin is not None and origin.rstrip("/").lower() not in self.origins:
            return ApiError(403, "Cross-site requests are refused (the Origin is not in "
                            "[server] allowed_origins).", code="cross_site_request")
        declared = headers.get("content-length", "0")
        limit = self.body_limit(scope["path"])
        # POST /v1/files answers an oversized upload itself, naming max_upload_mb.
        if declared.isdigit() and int(declared) > limit and scope["path"] not in MULTIPART_ROUTES:
            return ApiError(413, f"The request body has {declared} bytes; the limit is {limit} "
                            "([server] max_body_mb, max_upload_mb).", code="body_too_large")
        has_body = declared not in ("", "0") or "transfer-encoding" in headers
        if has_body:
            kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            wanted = "multipart/form-data" if scope["path"] in MULTIPART_ROUTES else "application/json"
            if kind != wanted:
                return ApiError(415, f"This route takes Content-Type {wanted}, not {kind or 'none'}.",
                                code="unsupported_media_type")
        return None
