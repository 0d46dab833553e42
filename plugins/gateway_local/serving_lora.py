"""Batched LoRA for mixed-adapter forward passes: two matmuls per layer, any adapter count.

peft's own mixed-adapter path loops over the adapters in every layer (gather the
rows, two small matmuls, scatter back), so its cost grows with the number of
adapters in the batch. Here every LoRA-wrapped Linear keeps the loaded adapters
side by side: A_cat [in, slots * r_max] (each adapter's A, rank zero-padded to
r_max) and B_cat [slots * r_max, out] (each B with its scaling folded in). A
forward pass computes base(x) + ((x @ A_cat) * mask) @ B_cat, where mask holds
ones in the columns of each row's own adapter and zeros elsewhere (all zeros for
base rows), so other adapters contribute exact zeros. The mask is built once per
pass and shared by every layer, because all layers use the same column layout.

peft still loads and deletes adapters; the tables are rebuilt after any change.
During a batched pass peft's layers run their base layer only (adapters disabled)
and a forward hook adds the LoRA term. The LoRA term is computed in the adapter
weights' dtype (peft keeps them in float32 under a bf16 model) and added before
rounding to the layer's output dtype, as peft's single-adapter path does.
"""

from __future__ import annotations

from typing import Any

import torch


class _LayerTables:
    """The stacked adapter weights of one LoRA-wrapped Linear."""

    def __init__(self, module: Any, slots: list[str], rank: int) -> None:
        base = module.get_base_layer()
        in_features, out_features = base.in_features, base.out_features
        first = next(module.lora_A[name].weight for name in slots if name in module.lora_A)
        dtype, device = first.dtype, first.device
        a_cat = torch.zeros((in_features, len(slots) * rank), dtype=dtype, device=device)
        b_cat = torch.zeros((len(slots) * rank, out_features), dtype=dtype, device=device)
        for slot, name in enumerate(slots):
            if name not in module.lora_A:
                continue  # this adapter does not touch this layer: its columns stay zero
            a = module.lora_A[name].weight  # [r, in]
            b = module.lora_B[name].weight  # [out, r]
            r = a.shape[0]
            start = slot * rank
            a_cat[:, start : start + r] = a.t().to(dtype)
            b_cat[start : start + r, :] = (b * module.scaling[name]).t().to(dtype)
        self.a_cat = a_cat
        self.b_cat = b_cat


class BatchedLora:
    """Per-row adapters for a whole peft model, computed as one batched LoRA term per layer."""

    def __init__(self) -> None:
        self.slots: list[str] = []
        self.rank = 0
        self._tables: dict[int, _LayerTables] = {}
        self._layers: list[Any] = []
        self._hooked: set[int] = set()
        self._dirty = True
        self._mask: torch.Tensor | None = None
        self._peft_enabled = True

    def invalidate(self) -> None:
        """Adapters were loaded or deleted: rebuild the tables before the next batched pass."""
        self._dirty = True

    def reset(self) -> None:
        """The peft wrapper is gone (last adapter unloaded): forget every layer."""
        self._tables.clear()
        self._layers.clear()
        self._hooked.clear()
        self.slots = []
        self._dirty = True
        self._mask = None
        self._peft_enabled = True

    def activate(self, model: Any, rows: list[str], base_name: str) -> None:
        """Make the next forward pass add each row's own adapter (rows name peft adapters)."""
        if self._dirty:
            self._rebuild(model)
        self._set_peft_enabled(False)
        if all(name == base_name for name in rows) or not self._tables:
            self._mask = None  # base rows only: the base layers alone
            return
        index = {name: slot for slot, name in enumerate(self.slots)}
        some = next(iter(self._tables.values())).a_cat
        mask = torch.zeros((len(rows), 1, len(self.slots) * self.rank), dtype=some.dtype)
        for row, name in enumerate(rows):
            if name != base_name:
                start = index[name] * self.rank
                mask[row, 0, start : start + self.rank] = 1
        self._mask = mask.to(some.device)

    def deactivate(self) -> None:
        """Hand the layers back to peft's own forward (single-adapter passes)."""
        self._mask = None
        self._set_peft_enabled(True)

    def _set_peft_enabled(self, enabled: bool) -> None:
        if self._peft_enabled == enabled:
            return
        self._peft_enabled = enabled
        # Set on the layers directly: PeftModel.enable_adapters would also touch
        # requires_grad, and this runs on every switch between the two paths.
        for module in self._layers:
            module._disable_adapters = not enabled

    def _rebuild(self, model: Any) -> None:
        from peft.tuners.lora import Linear as LoraLinear

        self._dirty = False
        self._tables.clear()
        self._layers = [m for m in model.modules() if isinstance(m, LoraLinear)]
        for module in self._layers:  # layers new to this load follow the current path too
            module._disable_adapters = not self._peft_enabled
        self.slots = list(getattr(model, "peft_config", {}))
        self.rank = max(
            (m.lora_A[n].weight.shape[0] for m in self._layers for n in m.lora_A), default=0
        )
        if not self.slots or not self.rank:
            return
        for module in self._layers:
            if not any(name in module.lora_A for name in self.slots):
                continue
            self._tables[id(module)] = _LayerTables(module, self.slots, self.rank)
            if id(module) not in self._hooked:
                module.register_forward_hook(self._add_lora)
                self._hooked.add(id(module))

    def _add_lora(self, module: Any, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        mask = self._mask
        tables = self._tables.get(id(module))
        if mask is None or tables is None:
            return output
        x = args[0]
        if x.dtype != tables.a_cat.dtype:
            x = x.to(tables.a_cat.dtype)
        lora = ((x @ tables.a_cat) * mask) @ tables.b_cat
        # output is the base layer's fresh result: add in place (computed in the wider
        # dtype, rounded once to the output's, as peft's single-adapter path does).
        return output.add_(lora)

    def supports(self, model: Any) -> bool:
        """Whether every LoRA layer is a plain Linear LoRA (no DoRA or other variants)."""
        from peft.tuners.lora import Linear as LoraLinear
        from peft.tuners.lora import LoraLayer

        for module in model.modules():
            if isinstance(module, LoraLayer):
                if not isinstance(module, LoraLinear) or module.lora_variant:
                    return False
                if getattr(module, "fan_in_fan_out", False):
                    return False
        return True
