"""The "local" serving backend: one base model in memory, many LoRA adapters.

Requests for the base model and for any loaded adapter share one batch (batched
LoRA, serving_lora.py); see scheduler.py for the batching and serving_batch.py
for the decode loop. This module only turns requests into token ids, hands them
to the worker thread and streams the results back to the event loop. It stays
free of module-level torch imports so that registering the plugin is cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from gateway.contracts import (
    AUTO,
    BackendContext,
    BackendRequestError,
    BackendUnavailable,
    BaseBackend,
    ChatRequest,
    CompletionRequest,
    Delta,
    Generation,
    ModelTarget,
    UnsupportedParameter,
    Usage,
    default_threads,
    dtype_reason,
    read_capabilities,
    resolve_dtype,
    threads_reason,
)

if TYPE_CHECKING:
    from gateway_local.grammars import Grammars
    from gateway_local.scheduler import Scheduler

DEFAULT_MAX_TOKENS = 1024
# The request parameters this backend honours (the gateway's own, and response_format).
HONOURED = ("max_tokens, temperature, top_p, stop, seed, n=1, stream, stream_options, "
            "response_format, logprobs, top_logprobs, echo, and tools with a named tool_choice")


class LocalBackend(BaseBackend):
    name: ClassVar[str] = "local"
    description: ClassVar[str] = (
        "transformers + peft on this machine: one base model, many LoRA adapters, "
        "continuous batching with mixed adapters"
    )

    def __init__(self, settings: dict[str, Any], context: BackendContext) -> None:
        super().__init__(settings, context)
        self.base = context.base
        # A registered base carries a local folder; otherwise the name may be a hub id.
        model = context.base_model
        self.model_path = str(context.base_path or settings.get("model")
                              or (model.hf_id if model else None) or self.base)
        self.max_batch_size = int(settings.get("max_batch_size", 16))
        self.max_wait_ms = float(settings.get("max_wait_ms", 10.0))
        self.max_adapters = int(settings.get("max_adapters", 8))
        # Requests waiting for a batch slot past this get 503 with Retry-After.
        self.max_queue = int(settings.get("max_queue", 256))
        # Seconds a request may take from submission to its last token.
        self.request_timeout = float(settings.get("request_timeout", 600.0))
        # "auto" (the default) becomes a concrete dtype at start(), from the hardware.
        self.configured_dtype = str(settings.get("dtype", AUTO))
        self.dtype = self.configured_dtype
        self.dtype_reason = ""
        self.device = settings.get("device")
        self.configured_threads = settings.get("threads")
        # Serving over HTTP keeps a core for the event loop; a batch command uses all.
        self.serving = context.serving
        self.threads = 0
        self.default_max_tokens = int(settings.get("default_max_tokens", DEFAULT_MAX_TOKENS))
        # A Jinja chat template file that replaces the model's own (as vLLM's --chat-template).
        self.chat_template = settings.get("chat_template")
        self.tokenizer: Any = None
        self.context_length = 0
        self._scheduler: Scheduler | None = None
        self.grammars: Grammars | None = None
        # Fast tokenizers are not safe to use from two threads at once.
        self._tokenizer_lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._scheduler is None:
            self._scheduler = await asyncio.to_thread(self._load)

    def _load(self) -> Scheduler:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from gateway_local.grammars import Grammars
        from gateway_local.scheduler import Scheduler

        caps = read_capabilities(torch)
        device = torch.device(self.device or ("cuda" if caps.cuda else "cpu"))
        try:
            self.dtype = resolve_dtype(self.configured_dtype, caps, device.type)
        except ValueError as exc:
            raise BackendRequestError(str(exc)) from exc
        self.dtype_reason = dtype_reason(caps, self.configured_dtype)
        self.threads = int(self.configured_threads or default_threads(self.serving))
        torch.set_num_threads(self.threads)
        print(f"local backend for {self.base}: device {device}, dtype {self.dtype} "
              f"({self.dtype_reason}), {self.threads} threads "
              f"({'set in the config' if self.configured_threads else threads_reason(self.serving)})",
              file=sys.stderr, flush=True)
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_path)
            model = AutoModelForCausalLM.from_pretrained(
                self.model_path, dtype=getattr(torch, self.dtype)
            )
        except (OSError, ValueError) as exc:
            raise BackendUnavailable(
                f"cannot load base model {self.base!r} from {self.model_path}: {exc}"
            ) from exc
        if self.chat_template:
            tokenizer.chat_template = _read_template(str(self.chat_template), self.base)
            tokenizer._gateway_template_file = str(self.chat_template)
        model.to(device).eval()
        config = model.config
        self.tokenizer = tokenizer
        self.context_length = int(
            getattr(config, "max_position_embeddings", 0) or tokenizer.model_max_length
        )
        eos_ids = _as_set(getattr(model.generation_config, "eos_token_id", None))
        eos_ids |= _as_set(tokenizer.eos_token_id)
        pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = min(eos_ids) if eos_ids else 0
        vocab = int(model.get_output_embeddings().weight.shape[0])
        self.grammars = Grammars(tokenizer, vocab, sorted(eos_ids))
        scheduler = Scheduler(
            model,
            device,
            eos_ids=eos_ids,
            pad_id=int(pad_id),
            max_batch_size=self.max_batch_size,
            max_wait_ms=self.max_wait_ms,
            max_adapters=self.max_adapters,
            max_queue=self.max_queue,
        )
        scheduler.start()
        return scheduler

    async def close(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            await asyncio.to_thread(scheduler.stop)

    def _running(self) -> Scheduler:
        if self._scheduler is None:
            raise BackendUnavailable(f"the local backend for {self.base!r} is not started")
        return self._scheduler

    # ------------------------------------------------------------ requests

    async def chat(self, request: ChatRequest) -> Generation:
        return await self._collect(request)

    async def complete(self, request: CompletionRequest) -> Generation:
        return await self._collect(request)

    async def _collect(self, request: ChatRequest | CompletionRequest) -> Generation:
        from gateway_local.logprobs import merge
        from gateway_local.tools import merge_calls

        parts: list[str] = []
        last = Delta(text="")
        logprobs: dict[str, Any] | None = None
        calls: list[dict[str, Any]] | None = None
        async for delta in self.stream(request):
            parts.append(delta.text)
            logprobs = merge(logprobs, delta.logprobs)
            calls = merge_calls(calls, delta.tool_calls)
            last = delta
        return Generation(
            text="".join(parts),
            finish_reason=last.finish_reason or "stop",
            usage=last.usage or Usage(),
            logprobs=logprobs,
            tool_calls=calls,
        )

    async def stream(self, request: ChatRequest | CompletionRequest) -> AsyncIterator[Delta]:
        from gateway_local.tools import arguments_format, as_tool_call, forced_function

        params = request.params
        if params.extra:
            name = sorted(params.extra)[0]
            raise UnsupportedParameter(
                name, f"'{name}' is not supported by the local backend (it honours {HONOURED}); "
                "serve this model on vLLM or a hosted backend for it, or leave it out")
        function = None
        if isinstance(request, ChatRequest) and params.tools:
            self._check_renders_tools()
            function = forced_function(params)
        deltas = self._generate(request, arguments_format(function) if function
                                else params.response_format)
        if function is not None:
            deltas = as_tool_call(function, deltas)
        # Closed at once when the client leaves, so its sequence stops costing compute.
        async with contextlib.aclosing(deltas):
            async for delta in deltas:
                yield delta

    def _check_renders_tools(self) -> None:
        from gateway_local.chat_prompt import renders_tools, template_source

        with self._tokenizer_lock:
            if renders_tools(self.tokenizer):
                return
            source = template_source(self.tokenizer, self.base)
        raise UnsupportedParameter(
            "tools", f"{source} does not render tools, so the model would never see them; "
            "set chat_template in this model's [backends] table to a Jinja template that does "
            "(as vLLM's --chat-template)")

    async def _generate(self, request: ChatRequest | CompletionRequest,
                        response_format: dict[str, Any] | None) -> AsyncGenerator[Delta]:
        from gateway_local.logprobs import shaper_for
        from gateway_local.serving_batch import Sequence
        from gateway_local.serving_text import IncrementalDecoder, LockedTokenizer

        scheduler = self._running()
        params = request.params
        matcher = await self._matcher(response_format)
        prompt_ids = self._encode(request)
        echo = isinstance(request, CompletionRequest) and params.echo
        max_new = 0 if echo and params.max_tokens == 0 else self._max_new_tokens(
            len(prompt_ids), params.max_tokens)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta | BaseException] = asyncio.Queue()

        def emit(item: Delta | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the caller's loop is gone: nobody is listening
                seq.cancelled = True

        target = request.target
        decoder = LockedTokenizer(self.tokenizer, self._tokenizer_lock)
        seq = Sequence(
            prompt_ids=prompt_ids,
            params=request.params,
            max_new_tokens=max_new,
            emit=emit,
            decoder=IncrementalDecoder(decoder),
            adapter_key=_adapter_key(target),
            adapter_path=target.adapter_path,
            matcher=matcher,
            shape_logprobs=shaper_for(request, decoder),
        )
        scheduler.submit(seq)
        deadline = loop.time() + self.request_timeout
        echoed = False
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), max(deadline - loop.time(), 0.0))
                except TimeoutError:
                    raise BackendUnavailable(
                        f"no answer within {self.request_timeout:g} s (request_timeout)",
                        retry_after=5.0) from None
                if isinstance(item, BaseException):
                    raise item
                if echo and not echoed:  # the first piece: the prompt, with its logprobs
                    assert isinstance(request, CompletionRequest)
                    prompt = request.prompt or decoder.decode(prompt_ids)
                    item.text, echoed = prompt + item.text, True
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            # A client that went away stops costing compute at the next step.
            seq.cancelled = True

    async def _matcher(self, response_format: dict[str, Any] | None) -> Any:
        """A fresh grammar matcher for `response_format`; None for plain text."""
        if response_format is None or response_format.get("type") == "text":
            return None
        grammars = self.grammars
        assert grammars is not None
        grammar = await asyncio.to_thread(grammars.compile, response_format)
        return None if grammar is None else grammars.matcher(grammar)

    def _encode(self, request: ChatRequest | CompletionRequest) -> list[int]:
        from gateway_local.chat_prompt import render, template_message

        with self._tokenizer_lock:
            if isinstance(request, ChatRequest):
                messages = [template_message(m, i) for i, m in enumerate(request.messages)]
                try:
                    text = render(self.tokenizer, messages, request.params.tools,
                                  generation_prompt=True)
                except Exception as exc:  # jinja errors, a tokenizer without a template
                    raise BackendRequestError(f"cannot apply the chat template: {exc}") from exc
                ids = self.tokenizer.encode(text, add_special_tokens=False)
            elif request.prompt_ids is not None:
                ids = request.prompt_ids
                vocab = len(self.tokenizer)
                if any(i >= vocab for i in ids):
                    raise UnsupportedParameter("prompt", f"a token id is past this model's "
                                               f"vocabulary of {vocab} tokens")
            else:
                ids = self.tokenizer.encode(request.prompt, add_special_tokens=True)
        if not ids:
            raise BackendRequestError("the prompt is empty")
        return [int(i) for i in ids]

    def _max_new_tokens(self, prompt_len: int, requested: int | None) -> int:
        room = self.context_length - prompt_len
        if room <= 0:
            raise BackendRequestError(
                f"the prompt has {prompt_len} tokens; this model's maximum context length "
                f"is {self.context_length} tokens"
            )
        if requested is None:
            return min(room, self.default_max_tokens)
        if requested < 1:
            raise BackendRequestError(f"max_tokens must be at least 1, got {requested}")
        if requested > room:
            raise BackendRequestError(
                f"max_tokens {requested} plus the prompt's {prompt_len} tokens exceed this "
                f"model's maximum context length of {self.context_length} tokens"
            )
        return requested

    # ------------------------------------------------------------ adapters, health

    async def load_adapter(self, target: ModelTarget) -> None:
        key = _adapter_key(target)
        if key is None or not target.adapter_path:
            raise BackendRequestError(f"{target.requested!r} has no adapter to load")
        scheduler = self._running()

        def load() -> None:
            busy = {s.adapter_key for s in scheduler.batch.rows if s.adapter_key}
            scheduler.adapters.ensure(key, target.adapter_path or "", busy)

        await asyncio.wrap_future(scheduler.call(load))

    async def unload_adapter(self, target: ModelTarget) -> None:
        key = _adapter_key(target)
        scheduler = self._running()

        def unload() -> None:
            if key is None or key not in scheduler.adapters.loaded:
                raise BackendRequestError(f"adapter {target.requested!r} is not loaded")
            if any(s.adapter_key == key for s in scheduler.batch.rows):
                raise BackendRequestError(
                    f"adapter {target.requested!r} is serving requests; try again when they finish"
                )
            scheduler.adapters.unload(key)

        await asyncio.wrap_future(scheduler.call(unload))

    async def health(self) -> dict[str, Any]:
        scheduler = self._running()
        stats = dict(scheduler.stats)
        steps = stats.pop("row_steps")
        return {
            "backend": self.name,
            "base": self.base,
            "device": str(scheduler.device),
            "dtype": self.dtype,
            "dtype_reason": self.dtype_reason,
            "threads": self.threads,
            "adapters": scheduler.adapters.names(),
            "max_adapters": scheduler.adapters.max_adapters,
            "adapter_evictions": scheduler.adapters.evictions,
            "queue_depth": scheduler.queue_depth(),
            "active": scheduler.active(),
            "max_batch_size": scheduler.max_batch_size,
            "mean_batch_size": round(steps / stats["steps"], 2) if stats["steps"] else 0.0,
            **stats,
        }


def _adapter_key(target: ModelTarget) -> str | None:
    if not target.adapter_path:
        return None
    return target.adapter_name or target.adapter_path


def _read_template(path: str, base: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise BackendUnavailable(f"cannot read the chat_template of {base!r} ({path}): "
                                 f"{exc.strerror or exc}") from exc


def _as_set(value: Any) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, (list, tuple, set)):
        return {int(v) for v in value}
    return {int(value)}
