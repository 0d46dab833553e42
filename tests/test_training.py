"""The local LoRA trainer on the tiny model: masking, packing, a real run, the adapter."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.job_records import job_events
from gateway.jobs import create_job, run_job
from gateway.registry import BaseModel, add_base_model, get_version
from gateway.store import Store


def write_chat_file(path: Path, count: int = 24, seed: int = 0) -> Path:
    rnd = random.Random(seed)
    with path.open("w") as fh:
        for _ in range(count):
            a, b = rnd.randint(1, 40), rnd.randint(1, 40)
            messages = [
                {"role": "user", "content": f"What is {a} plus {b}?"},
                {"role": "assistant", "content": f"{a} plus {b} is {a + b}."},
            ]
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


@pytest.fixture
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def test_loss_mask_covers_exactly_the_weighted_assistant_content(tokenizer: Any) -> None:
    from gateway_local.training_data import IGNORE, tokenize_example

    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?", "weight": 0},
        {"role": "user", "content": "Say yes"},
        {"role": "assistant", "content": "Yes, certainly."},
    ]
    example = tokenize_example(tokenizer, messages)
    rendered = tokenizer.apply_chat_template(
        [{k: v for k, v in m.items() if k != "weight"} for m in messages], tokenize=False
    )
    assert tokenizer.decode(example.input_ids) == rendered
    labelled = [t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE]
    assert tokenizer.decode(labelled) == "Yes, certainly.<|im_end|>"
    # The labelled tokens are one contiguous run ending at that turn's <|im_end|>.
    positions = [i for i, label in enumerate(example.labels) if label != IGNORE]
    assert positions == list(range(positions[0], positions[-1] + 1))

    messages[2].pop("weight")
    both = tokenize_example(tokenizer, messages)
    labelled = [t for t, label in zip(both.input_ids, both.labels, strict=True) if label != IGNORE]
    assert tokenizer.decode(labelled) == "Hello! How can I help?<|im_end|>Yes, certainly.<|im_end|>"


def test_packing_keeps_examples_apart(tokenizer: Any, tiny_model_dir: Path) -> None:
    import torch
    from gateway_local.trainer import resolve
    from gateway_local.training_data import IGNORE, collate, pack, tokenize_example
    from gateway_local.training_loop import load_model, loss_sum

    examples = [
        tokenize_example(tokenizer, [{"role": "user", "content": f"Question {i}" * (i + 1)},
                                     {"role": "assistant", "content": f"Answer {i}" * (2 * i + 1)}])
        for i in range(5)
    ]
    rows = pack(examples, max_seq_len=max(len(e) for e in examples) * 2)
    assert len(rows) < len(examples)
    assert sum(len(r) for r in rows) == sum(len(e) for e in examples)
    for row in rows:
        starts = [i for i, p in enumerate(row.position_ids) if p == 0]
        assert all(row.labels[i] == IGNORE for i in starts)

    # Per-example attention: a packed batch gives the same summed loss as the
    # examples one by one.
    torch.manual_seed(0)
    model = load_model(str(tiny_model_dir), resolve({"lora_dropout": 0.0}), torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        packed_loss, packed_n = loss_sum(model, collate(rows, 0, packed=True), torch.device("cpu"))
        single = [loss_sum(model, collate([e], 0, packed=False), torch.device("cpu")) for e in examples]
    first_labels = sum(1 for e in examples if e.labels[1] != IGNORE)
    assert packed_n == sum(n for _, n in single) - first_labels
    assert float(packed_loss) == pytest.approx(sum(float(v) for v, _ in single), rel=1e-4)


def test_hyperparameters_are_checked(gateway_home: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    from gateway.errors import GatewayError

    config = load_config()
    store = Store(config.db_path)
    data = write_chat_file(tmp_path / "train.jsonl")
    with pytest.raises(GatewayError, match=r"unknown hyperparameter.*lora_rank"):
        create_job(config, store, trainer="local", base="tiny", training_file=data,
                   hyperparameters={"lora_rank": 4})
    with pytest.raises(GatewayError, match="batch_size must be positive"):
        create_job(config, store, trainer="local", base="tiny", training_file=data,
                   hyperparameters={"batch_size": 0})
    assert store.query("SELECT id FROM jobs") == []


def test_training_lowers_loss_and_adapter_loads_with_plain_peft(
    gateway_home: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    config = load_config()
    store = Store(config.db_path)
    add_base_model(store, BaseModel(name="tiny", source="path", path=str(tiny_model_dir)))
    data = write_chat_file(tmp_path / "train.jsonl")
    job = create_job(
        config, store, trainer="local", base="tiny", training_file=data, suffix="adder",
        hyperparameters={"max_steps": 24, "batch_size": 4, "learning_rate": 5e-3, "logging_steps": 1,
                         "lora_dropout": 0.0},
    )
    job = run_job(config, store, job.id)
    assert job.status == "succeeded", job.error

    losses = [e["data"]["loss"] for e in job_events(store, job.id) if e["type"] == "metrics"]
    assert len(losses) == 24
    assert losses[-1] < losses[0] - 0.3

    version = get_version(store, "adder@v1")
    adapter = Path(version.artifact_uri or "")
    assert adapter.parent == config.adapters_dir
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter.iterdir()}
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    assert not adapter_config.get("modules_to_save")
    assert adapter_config["r"] == 8
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    assert weights and all("lora_" in name for name in weights)

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(base, str(adapter))
        after = tuned(ids).logits
    assert not torch.allclose(before, after)


def write_tool_file(path: Path, count: int = 12) -> Path:
    from test_data import tool_example

    cities = ["Oslo", "Lima", "Paris", "Quito"]
    with path.open("w") as fh:
        for i in range(count):
            city = cities[i % len(cities)]
            example = tool_example(arguments=json.dumps({"city": city}))
            example["messages"][0]["content"] = f"Weather in {city}?"
            fh.write(json.dumps(example) + "\n")
    return path


def tool_model(tiny_model_dir: Path, folder: Path) -> Path:
    """The tiny model with a chat template that renders tools."""
    import shutil

    from tool_template import write_tool_template

    shutil.copytree(tiny_model_dir, folder)
    write_tool_template(folder / "chat_template.jinja")
    return folder


def test_tool_calls_carry_loss_when_the_template_renders_tools(tokenizer: Any, tmp_path: Path,
                                                               tiny_model_dir: Path) -> None:
    from gateway_local.training_data import IGNORE, load_dataset, tokenize_example
    from test_data import WEATHER_TOOL, tool_example
    from tool_template import TEMPLATE
    from transformers import AutoTokenizer

    from gateway.errors import GatewayError

    data = write_tool_file(tmp_path / "tools.jsonl")
    # SmolLM2's template ignores tools: training on them is refused, naming the template.
    with pytest.raises(GatewayError, match=r"line 1: the example has tools, but the chat template of "
                       r".*tiny-llama-v1 does not render them"):
        load_dataset(tokenizer, data, 512)
    tools = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    tools.chat_template = TEMPLATE
    example = tokenize_example(tools, tool_example()["messages"], [WEATHER_TOOL])
    labelled = tools.decode([t for t, label in zip(example.input_ids, example.labels, strict=True)
                             if label != IGNORE])
    # The call and the final answer are learned; the tool's result and the tools list are not.
    assert labelled == ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n'
                        "</tool_call><|im_end|>It is 3 degrees in Oslo.<|im_end|>")
    assert "get_weather" in tools.decode(example.input_ids[:60])
    assert len(load_dataset(tools, data, 512).examples) == 12


def test_a_tool_calling_file_trains_on_a_base_whose_template_renders_tools(
    gateway_home: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    config = load_config()
    store = Store(config.db_path)
    add_base_model(store, BaseModel(name="tiny-tools", source="path",
                                    path=str(tool_model(tiny_model_dir, tmp_path / "tiny-tools"))))
    job = create_job(config, store, trainer="local", base="tiny-tools", suffix="caller",
                     training_file=write_tool_file(tmp_path / "tools.jsonl"),
                     hyperparameters={"max_steps": 4, "batch_size": 4})
    job = run_job(config, store, job.id)
    assert job.status == "succeeded", job.error
    assert get_version(store, "caller@v1").artifact_uri
