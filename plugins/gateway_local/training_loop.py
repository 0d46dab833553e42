"""The LoRA training loop: a plain torch loop over a peft model.

Why not the HF Trainer: its per-step overhead and full-vocabulary logits at
every position. Here the language-model head runs only where a label is, data
can be packed, and the whole state (LoRA weights, optimizer, scheduler, RNG)
goes into each checkpoint so a resumed run takes exactly the steps and batches
an uninterrupted one would.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from gateway.contracts import (
    GatewayError,
    JobControl,
    TrainingEvent,
    TrainingResult,
    TrainingSpec,
    choose_dtype,
    read_capabilities,
    usable_cores,
)
from gateway_local.training_data import IGNORE, Dataset, Example, collate, load_dataset, pack

STATE_FILE = "trainer_state.pt"


def pick_device() -> tuple[torch.device, torch.dtype | None]:
    """The device and its autocast dtype.

    On a GPU, the serving rule (gateway.hardware): bf16 where the GPU supports
    it, else float16 (with loss scaling). On the CPU, float32 with no autocast
    and all cores: measured, LoRA steps gain nothing from bf16 autocast there.
    """
    caps = read_capabilities(torch)
    if caps.cuda:
        return torch.device("cuda"), getattr(torch, choose_dtype(caps, "cuda"))
    # All the cores this process may use (torch defaults to physical cores only).
    torch.set_num_threads(usable_cores())
    return torch.device("cpu"), None


def load_model(model_path: str, hp: dict[str, Any], device: torch.device,
               autocast_dtype: torch.dtype | None = None) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    # bf16 weights under bf16 autocast; float32 master weights for float16 (the
    # grad scaler needs them) and on the CPU.
    weights = torch.bfloat16 if autocast_dtype == torch.bfloat16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=weights)
    model.config.use_cache = False
    targets = hp["target_modules"]
    lora = LoraConfig(
        r=hp["lora_r"], lora_alpha=hp["lora_alpha"], lora_dropout=hp["lora_dropout"],
        target_modules=targets if targets == "all-linear" else list(targets),
        bias="none", task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora).to(device)


def loss_sum(model: Any, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, int]:
    """Summed next-token loss over labelled positions, and how many there were.

    The head runs on labelled positions only: on a 49k vocabulary it is a fifth
    of the model's FLOPs, wasted on prompt tokens.
    """
    inner = model.get_base_model()
    inputs = {k: batch[k].to(device) for k in ("input_ids", "position_ids", "attention_mask") if k in batch}
    hidden = inner.get_decoder()(**inputs, use_cache=False).last_hidden_state
    targets = batch["labels"][:, 1:].to(device)
    keep = targets != IGNORE
    logits = inner.get_output_embeddings()(hidden[:, :-1][keep])
    loss = torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum")
    return loss, int(keep.sum())


class Schedule:
    """Which rows each optimizer step trains on: a seeded shuffle per epoch."""

    def __init__(self, rows: int, batch_size: int, grad_accum: int, seed: int) -> None:
        self.rows, self.batch_size, self.grad_accum, self.seed = rows, batch_size, grad_accum, seed
        self.batches_per_epoch = math.ceil(rows / batch_size)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / grad_accum)
        self._epoch = -1
        self._batches: list[list[int]] = []

    def step(self, step: int) -> list[list[int]]:
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.rows, generator=generator).tolist()
            self._batches = [order[i : i + self.batch_size] for i in range(0, self.rows, self.batch_size)]
            self._epoch = epoch
        return self._batches[index * self.grad_accum : (index + 1) * self.grad_accum]


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, model: Any, optimizer: Any, scheduler: Any, progress: dict[str, Any]) -> Path:
    """Write the full training state atomically: a half-written checkpoint never has the final name."""
    final = folder / f"step-{progress['step']:06d}"
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    trainable = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
    torch.save(
        {
            "trainable": trainable, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": _rng_state(), "progress": progress,
        },
        partial / STATE_FILE,
    )
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return final


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    state = torch.load(path / STATE_FILE, weights_only=False)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    progress: dict[str, Any] = state["progress"]
    return progress


def _mean_loss(model: Any, data: Dataset, batch_size: int, pad_id: int, device: torch.device) -> float:
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(data.examples), batch_size):
            batch = collate(data.examples[i : i + batch_size], pad_id, packed=False)
            loss, n = loss_sum(model, batch, device)
            total, count = total + float(loss), count + n
    model.train()
    return total / max(count, 1)


def train(
    spec: TrainingSpec, control: JobControl, hp: dict[str, Any]
) -> Iterator[TrainingEvent | TrainingResult]:
    from transformers import AutoTokenizer

    device, autocast_dtype = pick_device()
    compute = str(autocast_dtype or torch.float32).removeprefix("torch.")
    torch.manual_seed(hp["seed"])
    random.seed(hp["seed"])
    model_path = spec.base_path or spec.base
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    data = load_dataset(tokenizer, spec.training_file, hp["max_seq_len"])
    if not data.examples:
        raise GatewayError("no training example has an assistant token to learn from")
    rows: list[Example] = pack(data.examples, hp["max_seq_len"]) if hp["packing"] else data.examples
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    yield TrainingEvent(
        type="message",
        message=f"{len(data.examples)} examples, {data.tokens} tokens in {len(rows)} rows on {device.type} "
        f"({compute}, {torch.get_num_threads()} threads)"
        + (f"; {data.truncated} truncated to {hp['max_seq_len']} tokens" if data.truncated else "")
        + (f"; {data.dropped} dropped (no assistant tokens left)" if data.dropped else ""),
        data={"examples": len(data.examples), "tokens": data.tokens, "rows": len(rows),
              "truncated": data.truncated, "dropped": data.dropped, "device": device.type,
              "dtype": compute, "threads": torch.get_num_threads()},
    )

    model = load_model(model_path, hp, device, autocast_dtype)
    model.train()
    # float16 gradients underflow without loss scaling; a no-op for every other dtype.
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=hp["learning_rate"], weight_decay=hp["weight_decay"])
    schedule = Schedule(len(rows), hp["batch_size"], hp["grad_accum"], hp["seed"])
    total = int(hp["max_steps"] or hp["epochs"] * schedule.steps_per_epoch)
    warmup = int(hp["warmup_steps"])

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    progress: dict[str, Any] = {"step": 0, "tokens": 0, "runtime": 0.0, "loss": None}
    if spec.resume_from is not None:
        progress = load_checkpoint(Path(spec.resume_from), model, optimizer, scheduler)
        yield TrainingEvent(type="message", message=f"resumed at step {progress['step']}",
                            step=progress["step"], total_steps=total)
    checkpoints = spec.output_dir / "checkpoints"

    def checkpoint() -> TrainingEvent:
        path = save_checkpoint(checkpoints, model, optimizer, scheduler, progress)
        return TrainingEvent(type="checkpoint", step=progress["step"], total_steps=total,
                             data={"path": str(path), "metrics": {"loss": progress["loss"]}})

    window_loss, window_steps, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()
    while progress["step"] < total:
        if control.cancelled():
            yield checkpoint()
            yield TrainingEvent(type="message", message=f"cancelled at step {progress['step']}")
            return
        started = time.perf_counter()
        batches = [collate([rows[i] for i in idx], pad_id, hp["packing"]) for idx in schedule.step(progress["step"])]
        labelled = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches)
        lr = scheduler.get_last_lr()[0]
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for batch in batches:
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                                enabled=autocast_dtype is not None):
                loss, _ = loss_sum(model, batch, device)
            scaled: torch.Tensor = scaler.scale(loss / max(labelled, 1))
            scaled.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
            step_loss += float(loss.detach())
        if hp["max_grad_norm"]:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, hp["max_grad_norm"])
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        step_tokens = sum(b["tokens"] for b in batches)
        progress["step"] += 1
        progress["tokens"] += step_tokens
        progress["runtime"] += time.perf_counter() - started
        progress["loss"] = step_loss / max(labelled, 1)
        window_loss += progress["loss"]
        window_steps += 1
        window_tokens += step_tokens
        step = progress["step"]
        if step % hp["logging_steps"] == 0 or step == total or step == 1:
            elapsed = time.perf_counter() - window_start
            yield TrainingEvent(
                type="metrics", step=step, total_steps=total,
                data={"loss": window_loss / window_steps, "learning_rate": lr,
                      "tokens_per_second": window_tokens / max(elapsed, 1e-9),
                      "epoch": step / schedule.steps_per_epoch},
            )
            window_loss, window_steps, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()
        if hp["checkpoint_steps"] and step % hp["checkpoint_steps"] == 0 and step < total:
            yield checkpoint()

    metrics: dict[str, Any] = {
        "train_loss": progress["loss"], "steps": progress["step"], "trained_tokens": progress["tokens"],
        "epochs": progress["step"] / schedule.steps_per_epoch, "train_runtime_s": progress["runtime"],
        "tokens_per_second": progress["tokens"] / max(progress["runtime"], 1e-9),
        "examples": len(data.examples), "device": device.type, "dtype": compute,
        "threads": torch.get_num_threads(),
    }
    if spec.validation_file is not None:
        valid = load_dataset(tokenizer, spec.validation_file, hp["max_seq_len"])
        metrics["valid_loss"] = _mean_loss(model, valid, hp["batch_size"], pad_id, device)
    adapter = spec.output_dir / "adapter"
    shutil.rmtree(adapter, ignore_errors=True)
    model.save_pretrained(adapter)
    yield TrainingResult(kind="local", artifact_path=adapter, metrics=metrics)
