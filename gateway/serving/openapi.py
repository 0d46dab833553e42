"""GET /openapi.json: the server's API, generated from the request and response models.

Request bodies come from `gateway.serving.requests`, the models the routes
validate with, so the document describes exactly what the server checks.
Every error answer has OpenAI's error shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.serving.requests import (
    ChatCompletionRequest,
    CompletionRequest,
    FineTuningJobRequest,
    LoadAdapterRequest,
    UnloadAdapterRequest,
)

# ---------------------------------------------------------------- response models


class Open(BaseModel):
    # Responses may carry more fields than documented (backends add their own).
    model_config = ConfigDict(extra="allow")


class ErrorDetail(Open):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(Open):
    error: ErrorDetail


class Usage(Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(Open):
    role: Literal["assistant"]
    content: str | None


class ChatChoice(Open):
    index: int
    message: AssistantMessage
    finish_reason: str | None


class ChatCompletion(Open):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class TextChoice(Open):
    index: int
    text: str
    finish_reason: str | None


class TextCompletion(Open):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage


class ModelEntry(Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(Open):
    object: Literal["list"]
    data: list[ModelEntry]


class Listing(Open):
    object: Literal["list"]
    data: list[dict[str, Any]]


class FineTuningJob(Open):
    id: str
    object: Literal["fine_tuning.job"]
    model: str
    status: str
    created_at: int


class FileObject(Open):
    id: str
    object: Literal["file"]
    bytes: int
    filename: str
    purpose: str


class Status(Open):
    status: str


# ---------------------------------------------------------------- operations


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    # The key scope the route needs when keys exist; None: public.
    scope: str | None = "inference"
    stream: bool = False
    multipart: bool = False
    path_params: tuple[str, ...] = ()
    query: tuple[str, ...] = ()


OPERATIONS = [
    Operation("/health", "get", "Liveness: the process answers.", response=Status, scope=None),
    Operation("/ready", "get", "Readiness: 503 until the configured models have loaded.",
              response=Status, scope=None),
    Operation("/status", "get", "Backends, adapters, queues and dtype.", response=Status),
    Operation("/metrics", "get", "Prometheus metrics (public when `public_metrics` is set)."),
    Operation("/v1/models", "get", "Base models, versions and loaded adapters.", response=ModelList),
    Operation("/v1/chat/completions", "post", "Chat completion, streamed or not.",
              ChatCompletionRequest, ChatCompletion, stream=True),
    Operation("/v1/completions", "post", "Text completion, streamed or not.",
              CompletionRequest, TextCompletion, stream=True),
    Operation("/v1/load_lora_adapter", "post", "Load an adapter (vLLM's route).",
              LoadAdapterRequest, scope="admin"),
    Operation("/v1/unload_lora_adapter", "post", "Unload an adapter (vLLM's route).",
              UnloadAdapterRequest, scope="admin"),
    Operation("/v1/files", "post", "Upload a fine-tuning file (multipart: file, purpose).",
              response=FileObject, scope="fine-tune", multipart=True),
    Operation("/v1/files", "get", "List uploaded files.", response=Listing, scope="fine-tune"),
    Operation("/v1/files/{file_id}", "get", "A file's object.", response=FileObject,
              scope="fine-tune", path_params=("file_id",)),
    Operation("/v1/files/{file_id}", "delete", "Delete a file no job uses.", scope="fine-tune",
              path_params=("file_id",)),
    Operation("/v1/files/{file_id}/content", "get", "A file's content.", scope="fine-tune",
              path_params=("file_id",)),
    Operation("/v1/fine_tuning/jobs", "post", "Create a fine-tuning job.", FineTuningJobRequest,
              FineTuningJob, scope="fine-tune"),
    Operation("/v1/fine_tuning/jobs", "get", "List jobs, newest first.", response=Listing,
              scope="fine-tune", query=("after", "limit")),
    Operation("/v1/fine_tuning/jobs/{job_id}", "get", "A job.", response=FineTuningJob,
              scope="fine-tune", path_params=("job_id",)),
    Operation("/v1/fine_tuning/jobs/{job_id}/cancel", "post", "Cancel a job.",
              response=FineTuningJob, scope="fine-tune", path_params=("job_id",)),
    Operation("/v1/fine_tuning/jobs/{job_id}/events", "get", "A job's events, newest first.",
              response=Listing, scope="fine-tune", path_params=("job_id",), query=("after", "limit")),
    Operation("/v1/fine_tuning/jobs/{job_id}/checkpoints", "get", "A job's checkpoints.",
              response=Listing, scope="fine-tune", path_params=("job_id",), query=("after", "limit")),
]

REF = "#/components/schemas/{model}"


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    found = model.model_json_schema(ref_template=REF)
    schemas.update(found.pop("$defs", {}))
    schemas[model.__name__] = found
    return {"$ref": REF.format(model=model.__name__)}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    found = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
             for name in op.path_params]
    for name in op.query:
        schema = {"type": "integer", "minimum": 1, "maximum": 100} if name == "limit" else {"type": "string"}
        found.append({"name": name, "in": "query", "required": False, "schema": schema})
    return found


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    error = {"description": "An error, in OpenAI's shape.",
             "content": {"application/json": {"schema": _schema(ErrorResponse, schemas)}}}
    ok: dict[str, Any] = {"description": "Success."}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": _schema(op.response, schemas)}}
        if op.stream:
            # Each server-sent event: a chunk as JSON in `data`, then `data: [DONE]`.
            ok["content"]["text/event-stream"] = {"schema": {
                "type": "object", "required": ["data"],
                "properties": {"data": {"type": "string"}, "event": {"type": "string"}}}}
    body: dict[str, Any] = {"summary": op.summary, "responses": {"200": ok, "default": error}}
    if op.request is not None:
        body["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _schema(op.request, schemas)}}}
    if op.multipart:
        body["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file", "purpose"],
            "properties": {"file": {"type": "string", "format": "binary"},
                           "purpose": {"type": "string", "enum": ["fine-tune"]}}}}}}
    if op.scope is not None:
        body["security"] = [{"bearer": []}, {}]
        body["description"] = (f"Needs a key with the `{op.scope}` scope when keys exist "
                               "(always, on a bind beyond loopback).")
    parameters = _parameters(op)
    if parameters:
        body["parameters"] = parameters
    return body


@cache
def document() -> dict[str, Any]:
    from gateway import __version__

    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "finetune-gateway", "version": __version__,
                 "description": "OpenAI-compatible serving, adapters and fine-tuning jobs."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
    }


async def openapi(request: Request) -> Response:
    return JSONResponse(document())
