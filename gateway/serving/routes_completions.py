"""POST /v1/chat/completions and POST /v1/completions, plain and streamed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from gateway.contracts import (
    Backend,
    ChatRequest,
    CompletionRequest,
    Delta,
    Generation,
    ModelTarget,
    Usage,
)
from gateway.serving import shapes
from gateway.serving.calls import Call
from gateway.serving.errors import as_api_error
from gateway.serving.params import ParsedRequest, parse_request, read_json
from gateway.serving.state import server_state

CLIENT_CLOSED = 499


async def chat_completions(request: Request) -> Response:
    return await _generate(request, chat=True)


async def completions(request: Request) -> Response:
    return await _generate(request, chat=False)


async def _generate(request: Request, chat: bool) -> Response:
    state = server_state(request)
    call = Call(state, request.url.path)
    model: str | None = None
    try:
        key = await state.keys.check(request, "inference")
        call.row.key_id = key.id if key else None
        parsed = parse_request(await read_json(request), chat)
        model = call.row.model = parsed.model
        call.row.stream = parsed.stream
        call.row.user = parsed.user
        call.row.metadata = json.dumps(parsed.metadata) if parsed.metadata else None
        target = await state.resolver.resolve(parsed.model)
        call.metric_model = parsed.model
        call.row.model_version_id = target.version_id
        call.row.adapter = target.adapter_name
        call.row.backend = state.router.backend_name(target)
        backend = await state.router.backend_for(target)
        requests: list[ChatRequest | CompletionRequest]
        if chat:
            assert parsed.messages is not None
            requests = [ChatRequest(target, parsed.messages, parsed.params)]
        else:
            assert parsed.prompts is not None
            requests = [_completion_request(target, prompt, parsed) for prompt in parsed.prompts]
        if parsed.stream:
            return await _stream(call, backend, requests[0], parsed, chat)
        generations = await _unless_the_client_leaves(request, _answer_all(backend, requests))
        if generations is None:
            # Nobody is there to answer: the log says what the client got (nginx's 499).
            call.finish(CLIENT_CLOSED, "client closed the connection")
            return Response(status_code=CLIENT_CLOSED)
    except Exception as exc:
        error = as_api_error(exc, model=model)
        call.finish(error.status, error.message)
        return error.response()
    generation = generations[0]
    usage = Usage(sum(g.usage.prompt_tokens for g in generations),
                  sum(g.usage.completion_tokens for g in generations))
    costs = [g.cost for g in generations if g.cost is not None]
    generation.cost = sum(costs) if costs else None
    body = shapes.full_response(
        chat=chat,
        id=shapes.completion_id(chat),
        created=int(time.time()),
        model=parsed.model,
        text=generation.text,
        finish_reason=generation.finish_reason,
        usage=usage,
        logprobs=generation.logprobs,
        tool_calls=generation.tool_calls,
    )
    body["choices"][1:] = [shapes.text_choice(i, g) for i, g in enumerate(generations[1:], start=1)]
    generation.usage = usage
    call.finish(200, usage=generation.usage, cost=generation.cost)
    return JSONResponse(body)


def _completion_request(target: ModelTarget, prompt: str | list[int],
                        parsed: ParsedRequest) -> CompletionRequest:
    if isinstance(prompt, str):
        return CompletionRequest(target, prompt, parsed.params)
    return CompletionRequest(target, "", parsed.params, prompt_ids=prompt)


async def _answer_all(backend: Backend, requests: list[ChatRequest | CompletionRequest]) -> list[Generation]:
    """Every request's generation, in order; a batch of prompts is asked at once."""
    async def answer(item: ChatRequest | CompletionRequest) -> Generation:
        if isinstance(item, ChatRequest):
            return await backend.chat(item)
        return await backend.complete(item)

    return list(await asyncio.gather(*(answer(item) for item in requests)))


async def _client_left(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_the_client_leaves(
    request: Request, work: Awaitable[list[Generation]]
) -> list[Generation] | None:
    """`work`'s result, or None when the client disconnects first (the work is cancelled)."""
    task, left = asyncio.ensure_future(work), asyncio.ensure_future(_client_left(request))
    try:
        await asyncio.wait({task, left}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        left.cancel()
    if task.done():
        return task.result()
    task.cancel()
    return None


async def _stream(
    call: Call,
    backend: Backend,
    request: ChatRequest | CompletionRequest,
    parsed: ParsedRequest,
    chat: bool,
) -> Response:
    """Start the backend's stream; errors before its first piece keep their status."""
    deltas = aiter(backend.stream(request))
    first = await anext(deltas, None)
    call.ttft_s = time.perf_counter() - call.started
    return StreamingResponse(
        _events(call, deltas, first, parsed, chat),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    call: Call,
    deltas: AsyncIterator[Delta],
    first: Delta | None,
    parsed: ParsedRequest,
    chat: bool,
) -> AsyncIterator[bytes]:
    ident, created = shapes.completion_id(chat), int(time.time())

    def piece(text: str | None, finish_reason: str | None, first: bool = False,
              delta: Delta | None = None) -> bytes:
        return shapes.sse(
            shapes.chunk(
                chat=chat, id=ident, created=created, model=parsed.model, text=text,
                finish_reason=finish_reason, include_usage=parsed.include_usage, first=first,
                logprobs=delta.logprobs if delta else None,
                tool_calls=delta.tool_calls if delta else None,
            )
        )

    usage: Usage | None = None
    cost: float | None = None
    finish_reason = "stop"
    # Until the stream completes, the client is the one that left (nginx's 499).
    status, error = CLIENT_CLOSED, "client closed the connection"
    try:
        if chat:
            yield piece("", None, first=True)
        delta = first
        while delta is not None:
            if delta.text or delta.logprobs or delta.tool_calls:
                yield piece(delta.text if delta.text or not delta.tool_calls else None, None,
                            delta=delta)
            finish_reason = delta.finish_reason or finish_reason
            usage = delta.usage or usage
            cost = delta.cost if delta.cost is not None else cost
            delta = await anext(deltas, None)
        yield piece(None, finish_reason)
        if parsed.include_usage:
            yield shapes.sse(
                shapes.usage_chunk(
                    chat=chat, id=ident, created=created, model=parsed.model, usage=usage or Usage()
                )
            )
        yield shapes.SSE_DONE
        status, error = 200, ""
    except Exception as exc:
        # The status line is already sent: report the error as the last event.
        api_error = as_api_error(exc, model=parsed.model)
        status, error = api_error.status, api_error.message
        yield shapes.sse(api_error.body())
        yield shapes.SSE_DONE
    finally:
        # Log first: on a disconnect the task is cancelled and any await may raise.
        call.finish(status, error or None, usage, cost)
        close = getattr(deltas, "aclose", None)
        if close is not None:
            await close()

