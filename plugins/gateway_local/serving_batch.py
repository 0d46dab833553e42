"""One running batch of sequences on the model: prefill, decode steps, joins and leaves.

The batch keeps a left-padded KV cache, a 2D attention mask and one position
counter per row, so every row decodes as if it ran alone: position ids count
only a row's real tokens and the mask hides the padding. New sequences are
prefilled on their own and then spliced into the running cache (padding the
shorter side on the left); finished rows are cut out and columns that hold
only padding are trimmed. Each forward pass names the adapter of every row
("__base__" for the base model); AdapterSet.prepare picks the path that serves
them (batched LoRA for mixed rows, see serving_lora.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from gateway.contracts import Delta, GenerationParams, Usage
from gateway_local.grammars import mask_logits
from gateway_local.serving_adapters import BASE_ADAPTER, AdapterSet
from gateway_local.serving_text import IncrementalDecoder, StopMatcher


@dataclass(eq=False)
class Sequence:
    """One request inside the worker: its prompt, settings and progress."""

    prompt_ids: list[int]
    params: GenerationParams
    max_new_tokens: int
    # Pushes a Delta (or the exception that ended the request) to the caller; thread-safe.
    emit: Callable[[Delta | BaseException], None]
    decoder: IncrementalDecoder
    adapter_key: str | None = None
    adapter_path: str | None = None
    # peft's name for the adapter once loaded ("__base__" for the base model).
    adapter_name: str = BASE_ADAPTER
    generated: list[int] = field(default_factory=list)
    stops: StopMatcher = field(default_factory=lambda: StopMatcher([]))
    generator: torch.Generator | None = None
    # llguidance's matcher when the request asks for a response_format (see grammars.py).
    matcher: Any = None
    # Turns (token id, logprob, [(id, logprob)...]) entries into the route's logprobs shape;
    # set when the request asks for logprobs.
    shape_logprobs: Callable[[list[TokenLogprob]], dict[str, Any]] | None = None
    # With echo: the prompt tokens' entries (the first token has no logprob).
    prompt_entries: list[TokenLogprob] = field(default_factory=list)
    pending: list[TokenLogprob] = field(default_factory=list)
    cancelled: bool = False
    finished: bool = False

    def __post_init__(self) -> None:
        self.stops = StopMatcher(self.params.stop)

    def make_generator(self, device: torch.device) -> None:
        if self.params.temperature > 0:
            seed = self.params.seed if self.params.seed is not None else secrets.randbits(62)
            self.generator = torch.Generator(device=device).manual_seed(int(seed))

    @property
    def wants_logprobs(self) -> bool:
        return self.shape_logprobs is not None and self.params.logprobs is not None

    def _logprobs(self) -> dict[str, Any] | None:
        if self.shape_logprobs is None or not self.pending:
            return None
        entries, self.pending = self.pending, []
        return self.shape_logprobs(entries)

    def emit_prompt(self) -> None:
        """With echo: the prompt's token logprobs, before any generated token."""
        if self.shape_logprobs is not None:
            self.emit(Delta(text="", logprobs=self.shape_logprobs(self.prompt_entries)))

    def accept(self, token: int, eos_ids: set[int], entry: TokenLogprob | None = None) -> None:
        """Record one sampled token, stream its text, finish when a stop condition holds."""
        if entry is not None:
            self.pending.append(entry)
        self.generated.append(token)
        if token in eos_ids:
            self.finish("stop", self.stops.feed(self.decoder.flush()) + self.stops.flush())
            return
        text = self.stops.feed(self.decoder.push(token))
        if self.matcher is not None:
            self.matcher.consume_token(token)
            if self.matcher.is_stopped():  # the grammar is complete: nothing may follow
                self.finish("stop", text + self.stops.feed(self.decoder.flush()) + self.stops.flush())
                return
        if self.stops.stopped:
            self.finish("stop", text)
        elif len(self.generated) >= self.max_new_tokens:
            self.finish("length", text + self.stops.feed(self.decoder.flush()) + self.stops.flush())
        elif text:
            self.emit(Delta(text=text, logprobs=self._logprobs()))

    def finish(self, reason: str, text: str = "") -> None:
        self.finished = True
        usage = Usage(prompt_tokens=len(self.prompt_ids), completion_tokens=len(self.generated))
        self.emit(Delta(text=text, finish_reason=reason, usage=usage, logprobs=self._logprobs()))


# One token's log probability: its id, its logprob (None for a prompt's first token)
# and the most likely alternatives as (id, logprob).
TokenLogprob = tuple[int, float | None, list[tuple[int, float]]]


def token_logprobs(logits: torch.Tensor, tokens: list[int], top: int) -> list[TokenLogprob]:
    """Each row's chosen token's logprob under the model, with its `top` alternatives."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    chosen = logprobs.gather(1, torch.tensor(tokens, device=logprobs.device)[:, None])[:, 0].tolist()
    alternatives: list[list[tuple[int, float]]] = [[] for _ in tokens]
    if top:
        values, ids = logprobs.topk(top, dim=-1)
        alternatives = [list(zip(i, v, strict=True)) for i, v in zip(ids.tolist(), values.tolist(),
                                                                     strict=True)]
    return [(t, lp, alt) for t, lp, alt in zip(tokens, chosen, alternatives, strict=True)]


def sample(logits: torch.Tensor, rows: list[Sequence]) -> list[int]:
    """Pick the next token for each row: argmax where temperature is 0, else top-p sampling."""
    # In float32, as generate() does; also argmax over bf16 is ~4x slower on CPU.
    logits = logits.float()
    constrained = [(i, seq.matcher) for i, seq in enumerate(rows) if seq.matcher is not None]
    if constrained:
        logits = mask_logits(logits.clone(), constrained)
    tokens: list[int] = logits.argmax(dim=-1).tolist()
    for i, seq in enumerate(rows):
        params = seq.params
        if params.temperature <= 0:
            continue
        scores = logits[i].float() / params.temperature
        probs = torch.softmax(scores, dim=-1)
        if params.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            # Keep the smallest set of tokens whose mass reaches top_p (always at least one).
            outside = sorted_probs.cumsum(-1) - sorted_probs > params.top_p
            sorted_probs = sorted_probs.masked_fill(outside, 0.0)
            pick = torch.multinomial(sorted_probs, 1, generator=seq.generator)
            tokens[i] = int(order[pick].item())
        else:
            tokens[i] = int(torch.multinomial(probs, 1, generator=seq.generator).item())
    return tokens


class Batch:
    """The rows decoding together and their shared KV cache."""

    def __init__(self, device: torch.device, pad_id: int) -> None:
        self.device = device
        self.pad_id = pad_id
        self.rows: list[Sequence] = []
        self.cache: DynamicCache | None = None
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=device)
        self.positions = torch.zeros((0,), dtype=torch.long, device=device)
        self.next_tokens = torch.zeros((0,), dtype=torch.long, device=device)
        self.prompt_logits: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def can_join(self) -> bool:
        """Whether new rows may join mid-flight: only plain full-attention caches can be spliced."""
        if self.cache is None:
            return True
        return all(type(layer) is DynamicLayer for layer in self.cache.layers)

    def _forward(
        self,
        adapters: AdapterSet,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: DynamicCache,
        rows: list[str],
        every_position: bool = False,
    ) -> torch.Tensor:
        model = adapters.prepare(rows)
        # Rows are left-padded, so the last column is every row's last token. In a
        # prefill, name it by index: the plain slice (logits_to_keep=1) is a strided
        # view that makes torch's matmul expand the LM head once per row (a copy of
        # rows x vocab x hidden), which cost more than the rest of the prefill.
        width = input_ids.shape[1]
        keep: int | torch.Tensor = 1
        if width > 1:
            keep = torch.tensor([width - 1], device=input_ids.device)
        if every_position:  # echo's prompt logprobs need the logits at every position
            keep = 0
        out = model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=keep,
        )
        self.prompt_logits = out.logits if every_position else None
        logits: torch.Tensor = out.logits[:, -1, :]
        return logits

    def add(self, adapters: AdapterSet, seqs: list[Sequence]) -> torch.Tensor:
        """Prefill seqs, splice them into the batch; return their next-token logits."""
        model = adapters.model
        width = max(len(s.prompt_ids) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, seq in enumerate(seqs):
            ids[i, width - len(seq.prompt_ids) :] = torch.tensor(seq.prompt_ids)
            mask[i, width - len(seq.prompt_ids) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=getattr(model, "config", None))
        echo = any(s.params.echo for s in seqs)
        logits = self._forward(adapters, ids, mask, positions, cache, [s.adapter_name for s in seqs],
                               every_position=echo)
        if echo and self.prompt_logits is not None:
            for i, seq in enumerate(seqs):
                if seq.params.echo:
                    seq.prompt_entries = _prompt_entries(self.prompt_logits[i], seq.prompt_ids,
                                                         width, seq.params.logprobs or 0)
            self.prompt_logits = None
        lengths = torch.tensor([len(s.prompt_ids) for s in seqs], device=self.device)
        self._splice(seqs, cache, mask, lengths)
        return logits

    def _splice(
        self, seqs: list[Sequence], cache: DynamicCache, mask: torch.Tensor, positions: torch.Tensor
    ) -> None:
        placeholder = torch.zeros((len(seqs),), dtype=torch.long, device=self.device)
        if self.cache is None or not self.rows:
            self.rows, self.cache, self.mask = list(seqs), cache, mask
            self.positions, self.next_tokens = positions, placeholder
            return
        old_len, new_len = self.mask.shape[1], mask.shape[1]
        width = max(old_len, new_len)
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            assert old.keys is not None and old.values is not None
            assert new.keys is not None and new.values is not None
            old.keys = torch.cat([_left_pad(old.keys, width, 2), _left_pad(new.keys, width, 2)])
            old.values = torch.cat(
                [_left_pad(old.values, width, 2), _left_pad(new.values, width, 2)]
            )
        self.mask = torch.cat([_left_pad(self.mask, width, 1), _left_pad(mask, width, 1)])
        self.positions = torch.cat([self.positions, positions])
        self.next_tokens = torch.cat([self.next_tokens, placeholder])
        self.rows.extend(seqs)

    def set_next(self, seqs: list[Sequence], tokens: list[int]) -> None:
        """Store the tokens just sampled for seqs (the last rows, or all of them)."""
        start = len(self.rows) - len(seqs)
        self.next_tokens[start:] = torch.tensor(tokens, device=self.device)

    def step(self, adapters: AdapterSet) -> torch.Tensor:
        """Feed every row its last token; return next-token logits, one row each."""
        assert self.cache is not None
        ones = torch.ones((len(self.rows), 1), dtype=torch.long, device=self.device)
        self.mask = torch.cat([self.mask, ones], dim=1)
        logits = self._forward(
            adapters,
            self.next_tokens[:, None],
            self.mask,
            self.positions[:, None],
            self.cache,
            [s.adapter_name for s in self.rows],
        )
        self.positions = self.positions + 1
        return logits

    def drop_finished(self) -> None:
        """Cut out finished or cancelled rows, then trim all-padding columns on the left."""
        keep = [i for i, s in enumerate(self.rows) if not (s.finished or s.cancelled)]
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.rows, self.cache = [], None
            self.mask = self.mask[:0, :0]
            self.positions, self.next_tokens = self.positions[:0], self.next_tokens[:0]
            return
        index = torch.tensor(keep, device=self.device)
        self.rows = [self.rows[i] for i in keep]
        self.mask = self.mask.index_select(0, index)
        self.positions = self.positions.index_select(0, index)
        self.next_tokens = self.next_tokens.index_select(0, index)
        start = 0
        # Other cache layouts keep their own length bookkeeping; only plain ones are trimmed.
        if self.can_join():
            used = self.mask.any(dim=0).nonzero()
            start = int(used[0].item()) if len(used) else 0
        self.mask = self.mask[:, start:]
        assert self.cache is not None
        for layer in self.cache.layers:
            layer.batch_select_indices(index)
            if start and layer.keys is not None and layer.values is not None:
                layer.keys = layer.keys[:, :, start:]
                layer.values = layer.values[:, :, start:]


def _left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _prompt_entries(logits: torch.Tensor, prompt_ids: list[int], width: int,
                    top: int) -> list[TokenLogprob]:
    """The prompt tokens' logprobs from one left-padded row's logits at every position."""
    start = width - len(prompt_ids)
    first: TokenLogprob = (prompt_ids[0], None, [])
    if len(prompt_ids) == 1:
        return [first]
    # The logits at position p predict token p + 1.
    rows = logits[start : width - 1]
    return [first, *token_logprobs(rows, prompt_ids[1:], top)]
