"""A naive OpenAI-compatible server: the baseline for benchmarks/serve_throughput.py.

What a first attempt at "serve my LoRA adapters" looks like: plain transformers
+ peft, every adapter loaded into one PeftModel, one request at a time,
`set_adapter` between requests and `generate()` for each.

    python benchmarks/naive_server.py --model DIR --served-model-name smollm2 \\
        --adapter a1=/path/to/a1 --adapter a2=/path/to/a2 --port 8101

Routes: GET /health, GET /v1/models, POST /v1/chat/completions, POST /v1/completions
(no streaming).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import torch
import uvicorn
from peft import PeftModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from transformers import AutoModelForCausalLM, AutoTokenizer


class NaiveEngine:
    def __init__(self, model_dir: str, adapters: dict[str, str], dtype: str) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
        for i, (name, path) in enumerate(adapters.items()):
            if i == 0:
                model = PeftModel.from_pretrained(model, path, adapter_name=name)
            else:
                model.load_adapter(path, adapter_name=name)
        self.model = model.eval()
        self.adapters = set(adapters)
        self.lock = asyncio.Lock()

    def generate(self, adapter: str | None, prompt_ids: list[int], body: dict[str, Any]) -> tuple[str, int, str]:
        max_new = int(body.get("max_tokens") or 256)
        temperature = float(body.get("temperature", 1.0))
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": temperature > 0}
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=float(body.get("top_p", 1.0)))
        ids = torch.tensor([prompt_ids])
        with torch.inference_mode():
            if adapter is None and isinstance(self.model, PeftModel):
                with self.model.disable_adapter():
                    out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
            else:
                if adapter is not None:
                    self.model.set_adapter(adapter)
                out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        new = out[0, len(prompt_ids):].tolist()
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        finish = "length" if len(new) >= max_new else "stop"
        return text, len(new), finish


def build_app(engine: NaiveEngine, served_name: str) -> Starlette:
    def adapter_for(model: str) -> str | None:
        if model == served_name:
            return None
        if model in engine.adapters:
            return model
        raise KeyError(model)

    async def run(request: Request, chat: bool) -> JSONResponse:
        body = await request.json()
        try:
            adapter = adapter_for(str(body.get("model")))
        except KeyError:
            return JSONResponse({"error": {"message": f"unknown model {body.get('model')!r}"}}, 404)
        if chat:
            text = engine.tokenizer.apply_chat_template(
                body["messages"], add_generation_prompt=True, tokenize=False
            )
            prompt_ids = engine.tokenizer.encode(text, add_special_tokens=False)
        else:
            prompt_ids = engine.tokenizer.encode(body["prompt"])
        async with engine.lock:  # one request at a time
            text, n, finish = await asyncio.to_thread(engine.generate, adapter, prompt_ids, body)
        usage = {"prompt_tokens": len(prompt_ids), "completion_tokens": n,
                 "total_tokens": len(prompt_ids) + n}
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return JSONResponse({
            "id": f"naive-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [choice],
            "usage": usage,
        })

    async def chat_completions(request: Request) -> JSONResponse:
        return await run(request, chat=True)

    async def completions(request: Request) -> JSONResponse:
        return await run(request, chat=False)

    async def models(request: Request) -> JSONResponse:
        names = [served_name, *sorted(engine.adapters)]
        return JSONResponse({"object": "list", "data": [
            {"id": n, "object": "model", "owned_by": "naive"} for n in names]})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[
        Route("/health", health),
        Route("/v1/models", models),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Hugging Face model folder")
    parser.add_argument("--served-model-name", default="base")
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--dtype", default="float32", help="the compute dtype (serve_throughput.py passes its own)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    adapters = dict(item.split("=", 1) for item in args.adapter)
    engine = NaiveEngine(args.model, adapters, args.dtype)
    uvicorn.run(build_app(engine, args.served_model_name), host=args.host, port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
