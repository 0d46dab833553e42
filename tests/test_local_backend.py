"""The local serving backend on real tiny models and real peft adapters.

Reference outputs come from plain transformers + peft `generate(do_sample=False)`;
the backend must match them token for token, alone and inside mixed batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from gateway_local.backend import LocalBackend  # noqa: E402
from gateway_local.serving_text import IncrementalDecoder, StopMatcher  # noqa: E402

from gateway.contracts import (  # noqa: E402
    BackendRequestError,
    BackendUnavailable,
    ChatRequest,
    CompletionRequest,
    Delta,
    Generation,
    GenerationParams,
    ModelTarget,
)
from gateway.testing import backend_context  # noqa: E402

T = TypeVar("T")

PROMPTS = [
    "The capital of France is",
    "Once upon a time",
    "1, 2, 3,",
    "Write a haiku about the sea.",
]


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def make_adapter(base_dir: Path, dest: Path, seed: int, rank: int = 8, alpha: int = 16,
                 modules: str | list[str] = "all-linear") -> Path:
    """A LoRA adapter (every linear layer by default), with random B so that it changes outputs."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=modules)
    peft_model = get_peft_model(model, config)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.2)
    peft_model.save_pretrained(dest)
    return dest


@pytest.fixture(scope="module")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {name: make_adapter(tiny_model_dir, root / name, seed) for seed, name in
            enumerate(["a1", "a2", "a3"], start=1)}


class Reference:
    """Plain transformers + peft generation, one prompt at a time."""

    def __init__(self, base_dir: Path, dtype: str = "float32") -> None:
        from transformers import AutoTokenizer

        self.base_dir = base_dir
        self.dtype = getattr(torch, dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(base_dir)
        self._models: dict[str | None, Any] = {}

    def model(self, adapter: Path | None) -> Any:
        key = str(adapter) if adapter else None
        if key not in self._models:
            from peft import PeftModel
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(self.base_dir, dtype=self.dtype)
            if adapter is not None:
                model = PeftModel.from_pretrained(model, str(adapter))
            self._models[key] = model.eval()
        return self._models[key]

    def chat_ids(self, messages: list[dict[str, Any]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def generate(self, adapter: Path | None, ids: list[int], max_new_tokens: int) -> str:
        input_ids = torch.tensor([ids])
        with torch.inference_mode():
            out = self.model(adapter).generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=False,
                max_new_tokens=max_new_tokens,
            )
        return str(self.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True,
                                         clean_up_tokenization_spaces=False))

    def complete(self, adapter: Path | None, prompt: str, max_new_tokens: int) -> str:
        return self.generate(adapter, list(self.tokenizer.encode(prompt)), max_new_tokens)


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path) -> Reference:
    return Reference(tiny_model_dir)


def target(adapter: Path | None = None, base: str = "tiny") -> ModelTarget:
    if adapter is None:
        return ModelTarget(requested=base, base=base)
    return ModelTarget(
        requested=f"{base}-{adapter.name}",
        base=base,
        version_id=f"ft:{base}:{adapter.name}:0001",
        adapter_name=f"ft:{base}:{adapter.name}:0001",
        adapter_path=str(adapter),
    )


def greedy(max_tokens: int, **kwargs: Any) -> GenerationParams:
    return GenerationParams(max_tokens=max_tokens, temperature=0.0, **kwargs)


@pytest.fixture
def with_backend(tiny_model_dir: Path) -> Iterator[Callable[..., Any]]:
    """`with_backend(fn, **settings)` runs `await fn(backend)` on a started backend, then closes it."""

    def call(fn: Callable[[LocalBackend], Awaitable[T]], **settings: Any) -> T:
        async def main() -> T:
            backend = LocalBackend({"dtype": "float32", **settings},
                                   backend_context("tiny", tiny_model_dir))
            await backend.start()
            try:
                return await fn(backend)
            finally:
                await backend.close()

        return run(main())

    yield call


# ---------------------------------------------------------------- parity


def test_greedy_parity_with_peft_generate(
    with_backend: Callable[..., Any], adapters: dict[str, Path], reference: Reference
) -> None:
    choices: list[Path | None] = [None, adapters["a1"], adapters["a2"]]
    messages = [{"role": "user", "content": "What is the capital of France?"}]

    async def body(backend: LocalBackend) -> list[tuple[str, str]]:
        got = []
        for adapter in choices:
            for prompt in PROMPTS[:2]:
                gen = await backend.complete(CompletionRequest(target(adapter), prompt, greedy(24)))
                got.append((gen.text, reference.complete(adapter, prompt, 24)))
            gen = await backend.chat(ChatRequest(target(adapter), messages, greedy(24)))
            got.append((gen.text, reference.generate(adapter, reference.chat_ids(messages), 24)))
        return got

    pairs = with_backend(body)
    for got, want in pairs:
        assert got == want
    # The adapters really change what the model says.
    base_text, a1_text, a2_text = pairs[0][1], pairs[3][1], pairs[6][1]
    assert len({base_text, a1_text, a2_text}) == 3


def test_concurrent_mixed_adapter_requests_equal_sequential(
    with_backend: Callable[..., Any], adapters: dict[str, Path]
) -> None:
    choices: list[Path | None] = [None, adapters["a1"], adapters["a2"]]
    requests = [
        CompletionRequest(target(choices[i % 3]), PROMPTS[i % 4] + " " * (i // 4), greedy(8 + i))
        for i in range(16)
    ]

    async def body(backend: LocalBackend) -> tuple[list[Generation], list[Generation], Any]:
        sequential = [await backend.complete(r) for r in requests]
        concurrent = await asyncio.gather(*(backend.complete(r) for r in requests))
        return sequential, list(concurrent), await backend.health()

    sequential, concurrent, health = with_backend(body, max_wait_ms=200)
    assert [g.text for g in concurrent] == [g.text for g in sequential]
    assert [g.usage.completion_tokens for g in concurrent] == [8 + i for i in range(16)]
    assert all(g.finish_reason == "length" for g in concurrent)
    # The concurrent ones really ran together, mixed adapters in one batch.
    assert health["max_rows"] == 16
    assert health["requests"] == 32


def test_late_arrivals_join_a_running_batch(
    with_backend: Callable[..., Any], adapters: dict[str, Path], reference: Reference
) -> None:
    async def body(backend: LocalBackend) -> tuple[list[Generation], Any]:
        long_request = CompletionRequest(target(adapters["a1"]), PROMPTS[0], greedy(120))
        first = asyncio.ensure_future(backend.complete(long_request))
        while (await backend.health())["steps"] < 5:
            await asyncio.sleep(0.005)
        late = [
            CompletionRequest(target(None), "A much longer prompt than the first one, with many words", greedy(10)),
            CompletionRequest(target(adapters["a2"]), PROMPTS[2], greedy(10)),
        ]
        results = await asyncio.gather(first, *(backend.complete(r) for r in late))
        return list(results), await backend.health()

    results, health = with_backend(body)
    assert health["prefills"] >= 2 and health["max_rows"] >= 3
    assert results[0].text == reference.complete(adapters["a1"], PROMPTS[0], 120)
    assert results[1].text == reference.complete(
        None, "A much longer prompt than the first one, with many words", 10
    )
    assert results[2].text == reference.complete(adapters["a2"], PROMPTS[2], 10)


# ---------------------------------------------------------------- streaming and limits


def test_stream_concatenates_to_text_and_ends_with_usage(
    with_backend: Callable[..., Any], adapters: dict[str, Path]
) -> None:
    request = ChatRequest(
        target(adapters["a1"]), [{"role": "user", "content": "Tell me a story."}], greedy(30)
    )

    async def body(backend: LocalBackend) -> tuple[list[Delta], Generation]:
        deltas = [d async for d in backend.stream(request)]
        return deltas, await backend.chat(request)

    deltas, whole = with_backend(body)
    assert "".join(d.text for d in deltas) == whole.text
    assert len(deltas) > 5
    assert all(d.finish_reason is None and d.usage is None for d in deltas[:-1])
    last = deltas[-1]
    assert last.finish_reason == "length"
    assert last.usage is not None and last.usage.completion_tokens == 30
    assert last.usage.prompt_tokens == whole.usage.prompt_tokens > 0


def test_stop_strings_cut_the_output(with_backend: Callable[..., Any]) -> None:
    async def body(backend: LocalBackend) -> tuple[Generation, Generation, list[Delta], str]:
        free = await backend.complete(CompletionRequest(target(), PROMPTS[1], greedy(40)))
        stop = free.text[12:16]
        params = greedy(40, stop=[stop, "never-appears"])
        cut = await backend.complete(CompletionRequest(target(), PROMPTS[1], params))
        deltas = [d async for d in backend.stream(CompletionRequest(target(), PROMPTS[1], params))]
        return free, cut, deltas, stop

    free, cut, deltas, stop = with_backend(body)
    assert stop and stop.strip()
    assert cut.text == free.text[: free.text.find(stop)]
    assert cut.finish_reason == "stop"
    assert cut.usage.completion_tokens < 40
    assert "".join(d.text for d in deltas) == cut.text
    assert deltas[-1].finish_reason == "stop"


def test_max_tokens_finishes_with_length(with_backend: Callable[..., Any]) -> None:
    async def body(backend: LocalBackend) -> Generation:
        return await backend.complete(CompletionRequest(target(), PROMPTS[0], greedy(5)))

    gen = with_backend(body)
    assert gen.finish_reason == "length"
    assert gen.usage.completion_tokens == 5


def test_too_long_requests_are_refused(with_backend: Callable[..., Any]) -> None:
    async def body(backend: LocalBackend) -> list[str]:
        errors = []
        for params in (greedy(0), greedy(5000)):
            with pytest.raises(BackendRequestError) as info:
                await backend.complete(CompletionRequest(target(), PROMPTS[0], params))
            errors.append(str(info.value))
        return errors

    small, large = with_backend(body)
    assert "at least 1" in small
    assert "maximum context length of 2048" in large


def test_seeded_sampling_is_reproducible(with_backend: Callable[..., Any]) -> None:
    def params(seed: int) -> GenerationParams:
        return GenerationParams(max_tokens=20, temperature=1.0, top_p=0.9, seed=seed)

    async def body(backend: LocalBackend) -> list[str]:
        requests = [CompletionRequest(target(), PROMPTS[0], params(s)) for s in (7, 7, 8)]
        return [g.text for g in await asyncio.gather(*(backend.complete(r) for r in requests))]

    first, again, other = with_backend(body)
    assert first == again
    assert first != other


def test_a_failing_request_never_stops_the_worker(with_backend: Callable[..., Any]) -> None:
    """A seed torch cannot take fails that request alone; the next one is answered."""
    bad = GenerationParams(max_tokens=4, temperature=1.0, seed=2**64)

    async def body(backend: LocalBackend) -> tuple[BaseException | None, str]:
        failure: BaseException | None = None
        try:
            await asyncio.wait_for(backend.complete(CompletionRequest(target(), PROMPTS[0], bad)), 30)
        except BackendRequestError as exc:
            failure = exc
        after = await asyncio.wait_for(backend.complete(CompletionRequest(target(), PROMPTS[0], greedy(4))), 30)
        return failure, after.text

    failure, text = with_backend(body)
    assert failure is not None and "Overflow" in str(failure)
    assert text


def test_the_queue_is_bounded_and_requests_have_a_deadline(with_backend: Callable[..., Any]) -> None:
    async def body(backend: LocalBackend) -> tuple[list[Any], Any]:
        requests = [backend.complete(CompletionRequest(target(), PROMPTS[0], greedy(64))) for _ in range(12)]
        results = await asyncio.gather(*requests, return_exceptions=True)
        timed: Any = None
        backend.request_timeout = 0.001
        try:
            await backend.complete(CompletionRequest(target(), PROMPTS[0], greedy(64)))
        except BackendUnavailable as exc:
            timed = exc
        return results, timed

    results, timed = with_backend(body, max_queue=2, max_batch_size=1, max_wait_ms=0)
    full = [r for r in results if isinstance(r, BackendUnavailable)]
    assert full and all(r.retry_after == 1.0 and "queue is full" in str(r) for r in full)
    assert any(not isinstance(r, BaseException) for r in results)
    assert timed is not None and "request_timeout" in str(timed)


# ---------------------------------------------------------------- adapters


def test_lru_eviction_keeps_max_adapters(
    with_backend: Callable[..., Any], adapters: dict[str, Path], reference: Reference
) -> None:
    async def body(backend: LocalBackend) -> tuple[list[Any], str]:
        seen = []
        for name in ("a1", "a2", "a1", "a3"):
            await backend.complete(CompletionRequest(target(adapters[name]), PROMPTS[0], greedy(4)))
            seen.append(await backend.health())
        # a2 was evicted (least recently used); it loads again on use and still answers right.
        again = await backend.complete(CompletionRequest(target(adapters["a2"]), PROMPTS[3], greedy(12)))
        seen.append(await backend.health())
        return seen, again.text

    seen, text = with_backend(body, max_adapters=2)
    assert seen[1]["adapters"] == ["ft:tiny:a1:0001", "ft:tiny:a2:0001"]
    assert seen[3]["adapters"] == ["ft:tiny:a1:0001", "ft:tiny:a3:0001"]
    assert seen[3]["adapter_evictions"] == 1
    assert seen[4]["adapters"] == ["ft:tiny:a3:0001", "ft:tiny:a2:0001"]
    assert text == reference.complete(adapters["a2"], PROMPTS[3], 12)


def test_load_and_unload_adapter(
    with_backend: Callable[..., Any], adapters: dict[str, Path], reference: Reference
) -> None:
    a1 = target(adapters["a1"])

    async def body(backend: LocalBackend) -> tuple[list[list[str]], str, str]:
        states = []
        await backend.load_adapter(a1)
        states.append((await backend.health())["adapters"])
        await backend.unload_adapter(a1)
        states.append((await backend.health())["adapters"])
        with pytest.raises(BackendRequestError, match="not loaded"):
            await backend.unload_adapter(a1)
        base = await backend.complete(CompletionRequest(target(), PROMPTS[0], greedy(12)))
        tuned = await backend.complete(CompletionRequest(a1, PROMPTS[0], greedy(12)))
        return states, base.text, tuned.text

    states, base_text, tuned_text = with_backend(body)
    assert states == [["ft:tiny:a1:0001"], []]
    # After the last adapter is gone the base still answers as the base, and a1 reloads on use.
    assert base_text == reference.complete(None, PROMPTS[0], 12)
    assert tuned_text == reference.complete(adapters["a1"], PROMPTS[0], 12)


def test_batched_lora_matches_peft_for_mixed_ranks(
    tiny_model_dir: Path, tmp_path: Path, reference: Reference
) -> None:
    """3 adapters (ranks 8, 4 and 16; the first on attention only) and the base in one batch."""
    from gateway_local.serving_adapters import BASE_ADAPTER, AdapterSet
    from gateway_local.serving_batch import Batch, Sequence
    from transformers import AutoModelForCausalLM

    made = [
        # First, so that slot 0 is missing from the MLP layers' tables.
        make_adapter(tiny_model_dir, tmp_path / "r8", 12, rank=8, alpha=8,
                     modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
        make_adapter(tiny_model_dir, tmp_path / "r4", 11, rank=4, alpha=12),
        make_adapter(tiny_model_dir, tmp_path / "r16", 13, rank=16, alpha=32),
    ]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    adapter_set = AdapterSet(model, max_adapters=4)
    names = {path: adapter_set.ensure(str(path), str(path), set()) for path in made}
    choices: list[Path | None] = [None, made[0], made[1], made[2], made[1], None, made[2]]

    def run_batch() -> tuple[list[list[int]], Any, Any]:
        prompts = [list(reference.tokenizer.encode(PROMPTS[i % 4] + " ok" * i))
                   for i in range(len(choices))]
        seqs = [Sequence(prompt_ids=ids, params=greedy(6), max_new_tokens=6, emit=lambda d: None,
                         decoder=IncrementalDecoder(reference.tokenizer),
                         adapter_name=names[c] if c else BASE_ADAPTER)
                for ids, c in zip(prompts, choices, strict=True)]
        batch = Batch(torch.device("cpu"), 0)
        with torch.inference_mode():
            ours = batch.add(adapter_set, seqs)
            # peft's own mixed-adapter forward on the same padded batch, for the logits.
            adapter_set.lora.deactivate()
            width = max(len(ids) for ids in prompts)
            ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
            peft_logits = adapter_set.model(
                input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                adapter_names=[s.adapter_name for s in seqs],
            ).logits[:, -1, :]
            tokens = [[t] for t in ours.argmax(-1).tolist()]
            batch.set_next(seqs, [t[0] for t in tokens])
            for _ in range(5):
                step = batch.step(adapter_set).argmax(-1).tolist()
                for row, token in zip(tokens, step, strict=True):
                    row.append(token)
                batch.set_next(seqs, step)
        want = [reference.generate(c, p, 6) for c, p in zip(choices, prompts, strict=True)]
        got = [str(reference.tokenizer.decode(t, skip_special_tokens=True,
                                              clean_up_tokenization_spaces=False)) for t in tokens]
        assert got == want
        return tokens, ours, peft_logits

    tokens, ours, peft_logits = run_batch()
    torch.testing.assert_close(ours, peft_logits, rtol=1e-4, atol=1e-4)
    assert len({tuple(t) for t in tokens}) >= 4  # the adapters really differ
    # Unloading the middle slot and loading another rebuilds the tables in the new order.
    adapter_set.unload(str(made[1]))
    again = make_adapter(tiny_model_dir, tmp_path / "r8b", 14, rank=8, alpha=16)
    names[again] = adapter_set.ensure(str(again), str(again), set())
    choices = [again if c == made[1] else c for c in choices]
    tokens, ours, peft_logits = run_batch()
    torch.testing.assert_close(ours, peft_logits, rtol=1e-4, atol=1e-4)


def test_bad_adapter_path_names_the_path(
    with_backend: Callable[..., Any], tmp_path: Path, adapters: dict[str, Path]
) -> None:
    missing = tmp_path / "no-such-adapter"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')

    async def body(backend: LocalBackend) -> tuple[list[str], str]:
        messages = []
        with pytest.raises(BackendRequestError) as info:
            await backend.load_adapter(target(missing))
        messages.append(str(info.value))
        with pytest.raises(BackendRequestError) as info:
            await backend.complete(CompletionRequest(target(missing), PROMPTS[0], greedy(4)))
        messages.append(str(info.value))
        with pytest.raises(BackendRequestError) as info:
            await backend.complete(CompletionRequest(target(broken), PROMPTS[0], greedy(4)))
        messages.append(str(info.value))
        # The backend keeps serving good adapters after the failures.
        ok = await backend.complete(CompletionRequest(target(adapters["a1"]), PROMPTS[0], greedy(4)))
        return messages, ok.finish_reason

    messages, finish = with_backend(body)
    assert str(missing) in messages[0] and str(missing) in messages[1]
    assert str(broken) in messages[2]
    assert finish == "length"


def test_registered_as_the_local_backend(gateway_home: Path) -> None:
    from gateway.contracts import Backend
    from gateway.plugins import get_backend_class

    cls = get_backend_class("local")
    assert cls is LocalBackend
    assert isinstance(LocalBackend({}, backend_context("x")), Backend)


# ---------------------------------------------------------------- text pieces


def test_incremental_decoding_never_splits_characters(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "Zürich → 東京 costs 💶 5, naïve café 🎉!"
    ids = tokenizer.encode(text, add_special_tokens=False)
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push(i) for i in ids] + [decoder.flush()]
    assert "".join(pieces) == tokenizer.decode(ids)
    assert not any("\ufffd" in p for p in pieces)
    assert len([p for p in pieces if p]) > 5


def test_stop_matcher_holds_back_partial_stops() -> None:
    matcher = StopMatcher(["END", "\n\n"])
    out = [matcher.feed(p) for p in ["abc E", "N", "x E", "ND more"]]
    assert out == ["abc ", "", "ENx ", ""]
    assert matcher.stopped
    open_ended = StopMatcher(["END"])
    assert open_ended.feed("tail E") == "tail "
    assert open_ended.flush() == "E"


# ---------------------------------------------------------------- realistic


@pytest.mark.slow
def test_smollm2_with_one_adapter(smollm2_dir: Path, tmp_path: Path) -> None:
    adapter = make_adapter(smollm2_dir, tmp_path / "support", seed=5)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    base_request = ChatRequest(target(base="smollm2"), messages, greedy(12))
    tuned_request = ChatRequest(target(adapter, "smollm2"), messages, greedy(12))

    backend = LocalBackend({}, backend_context("smollm2", smollm2_dir))

    async def main() -> tuple[list[Generation], list[Generation], list[Delta]]:
        await backend.start()
        try:
            alone = [await backend.chat(base_request), await backend.chat(tuned_request)]
            mixed = await asyncio.gather(backend.chat(base_request), backend.chat(tuned_request))
            deltas = [d async for d in backend.stream(base_request)]
            return alone, list(mixed), deltas
        finally:
            await backend.close()

    (base, tuned), mixed, deltas = run(main())
    # The dtype follows the machine (bfloat16 with native bf16, else float32); the
    # reference computes in the same one.
    ref = Reference(smollm2_dir, dtype=backend.dtype)
    # Alone, each request matches plain generate() token for token.
    assert base.text == ref.generate(None, ref.chat_ids(messages), 12)
    assert tuned.text == ref.generate(adapter, ref.chat_ids(messages), 12)
    assert "Paris" in base.text and tuned.text != base.text
    # Mixed in one batch, the LoRA output is added in the batch's dtype, so only the base row is pinned.
    assert "Paris" in mixed[0].text and mixed[1].usage.completion_tokens > 0
    assert "".join(d.text for d in deltas) == base.text
