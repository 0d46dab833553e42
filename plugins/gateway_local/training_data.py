"""Chat examples -> token ids and labels for LoRA training, with packing.

Loss falls on assistant tokens only. We find them through the tokenizer's own
chat template: the text of turns 0..i-1 plus the generation prompt is a prefix
of the text of turns 0..i, and the difference is assistant message i (its
content and end-of-turn token). Character spans map to tokens through the fast
tokenizer's offsets. Assistant messages with `"weight": 0` get no loss.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.contracts import GatewayError
from gateway_local.chat_prompt import render, renders_tools, template_message, template_source

IGNORE = -100


@dataclass
class Example:
    """One tokenized conversation (or a packed row of several)."""

    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss; otherwise the token itself (unshifted)
    position_ids: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


def assistant_spans(tokenizer: Any, messages: Sequence[dict[str, Any]],
                    tools: list[dict[str, Any]] | None = None) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans that carry loss."""
    clean = [template_message({k: v for k, v in m.items() if k != "weight"}, i)
             for i, m in enumerate(messages)]

    def _render(turns: list[dict[str, Any]], generation_prompt: bool = False) -> str:
        return render(tokenizer, turns, tools, generation_prompt)

    full = _render(clean)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant" or message.get("weight", 1) == 0:
            continue
        prefix = _render(clean[:i], generation_prompt=True) if i else ""
        upto = _render(clean[: i + 1])
        if not upto.startswith(prefix) or not full.startswith(upto):
            raise GatewayError(
                "the tokenizer's chat template does not render conversations turn by turn "
                f"(message {i}), so assistant tokens cannot be located for the loss"
            )
        end = len(upto)
        # Keep the end-of-turn token, drop the newline the template puts after it.
        while end > len(prefix) and upto[end - 1].isspace():
            end -= 1
        spans.append((len(prefix), end))
    return full, spans


def tokenize_example(tokenizer: Any, messages: Sequence[dict[str, Any]],
                     tools: list[dict[str, Any]] | None = None) -> Example:
    """Token ids of the chat-templated conversation, labels on assistant tokens only."""
    full, spans = assistant_spans(tokenizer, messages, tools)
    if not getattr(tokenizer, "is_fast", False):
        raise GatewayError("the local trainer needs a fast tokenizer (tokenizer.json)")
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoded["input_ids"])
    labels = [IGNORE] * len(ids)
    for index, (start, end) in enumerate(encoded["offset_mapping"]):
        if any(end > a and start < b for a, b in spans):
            labels[index] = ids[index]
    return Example(ids, labels, list(range(len(ids))))


@dataclass
class Dataset:
    examples: list[Example]
    truncated: int = 0
    dropped: int = 0  # no assistant token left after truncation

    @property
    def tokens(self) -> int:
        return sum(len(e) for e in self.examples)


def load_dataset(tokenizer: Any, path: Path, max_seq_len: int) -> Dataset:
    from gateway.data import iter_examples

    data = Dataset(examples=[])
    for line, example in iter_examples(path):
        tools = example.get("tools")
        if tools and not renders_tools(tokenizer):
            raise GatewayError(
                f"{path}: line {line}: the example has tools, but "
                f"{template_source(tokenizer, str(tokenizer.name_or_path))} does not render them, "
                "so the model could not learn to call them; train a base whose chat template "
                "renders tools, or leave the tools out")
        item = tokenize_example(tokenizer, example["messages"], tools)
        if len(item) > max_seq_len:
            data.truncated += 1
            item = Example(item.input_ids[:max_seq_len], item.labels[:max_seq_len],
                           item.position_ids[:max_seq_len])
        if all(label == IGNORE for label in item.labels[1:]):
            data.dropped += 1
            continue
        data.examples.append(item)
    return data


def pack(examples: Sequence[Example], max_seq_len: int) -> list[Example]:
    """Best-fit-decreasing packing into rows of at most max_seq_len tokens.

    Positions restart at 0 for each example, which the model turns into a
    block-diagonal causal mask, so examples never attend to each other; the
    first label of each example is dropped so no loss crosses a boundary.
    """
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i]), i))
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, row index), sorted
    for index in order:
        size = len(examples[index])
        slot = bisect.bisect_left(free, (size, -1))
        if slot < len(free):
            space, row = free.pop(slot)
            rows[row].append(index)
            bisect.insort(free, (space - size, row))
        else:
            rows.append([index])
            bisect.insort(free, (max_seq_len - size, len(rows) - 1))
    packed: list[Example] = []
    for members in rows:
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for index in members:
            example = examples[index]
            ids += example.input_ids
            labels += [IGNORE, *example.labels[1:]]
            positions += example.position_ids
        packed.append(Example(ids, labels, positions))
    return packed


def collate(rows: Sequence[Example], pad_id: int, packed: bool) -> dict[str, Any]:
    """Tensors for one micro-batch, right-padded to its longest row.

    Packed rows get position_ids (and no attention mask, so the model builds
    the per-example mask); padded rows get an attention mask.
    """
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row.input_ids)
        labels[i, : len(row)] = torch.tensor(row.labels)
    batch: dict[str, Any] = {"input_ids": ids, "labels": labels}
    real_tokens = sum(len(r) for r in rows)
    if packed:
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            positions[i, : len(row)] = torch.tensor(row.position_ids)
            # Padding forms its own sequence: it restarts at position 0.
            positions[i, len(row):] = torch.arange(width - len(row))
        batch["position_ids"] = positions
    elif real_tokens < len(rows) * width:
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            mask[i, : len(row)] = 1
        batch["attention_mask"] = mask
    batch["tokens"] = real_tokens
    return batch
