"""OpenAI's Files API for fine-tuning data: /v1/files and /v1/files/{file_id}[/content].

Uploads are validated exactly as `gateway data validate` does (gateway/files.py)
and need a `fine-tune` (or `admin`) key whenever keys exist.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import NotFoundError, ValidationError
from gateway.files import (
    FileInUse,
    FileTooLarge,
    delete_file,
    file_content,
    get_file,
    list_files,
    store_file,
)
from gateway.serving.calls import Call, admin_call
from gateway.serving.errors import ApiError, as_api_error
from gateway.serving.state import ServerState

FINE_TUNE_SCOPE = "fine-tune"
# Room for the multipart envelope around the file itself.
ENVELOPE_BYTES = 64 * 1024


def _as_files_error(exc: BaseException) -> ApiError:
    if isinstance(exc, NotFoundError):
        return ApiError(404, str(exc), param="file_id", code="file_not_found")
    if isinstance(exc, FileInUse):
        return ApiError(409, str(exc), param="file_id", code="file_in_use")
    if isinstance(exc, FileTooLarge):
        return ApiError(413, str(exc), param="file", code="file_too_large")
    if isinstance(exc, ValidationError):
        return ApiError(400, str(exc), param="file", code="invalid_file")
    return as_api_error(exc)


async def create_file(request: Request) -> Response:
    async def work(state: ServerState, call: Call) -> Response:
        limit = state.config.server.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + ENVELOPE_BYTES:
            raise FileTooLarge(f"the upload has {declared} bytes; the limit is {limit} bytes "
                               "([server] max_upload_mb)")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(400, "POST /v1/files takes multipart/form-data with `file` and `purpose`.")
        async with request.form(max_files=1, max_fields=8) as form:
            upload, purpose = form.get("file"), form.get("purpose")
            if not isinstance(upload, UploadFile):
                raise ApiError(400, "Missing required parameter: 'file'.", param="file")
            if not isinstance(purpose, str) or not purpose:
                raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose")
            data = await upload.read(limit + 1)
            filename = upload.filename or "upload.jsonl"
        record = await run_in_threadpool(store_file, state.config, state.store, filename,
                                         purpose, data)
        return JSONResponse(record.as_openai())

    return await admin_call(request, work, _as_files_error, FINE_TUNE_SCOPE)


async def list_all(request: Request) -> Response:
    async def work(state: ServerState, call: Call) -> Response:
        purpose = request.query_params.get("purpose")
        records = await run_in_threadpool(list_files, state.store, purpose)
        return JSONResponse({"object": "list", "data": [r.as_openai() for r in records],
                             "has_more": False})

    return await admin_call(request, work, _as_files_error, FINE_TUNE_SCOPE)


async def retrieve(request: Request) -> Response:
    async def work(state: ServerState, call: Call) -> Response:
        record = await run_in_threadpool(get_file, state.store, request.path_params["file_id"])
        return JSONResponse(record.as_openai())

    return await admin_call(request, work, _as_files_error, FINE_TUNE_SCOPE)


async def content(request: Request) -> Response:
    async def work(state: ServerState, call: Call) -> Response:
        data = await run_in_threadpool(file_content, state.store, request.path_params["file_id"])
        return Response(data, media_type="application/jsonl")

    return await admin_call(request, work, _as_files_error, FINE_TUNE_SCOPE)


async def delete(request: Request) -> Response:
    async def work(state: ServerState, call: Call) -> Response:
        record = await run_in_threadpool(delete_file, state.store, request.path_params["file_id"])
        return JSONResponse({"id": record.id, "object": "file", "deleted": True})

    return await admin_call(request, work, _as_files_error, FINE_TUNE_SCOPE)
