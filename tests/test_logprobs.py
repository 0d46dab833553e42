"""Log probabilities on a live `gateway serve` (local backend, tiny model, float32), through the
openai SDK: chat `logprobs`/`top_logprobs` streamed and not, completions `logprobs` with `echo`
and `max_tokens: 0`; the values equal a plain transformers + peft forward pass to 1e-4."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
from lora import make_lora_adapter
from servers import gateway_server

from gateway.registry import BaseModel, add_base_model, create_version
from gateway.store import Store

PROMPT = "Once upon a time there was a"


@dataclass
class Served:
    url: str
    model_dir: Path
    adapter: Path

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("logprobs")
    store = Store(home / "gateway.duckdb")
    add_base_model(store, BaseModel(name="tiny", source="path", path=str(tiny_model_dir)))
    adapter = make_lora_adapter(tiny_model_dir, home / "adapters" / "style", seed=5)
    create_version(store, base="tiny", name="style", kind="local", artifact_uri=str(adapter))
    (home / "config.toml").write_text('[backends.tiny]\nbackend = "local"\ndtype = "float32"\n')
    with gateway_server(home, startup_timeout=120) as url:
        yield Served(url, tiny_model_dir, adapter)


def reference_logprobs(served: Served, ids: list[int]) -> list[float]:
    """log p(ids[i] | ids[:i]) for i >= 1, from transformers + peft with the adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(served.model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(served.adapter)).eval()
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [float(logprobs[i - 1, ids[i]]) for i in range(1, len(ids))]


def test_echo_scores_the_prompt_like_transformers_and_peft(served: Served) -> None:
    from transformers import AutoTokenizer

    client = served.client()
    reply = client.completions.create(model="style", prompt=PROMPT, max_tokens=0, echo=True, logprobs=2)
    choice = reply.choices[0]
    assert choice.text == PROMPT and choice.finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 0
    assert choice.logprobs is not None and choice.logprobs.token_logprobs is not None
    served_values = choice.logprobs.token_logprobs
    assert served_values[0] is None  # the first token has nothing before it
    ids = AutoTokenizer.from_pretrained(served.model_dir).encode(PROMPT)
    expected = reference_logprobs(served, ids)
    assert len(served_values) == len(ids)
    assert max(abs(a - b) for a, b in zip(served_values[1:], expected, strict=True)) < 1e-4
    assert choice.logprobs.top_logprobs is not None and len(choice.logprobs.top_logprobs[1]) == 2
    assert choice.logprobs.text_offset is not None and choice.logprobs.text_offset[0] == 0


def test_generated_tokens_carry_logprobs_streamed_and_not(served: Served) -> None:
    client = served.client()
    question = [{"role": "user", "content": "Name a colour."}]
    reply = client.chat.completions.create(model="style", messages=question, max_tokens=6, temperature=0,
                                           logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and reply.usage is not None
    assert len(content) == reply.usage.completion_tokens == 6
    assert "".join(e.token for e in content) == reply.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob, abs=1e-5)
    chunks = client.chat.completions.create(model="style", messages=question, max_tokens=6, temperature=0,
                                            logprobs=True, top_logprobs=3, stream=True)
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs
                for e in c.choices[0].logprobs.content or []]
    assert [(e.token, round(e.logprob, 5)) for e in streamed] == \
        [(e.token, round(e.logprob, 5)) for e in content]
    plain = client.completions.create(model="style", prompt=PROMPT, max_tokens=4, temperature=0, logprobs=0)
    assert plain.choices[0].logprobs is not None and len(plain.choices[0].logprobs.tokens or []) == 4


def test_logprob_parameters_are_checked(served: Served) -> None:
    client = served.client()
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="tiny", prompt=PROMPT, max_tokens=0)
    assert info.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=2, top_logprobs=2)
    assert info.value.param == "top_logprobs"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=2, logprobs=True, top_logprobs=21)
    assert info.value.param == "top_logprobs"


def test_a_batch_of_prompts_text_or_token_ids_answers_one_choice_each(served: Served) -> None:
    from transformers import AutoTokenizer

    client = served.client()
    prompts = ["Once upon a time", "The capital of France is", "One, two, three,"]
    batch = client.completions.create(model="style", prompt=prompts, max_tokens=4, temperature=0)
    assert [c.index for c in batch.choices] == [0, 1, 2]
    alone = [client.completions.create(model="style", prompt=p, max_tokens=4, temperature=0)
             for p in prompts]
    assert [c.text for c in batch.choices] == [a.choices[0].text for a in alone]
    assert batch.usage is not None and batch.usage.completion_tokens == 12
    assert batch.usage.prompt_tokens == sum(a.usage.prompt_tokens for a in alone if a.usage)
    tokenizer = AutoTokenizer.from_pretrained(served.model_dir)
    ids = [tokenizer.encode(p) for p in prompts]
    by_ids = client.completions.create(model="style", prompt=ids, max_tokens=4, temperature=0)
    assert [c.text for c in by_ids.choices] == [c.text for c in batch.choices]
    one = client.completions.create(model="style", prompt=ids[0], max_tokens=4, temperature=0, echo=True)
    assert one.choices[0].text == prompts[0] + batch.choices[0].text
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="style", prompt=[[10**9]], max_tokens=2)
    assert info.value.param == "prompt" and "vocabulary" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="style", prompt=prompts, max_tokens=2, stream=True)
    assert info.value.param == "prompt"
