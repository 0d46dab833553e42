"""What vLLM can serve: checks on a LoRA adapter folder before vLLM sees it,
and the --max-lora-rank a base model's registered adapters need.

vLLM rejects adapters with modules_to_save, DoRA adapters and ranks above its
--max-lora-rank, and it loads an adapter made for another base without a word
when the shapes happen to fit. The gateway refuses all of these itself, with a
message that names the adapter and the reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.contracts import (
    BackendRequestError,
    BaseModel,
    ModelTarget,
    ModelVersion,
    escape_reason,
)

ADAPTER_CONFIG = "adapter_config.json"
# The values vLLM 0.3x accepts for --max-lora-rank (vllm.config.lora.MaxLoRARanks).
VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
DEFAULT_RANK = 8


@dataclass(frozen=True)
class AdapterInfo:
    folder: Path
    rank: int
    base: str | None


def adapter_folder(path: str) -> Path:
    """The local folder an adapter path or file:// URI names."""
    return Path(path.removeprefix("file://")).expanduser()


def read_adapter_config(folder: Path) -> dict[str, Any]:
    path = folder / ADAPTER_CONFIG
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackendRequestError(f"no LoRA adapter at {folder}: {ADAPTER_CONFIG} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackendRequestError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise BackendRequestError(f"{path} is not a JSON object")
    return data


def rank_limit(ranks: list[int]) -> int:
    """The smallest --max-lora-rank vLLM accepts that covers every rank in `ranks`."""
    wanted = max([DEFAULT_RANK, *ranks])
    for allowed in VLLM_RANKS:
        if allowed >= wanted:
            return allowed
    return VLLM_RANKS[-1]


def registered_ranks(versions: list[ModelVersion]) -> list[int]:
    """LoRA ranks of the local adapters among `versions` (unreadable ones are skipped)."""
    ranks = []
    for version in versions:
        if version.kind != "local" or not version.artifact_uri:
            continue
        try:
            rank = read_adapter_config(adapter_folder(version.artifact_uri)).get("r")
        except BackendRequestError:
            continue
        if isinstance(rank, int):
            ranks.append(rank)
    return ranks


def base_identities(base: str, model: BaseModel | None) -> set[str]:
    """The names an adapter's base_model_name_or_path may give for `base`: its
    registered name, folder and hub id."""
    names = {base}
    if model is not None:
        names |= {str(v) for v in (model.path, model.hf_id) if v}
    return names


def _same_base(declared: str, identities: set[str], base_path: str | None) -> bool:
    if declared in identities:
        return True
    if base_path:
        try:
            return Path(declared).expanduser().resolve() == Path(base_path).expanduser().resolve()
        except (OSError, ValueError):
            return False
    return False


def check_adapter(
    target: ModelTarget,
    *,
    base: str,
    base_identities: set[str],
    base_path: str | None,
    max_rank: int,
    check_base: bool = True,
    roots: Sequence[Path] = (),
) -> AdapterInfo:
    """The adapter behind `target` if vLLM can serve it on `base`; BackendRequestError if not.

    A runtime adapter (no registry version) must stay inside `roots`, checked at each
    publish since the folder may have changed after it was loaded; the host always
    names roots, and a library caller that names none has no confinement to apply.
    """
    name = target.requested
    if not target.adapter_path:
        raise BackendRequestError(f"{name!r} has no LoRA adapter")
    if target.base != base:
        raise BackendRequestError(
            f"adapter {name!r} is for base model {target.base!r}; this vLLM serves {base!r}"
        )
    folder = adapter_folder(target.adapter_path)
    if roots and target.version_id is None:
        reason = escape_reason(folder.resolve(), list(roots))
        if reason is not None:
            raise BackendRequestError(f"adapter {name!r} {reason}")
    config = read_adapter_config(folder)
    peft_type = config.get("peft_type", "LORA")
    if peft_type != "LORA":
        raise BackendRequestError(f"adapter {name!r} is a {peft_type} adapter; vLLM serves LoRA only")
    if config.get("use_dora"):
        raise BackendRequestError(f"adapter {name!r} uses DoRA, which vLLM cannot serve")
    if config.get("modules_to_save"):
        modules = ", ".join(map(str, config["modules_to_save"]))
        raise BackendRequestError(
            f"adapter {name!r} has modules_to_save ({modules}) in {ADAPTER_CONFIG}; vLLM cannot "
            "serve adapters that replace whole modules. Serve it with the local backend, or "
            "retrain without modules_to_save."
        )
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        raise BackendRequestError(f"adapter {name!r}: {ADAPTER_CONFIG} has no valid rank r ({rank!r})")
    if rank > max_rank:
        raise BackendRequestError(
            f"adapter {name!r} has LoRA rank {rank}, above this vLLM's --max-lora-rank {max_rank}. "
            f"Set max_lora_rank = {rank_limit([rank])} in [backends.\"{base}\"] and restart the server."
        )
    declared = config.get("base_model_name_or_path")
    if declared and check_base and not _same_base(str(declared), base_identities, base_path):
        raise BackendRequestError(
            f"adapter {name!r} was trained on {declared!r}, not on this vLLM's base model "
            f"{base!r} ({base_path or base})"
        )
    return AdapterInfo(folder=folder, rank=rank, base=str(declared) if declared else None)
