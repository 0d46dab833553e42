"""Real LoRA adapters for tests: peft on every linear layer, random B so outputs change."""

from __future__ import annotations

from pathlib import Path


def make_lora_adapter(base_dir: Path, dest: Path, seed: int, r: int = 8) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear"))
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.2)
    peft_model.save_pretrained(dest)
    return dest
