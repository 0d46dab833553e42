"""The LoRA adapters held in memory on top of one base model, with an LRU limit.

Only the generation worker thread calls into this class, so the model is never
changed while a forward pass runs. The first adapter wraps the base model with
PeftModel.from_pretrained; later ones are added with load_adapter. Adapters
are named internally by a hash of their public key, because peft keeps them in
ModuleDicts whose keys may not contain dots (version ids often do).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

from gateway.contracts import BackendRequestError
from gateway_local.serving_lora import BatchedLora

MIXABLE_PEFT_TYPES = {"LORA"}
BASE_ADAPTER = "__base__"


def internal_name(key: str) -> str:
    return "a" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def adapter_dir(path: str) -> Path:
    """The local folder an adapter path or file:// URI names."""
    return Path(path.removeprefix("file://")).expanduser()


class AdapterSet:
    """Loaded adapters, most recently used last."""

    def __init__(self, model: Any, max_adapters: int) -> None:
        self.model = model
        self.max_adapters = max(1, max_adapters)
        self.loaded: OrderedDict[str, str] = OrderedDict()
        self.paths: dict[str, str] = {}
        self.evictions = 0
        # The per-row adapter names of the forward pass under way (empty: plain path).
        self._row_adapters: list[str] = []
        self._hooked: set[int] = set()
        # Mixed batches of plain LoRA adapters take the batched path; others peft's own.
        self.lora = BatchedLora()
        self._batched = False

    def prepare(self, rows: list[str]) -> Any:
        """The model to call for a forward pass whose rows use these adapters.

        Rows that all share one adapter take peft's plain path (it rounds exactly
        as generate() does). Other batches take the batched LoRA path (serving_lora.py:
        two matmuls per layer whatever the number of adapters; base-only batches skip
        LoRA entirely), or, for adapters it does not cover (DoRA and other variants),
        peft's mixed-adapter path, the adapter names reaching each LoRA layer through
        hooks set once per layer rather than re-registered by PeftModel.forward.
        """
        from peft import PeftModel

        self._row_adapters.clear()
        if not isinstance(self.model, PeftModel):
            return self.model
        first = rows[0]
        if first != BASE_ADAPTER and all(a == first for a in rows):
            self.lora.deactivate()
            if self.model.active_adapter != first:
                self.model.set_adapter(first, inference_mode=True)
        elif self._batched:
            self.lora.activate(self.model, rows, BASE_ADAPTER)
        else:
            self.lora.deactivate()
            self._row_adapters.extend(rows)
        return self.model.base_model.model

    def _hook_layers(self) -> None:
        from peft.tuners.lora import LoraLayer

        for module in self.model.modules():
            if isinstance(module, LoraLayer) and id(module) not in self._hooked:
                module.register_forward_pre_hook(self._inject_names, with_kwargs=True)
                self._hooked.add(id(module))

    def _inject_names(
        self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if self._row_adapters:
            kwargs["adapter_names"] = self._row_adapters
        return args, kwargs

    def names(self) -> list[str]:
        return list(self.loaded)

    def touch(self, key: str) -> str | None:
        """Mark key as just used; its internal name, or None if it is not loaded."""
        if key not in self.loaded:
            return None
        self.loaded.move_to_end(key)
        return self.loaded[key]

    def has_room(self, busy: set[str]) -> bool:
        """Whether one more adapter fits, evicting an idle one if needed."""
        return len(self.loaded) < self.max_adapters or any(k not in busy for k in self.loaded)

    def ensure(self, key: str, path: str, busy: set[str]) -> str:
        """Load key from path unless it is loaded; evict the LRU idle adapter beyond the limit."""
        name = self.touch(key)
        if name is not None:
            return name
        if len(self.loaded) >= self.max_adapters:
            victim = next((k for k in self.loaded if k not in busy), None)
            if victim is None:
                raise BackendRequestError(
                    f"cannot load adapter {key!r}: all {self.max_adapters} adapter slots are in use"
                )
            self.unload(victim)
            self.evictions += 1
        name = internal_name(key)
        self._load(name, path)
        self.loaded[key] = name
        self.paths[key] = path
        return name

    def unload(self, key: str) -> bool:
        name = self.loaded.pop(key, None)
        self.paths.pop(key, None)
        if name is None:
            return False
        self.lora.deactivate()
        self.lora.invalidate()
        if self.loaded:
            with warnings.catch_warnings():
                # peft warns when the deleted adapter was the "active" one; batches name theirs.
                warnings.simplefilter("ignore", UserWarning)
                self.model.delete_adapter(name)
            self._batched = self.lora.supports(self.model)
        else:
            # peft cannot run with zero adapters: go back to the plain base model.
            self.model = self.model.unload()
            self._hooked.clear()
            self.lora.reset()
            self._batched = False
            if "peft_config" in vars(self.model):
                del self.model.peft_config
        return True

    def _load(self, name: str, path: str) -> None:
        folder = adapter_dir(path)
        config_file = folder / "adapter_config.json"
        if not config_file.is_file():
            raise BackendRequestError(
                f"no LoRA adapter at {path}: {config_file} does not exist"
            )
        try:
            peft_type = json.loads(config_file.read_text(encoding="utf-8")).get("peft_type")
        except (OSError, ValueError) as exc:
            raise BackendRequestError(f"unreadable adapter config {config_file}: {exc}") from exc
        if peft_type not in MIXABLE_PEFT_TYPES:
            raise BackendRequestError(
                f"adapter at {path} is a {peft_type} adapter; the local backend serves LoRA adapters only"
            )
        from peft import PeftModel

        self.lora.deactivate()
        self.lora.invalidate()
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(folder), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name)
        except Exception as exc:
            self._forget_partial(name)
            raise BackendRequestError(f"cannot load the adapter at {path}: {exc}") from exc
        self.model.eval()
        self._hook_layers()
        self._batched = self.lora.supports(self.model)

    def _forget_partial(self, name: str) -> None:
        """Remove what a failed load left in the model's layers, so serving goes on."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        root = self.model.base_model if hasattr(self.model, "peft_config") else self.model
        for module in root.modules():
            if isinstance(module, BaseTunerLayer) and name in getattr(module, "lora_A", {}):
                module.delete_adapter(name)
        config = getattr(self.model, "peft_config", None)
        if isinstance(config, dict):
            config.pop(name, None)
            if not config and "peft_config" in vars(self.model):
                del self.model.peft_config
