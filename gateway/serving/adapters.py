"""Which adapter folders a client may load, and which base model each one is for.

A path is resolved (following every symlink) and must land inside one of the
allowed adapter roots; so must every file below it, subfolders included, so a
symlinked weight file cannot point elsewhere either. A file with more than one
hard link is refused too: a link made inside a root may name a file outside.
Errors name the problem, never the resolved path or the roots (those go to the
server's log).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gateway.confinement import escape_reason, inside
from gateway.contracts import BaseModel
from gateway.serving.errors import ApiError

ADAPTER_CONFIG = "adapter_config.json"
MAX_PATH_CHARS = 4096
MAX_COMPONENT_BYTES = 255
MAX_CONFIG_BYTES = 1024 * 1024


def _refused(raw: str, why: str, detail: str) -> ApiError:
    print(f"gateway serve: lora_path {raw!r} refused: {detail}", file=sys.stderr, flush=True)
    return ApiError(403, f"lora_path {why}. Add a root with `adapter_roots` in config.toml.",
                    param="lora_path", code="adapter_path_not_allowed")


def _well_formed(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ApiError(400, "Invalid value for 'lora_path': expected a non-empty string.", param="lora_path")
    problem = None
    if len(raw) > MAX_PATH_CHARS:
        problem = f"longer than {MAX_PATH_CHARS} characters"
    elif "\x00" in raw:
        problem = "contains a NUL byte"
    else:
        try:
            parts = [p.encode("utf-8") for p in raw.split("/")]
        except UnicodeEncodeError:
            problem = "is not valid UTF-8"
        else:
            if any(len(p) > MAX_COMPONENT_BYTES for p in parts):
                problem = f"has a component longer than {MAX_COMPONENT_BYTES} bytes"
    if problem:
        raise ApiError(400, f"Invalid value for 'lora_path': the path {problem}.", param="lora_path")
    return raw


def check_adapter_path(raw: object, roots: list[Path]) -> Path:
    """The resolved adapter folder for `raw`, or an ApiError (400, or 403 outside the roots).

    Backends repeat the confinement part (gateway.contracts.escape_reason)
    where they read the path again, such as vLLM publishing it after a restart."""
    path = _well_formed(raw)
    roots = [root.resolve() for root in roots]
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, an unreadable parent
        raise ApiError(400, "Invalid value for 'lora_path': it cannot be resolved (a symlink "
                       "loop, or a missing or unreadable folder).", param="lora_path") from exc
    if not inside(resolved, roots):
        raise _refused(path, "is outside the allowed adapter roots", f"resolves to {resolved}")
    if not resolved.is_dir():
        raise ApiError(400, "lora_path is not a folder.", param="lora_path")
    reason = escape_reason(resolved, roots)
    if reason is not None:
        raise _refused(path, reason, f"{resolved} {reason}")
    if not (resolved / ADAPTER_CONFIG).is_file():
        raise ApiError(400, f"lora_path has no {ADAPTER_CONFIG}; is it a LoRA adapter?", param="lora_path")
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
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ApiError(400, f"{path.name} in the adapter folder is larger than "
                           f"{MAX_CONFIG_BYTES} bytes.", param="lora_path")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"cannot read {path.name} in the adapter folder: {type(exc).__name__}",
                       param="lora_path") from None
    except (RecursionError, ValueError):
        raise ApiError(400, f"{path.name} in the adapter folder is not usable JSON (nested too "
                       "deeply, or a number too large).", param="lora_path") from None
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
