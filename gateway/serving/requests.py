"""The request bodies the routes accept, as pydantic models.

The routes validate with these models, and /openapi.json is generated from
them, so the document cannot drift from what the server checks. A validation
failure answers 400 in OpenAI's shape, with `param` naming the field
(`messages[0].content`) and a message written for people.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from pydantic_core import ErrorDetails

from gateway.serving.errors import ApiError

MAX_STOP = 4
# The longest `model` and stop string taken (they land in every log row).
MAX_NAME_CHARS = 256
MAX_STOP_CHARS = 256
# A 64-bit signed integer, as OpenAI's and vLLM's `seed` (torch takes no more).
SEED_RANGE = (-(2**63), 2**63 - 1)
# Integers past this are refused before any arithmetic on them.
MAX_INTEGER = 2**63 - 1
MAX_METADATA_PAIRS = 16
# The most prompts one /v1/completions request may batch.
MAX_PROMPTS = 64

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
StopText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STOP_CHARS)]
Count = Annotated[int, Field(ge=1, le=MAX_INTEGER)]


class Strict(BaseModel):
    # Strict: "1" is not an integer and true is not a number, as OpenAI answers. Fields
    # not declared are kept: they reach the backend, which passes them on or refuses them.
    model_config = ConfigDict(strict=True, extra="allow")


class TextPart(Strict):
    type: Literal["text"]
    text: str


FunctionName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]


class CalledFunction(Strict):
    name: FunctionName
    arguments: str  # JSON text, as the model wrote it


class ToolCall(Strict):
    id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
    type: Literal["function"]
    function: CalledFunction


class Message(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    # None only for an assistant turn (checked in `check_contents`).
    content: str | list[TextPart] | None = None
    tool_calls: Annotated[list[ToolCall], Field(min_length=1)] | None = None  # assistant only
    tool_call_id: str | None = None  # a tool message answers this call


class FunctionDefinition(Strict):
    name: FunctionName
    description: str | None = None
    # A JSON schema for the arguments (a backend that constrains to it checks and bounds it).
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Strict):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(Strict):
    name: FunctionName


class NamedToolChoice(Strict):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(Strict):
    include_usage: bool = False


class JsonSchemaFormat(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    description: str | None = None
    # The schema itself: checked, compiled and bounded by the backend that constrains to it.
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    strict: bool | None = None


class TextFormat(Strict):
    type: Literal["text"]


class JsonObjectFormat(Strict):
    type: Literal["json_object"]


class JsonSchemaResponseFormat(Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaResponseFormat,
                           Field(discriminator="type")]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]


class Sampling(Strict):
    """What chat and text completions share.

    The gateway reads the fields in INTERPRETED; every other parameter, declared
    below or not, is handed to the backend as sent (GenerationParams.extra)."""

    model: Name
    max_tokens: Count | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    stop: StopText | Annotated[list[StopText], Field(max_length=MAX_STOP)] | None = None
    seed: Annotated[int, Field(ge=SEED_RANGE[0], le=SEED_RANGE[1])] | None = None
    n: Annotated[int, Field(ge=1, le=1)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: Annotated[dict[str, Annotated[int, Field(ge=-100, le=100)]],
                          Field(max_length=300)] | None = None
    response_format: ResponseFormat | None = None


class ChatCompletionRequest(Sampling):
    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: Count | None = None
    metadata: Annotated[dict[str, Annotated[str, StringConstraints(max_length=512)]],
                        Field(max_length=MAX_METADATA_PAIRS)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    tools: Annotated[list[Tool], Field(min_length=1, max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None


TokenIds = Annotated[list[Annotated[int, Field(ge=0, le=2**31 - 1)]], Field(min_length=1)]


class CompletionRequest(Sampling):
    # A prompt, or a batch of them (each its own choice): text, or token ids, as OpenAI
    # and vLLM take them (lm-evaluation-harness sends batches of token-id lists).
    prompt: (str | Annotated[list[str], Field(min_length=1, max_length=MAX_PROMPTS)] | TokenIds
             | Annotated[list[TokenIds], Field(min_length=1, max_length=MAX_PROMPTS)])
    # 0 scores the prompt only (with echo): what loglikelihood evaluation sends.
    max_tokens: Annotated[int, Field(ge=0, le=MAX_INTEGER)] | None = None
    echo: bool | None = None
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None
    best_of: Annotated[int, Field(ge=1, le=20)] | None = None
    suffix: str | None = None


# The parameters the gateway itself reads, per route; the rest go to the backend as `extra`
# (so a chat-only parameter sent to /v1/completions is passed on or refused, never dropped).
SHARED = frozenset({
    "model", "max_tokens", "temperature", "top_p", "stop", "seed", "n", "stream",
    "stream_options", "response_format", "user", "logprobs",
})
INTERPRETED = {
    "chat": SHARED | {"messages", "max_completion_tokens", "metadata", "top_logprobs", "tools",
                      "tool_choice", "parallel_tool_calls"},
    "completions": SHARED | {"prompt", "echo"},
}


def extra_params(body: dict[str, Any], chat: bool) -> dict[str, Any]:
    """The parameters of `body` the gateway does not interpret (null ones are unset)."""
    read = INTERPRETED["chat" if chat else "completions"]
    return {name: value for name, value in body.items() if name not in read and value is not None}


class LoadAdapterRequest(Strict):
    lora_name: str
    lora_path: str | None = None


class UnloadAdapterRequest(Strict):
    lora_name: str


Auto = Literal["auto"]


class Hyperparameters(Strict):
    # Other keys are the trainer's own (max_steps, checkpoint_steps...), checked by it.
    n_epochs: Auto | Annotated[int, Field(ge=1)] | None = None
    batch_size: Auto | Annotated[int, Field(ge=1)] | None = None
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0)] | None = None


class Supervised(Strict):
    hyperparameters: Hyperparameters | None = None


class Method(Strict):
    type: str
    supervised: Supervised | None = None


class FineTuningJobRequest(Strict):
    model_config = ConfigDict(strict=True, extra="forbid")

    model: Name
    training_file: str
    validation_file: str | None = None
    suffix: Annotated[str, StringConstraints(max_length=64)] | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    metadata: Annotated[dict[str, str], Field(max_length=MAX_METADATA_PAIRS)] | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    integrations: list[Any] | None = None


# ---------------------------------------------------------------- errors

PROMPT_MESSAGE = (f"expected a string, a list of strings, a list of token ids or a list of "
                  f"token-id lists (at most {MAX_PROMPTS} prompts).")
# Messages for a field as a whole, whatever went wrong in it (paths with [] for indices).
FIELD_MESSAGES = {
    "stop": f"expected a string or a list of up to {MAX_STOP} non-empty strings of at most "
            f"{MAX_STOP_CHARS} characters.",
    "prompt": PROMPT_MESSAGE,
    "prompt[]": PROMPT_MESSAGE,
    "prompt[][]": PROMPT_MESSAGE,
    "messages": "expected a non-empty array of messages.",
    "messages[]": "expected an object.",
    "messages[].content": "expected a string or an array of text parts.",
    "messages[].content[]": "only text content parts are supported.",
    "messages[].content[].type": "only text content parts are supported.",
    "messages[].content[].text": "a text part needs a string `text`.",
    "messages[].tool_calls[].function.name": "a function name is 1 to 64 letters, digits, _ or -.",
    "tools[].function.name": "a function name is 1 to 64 letters, digits, _ or -.",
    "tool_choice": "expected \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                   "\"function\": {\"name\": ...}}.",
}
# What a field's upper bound means, said plainly.
LIMITS = {"n": "only n=1 is supported."}
# Ranged numbers read "between low and high", as before the models.
RANGES = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0)}
TYPE_MESSAGES = {
    "int_type": "expected an integer.",
    "int_from_float": "expected an integer.",
    "float_type": "expected a number.",
    "bool_type": "expected true or false.",
    "string_type": "expected a string.",
    "string_too_short": "expected a non-empty string.",
    "list_type": "expected an array.",
    "dict_type": "expected an object.",
    "model_type": "expected an object.",
    "model_attributes_type": "expected an object.",
}


def _param(loc: tuple[int | str, ...], body: Any) -> str:
    """The field path of `loc` in `body`, leaving out pydantic's union member tags."""
    path, value = "", body
    for index, part in enumerate(loc):
        if isinstance(part, int) and isinstance(value, list) and part < len(value):
            path, value = f"{path}[{part}]", value[part]
        elif isinstance(value, dict) and (part in value or index == len(loc) - 1):
            path = f"{path}.{part}" if path else str(part)
            value = value.get(part)
        # else: a union member's tag ("str", "list[TextPart]"), not a field
    return path


def _message(error: ErrorDetails, param: str) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "missing":
        return f"Missing required parameter: '{param}'."
    if kind == "extra_forbidden":
        return f"unknown parameter '{param}'"
    shape = re.sub(r"\[\d+\]", "[]", param)
    if shape in FIELD_MESSAGES:
        detail = FIELD_MESSAGES[shape]
    elif kind == "value_error":
        detail = str(ctx.get("error", error["msg"]))
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than") and shape in RANGES:
        low, high = RANGES[shape]
        detail = f"must be between {low:g} and {high:g}, got {error['input']}."
    elif kind == "greater_than_equal":
        detail = f"must be at least {ctx['ge']}, got {error['input']}."
    elif kind == "greater_than":
        detail = f"must be greater than {ctx['gt']}, got {error['input']}."
    elif kind == "less_than_equal" and shape in LIMITS:
        detail = LIMITS[shape]
    elif kind == "less_than_equal":
        detail = f"must be at most {ctx['le']}."
    elif kind == "string_too_long":
        detail = f"at most {ctx['max_length']} characters."
    elif kind == "too_long":
        detail = f"at most {ctx['max_length']} items."
    elif kind == "literal_error":
        detail = f"unknown value {error['input']!r}; expected {ctx.get('expected')}."
    else:
        detail = TYPE_MESSAGES.get(kind, error["msg"])
    return f"Invalid value for '{param}': {detail}"


RequestModel = TypeVar("RequestModel", bound=BaseModel)


def validate(model: type[RequestModel], body: dict[str, Any]) -> RequestModel:
    """`body` as `model`, or a 400 naming the most specific field that is wrong."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [(error, _param(error["loc"], body)) for error in exc.errors()]
        # Of a union's alternatives, the one that got deepest says most.
        error, param = max(errors, key=lambda pair: pair[1].count(".") + pair[1].count("["))
        if error["type"] == "literal_error" and param.endswith(".role"):
            raise ApiError(400, f"Invalid value for '{param}': unknown role {error['input']!r}.",
                           param=param) from None
        raise ApiError(400, _message(error, param), param=param or None) from None
