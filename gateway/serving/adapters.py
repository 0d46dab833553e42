"""Which adapter folders a client may load, and which base model each one is for.

A path is resolved (following every symlink) and must land inside one of the
allowed adapter roots; so must each file in the folder, so a symlinked weight
file cannot point elsewhere either.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.contracts import BaseModel
from gateway.serving.errors import ApiError

ADAPTER_CONFIG = "adapter_config.json"


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def check_adapter_path(raw: object, roots: list[Path]) -> Path:
    """The resolved adapter folder for `raw`, or an ApiError (400, or 403 outside the roots)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ApiError(400, "Invalid value for 'lora_path': expected a non-empty string.", param="lora_path")
    roots = [root.resolve() for root in roots]
    resolved = Path(raw).expanduser().resolve()
    if not _inside(resolved, roots):
        raise ApiError(
            403,
            f"lora_path {raw!r} resolves to {resolved}, outside the allowed adapter roots "
            f"({', '.join(str(r) for r in roots)}). Add a root with `adapter_roots` in config.toml.",
            param="lora_path",
            code="adapter_path_not_allowed",
        )
    if not resolved.is_dir():
        raise ApiError(400, f"lora_path {raw!r} is not a folder.", param="lora_path")
    for entry in resolved.iterdir():
        if not _inside(entry.resolve(), roots):
            raise ApiError(
                403,
                f"{entry.name} in lora_path {raw!r} links outside the allowed adapter roots.",
                param="lora_path",
                code="adapter_path_not_allowed",
            )
    if not (resolved / ADAPTER_CONFIG).is_file():
        raise ApiError(400, f"lora_path {raw!r} has no {ADAPTER_CONFIG}; is it a LoRA adapter?", param="lora_path")
    return resolved


def _same_path(a: str, b: str | None) -> bool:
    if not b:
        return False
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, ValueError):
        return False


def adapter_base_name(adapter_dir: Path) -> str | None:
    """The base model an adapter says it was trained on (base_model_name_or_path)."""
    path = adapter_dir / ADAPTER_CONFIG
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"cannot read {path.name} in the adapter folder: {exc}", param="lora_path") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"{path.name} in the adapter folder is not a JSON object.", param="lora_path")
    value = data.get("base_model_name_or_path")
    return str(value) if value else None


def choose_base(adapter_dir: Path, bases: list[BaseModel]) -> BaseModel:
    """The registered base model the adapter belongs to.

    Matched by name, hub id or folder against the adapter's
    base_model_name_or_path; failing that, the only registered base.
    """
    wanted = adapter_base_name(adapter_dir)
    if wanted:
        for base in bases:
            if wanted in (base.name, base.hf_id) or _same_path(wanted, base.path):
                return base
    if len(bases) == 1:
        return bases[0]
    known = ", ".join(b.name for b in bases) or "none"
    said = f"names base model {wanted!r}, which matches" if wanted else "names no base model and matches"
    raise ApiError(
        400,
        f"The adapter's {ADAPTER_CONFIG} {said} none of the registered base models ({known}). "
        "Register its base with `gateway models add`.",
        param="lora_path",
    )
