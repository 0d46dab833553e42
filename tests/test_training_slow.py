"""SmolLM2-135M: a few real LoRA steps, then plain peft loads the adapter and generates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.jobs import create_job, run_job
from gateway.registry import BaseModel, add_base_model, get_version
from gateway.store import Store


@pytest.mark.slow
def test_smollm2_adapter_trains_and_generates(
    gateway_home: Path, tmp_path: Path, smollm2_dir: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = load_config()
    store = Store(config.db_path)
    add_base_model(store, BaseModel(name="smollm2", source="path", path=str(smollm2_dir)))
    data = tmp_path / "capitals.jsonl"
    pairs = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
             ("Egypt", "Cairo"), ("Peru", "Lima"), ("Kenya", "Nairobi"), ("Chile", "Santiago"),
             ("Norway", "Oslo"), ("Cuba", "Havana")]
    data.write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": f"Capital of {c}?"},
                                 {"role": "assistant", "content": f"The capital of {c} is {p}."}]}) + "\n"
        for c, p in pairs
    ))
    job = create_job(config, store, trainer="local", base="smollm2", training_file=data,
                     suffix="capitals", hyperparameters={"max_steps": 3, "batch_size": 4,
                                                         "packing": True, "max_seq_len": 256})
    job = run_job(config, store, job.id)
    assert job.status == "succeeded", job.error
    version = get_version(store, "capitals@v1")
    assert version.metrics["steps"] == 3

    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_dir))
    base = AutoModelForCausalLM.from_pretrained(str(smollm2_dir), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, version.artifact_uri or "")
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Capital of France?"}], tokenize=False, add_generation_prompt=True
    )
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in text
