"""LoRA training throughput: the gateway's local trainer against transformers Trainer + peft.

Same model, same tokenized data (assistant-only labels), same LoRA settings
(r=8, alpha=16, dropout 0.05, all linear layers), same batch size, in one run:

- fixed:    every example exactly --seq-len tokens; both sides train unpadded.
- variable: chat examples of very different lengths. The gateway packs them
            (--packing); the baseline pads each batch to its longest example,
            the usual collator behaviour.

Throughput counts real (non-padding) tokens per second of training loop.
FLOPs: about 4·N per trained token for LoRA (forward 2N, backward through
frozen weights 2N), N = the model's parameters. MFU is that against
--peak-gflops (default 330: two AVX-512 cores, fp32 FMA; pass your own).
Targets: ratio >= 1.0 fixed, >= 1.5 variable with packing.

Run: python benchmarks/train_throughput.py [--model DIR] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

LORA = {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": "all-linear"}
WORDS = ["the", "model", "learns", "to", "answer", "short", "questions", "about", "data", "files", "jobs", "and", "adapters", "with", "clear", "steps", "while", "keeping", "every", "reply", "brief", "polite", "and", "correct", "for", "the", "user"]


def default_model() -> Path:
    from gateway_local.convert import download_smollm2_gguf, gguf_to_hf

    cache = Path.home() / ".cache" / "gateway-tests"
    dest = cache / "smollm2-135m-v1"
    if not (dest / "config.json").exists():
        gguf_to_hf(download_smollm2_gguf(cache), dest)
    return dest


def make_conversations(count: int, lo: int, hi: int, seed: int) -> list[list[dict[str, str]]]:
    rnd = random.Random(seed)
    chats = []
    for _ in range(count):
        # Long-tailed lengths, as real chat data has.
        words = int(min(hi, lo + rnd.expovariate(1.0) * (hi - lo) / 4))
        chats.append([
            {"role": "user", "content": " ".join(rnd.choices(WORDS, k=max(3, words // 4)))},
            {"role": "assistant", "content": " ".join(rnd.choices(WORDS, k=words))},
        ])
    return chats


def examples_for(tokenizer: Any, chats: list[list[dict[str, str]]], fixed: int | None) -> list[Any]:
    from gateway_local.training_data import Example, tokenize_example

    out = []
    for chat in chats:
        ex = tokenize_example(tokenizer, chat)
        if fixed is not None:
            assert len(ex) >= fixed, "fixed-length examples must be long enough"
            ex = Example(ex.input_ids[:fixed], ex.labels[:fixed], ex.position_ids[:fixed])
        out.append(ex)
    return out


def run_gateway(model: Path, chats: list[Any], args: argparse.Namespace, packing: bool,
                fixed: int | None, workdir: Path) -> dict[str, float]:
    """The local trainer itself, through its public train() generator."""
    from gateway_local.trainer import LocalTrainer

    from gateway.contracts import TrainingResult, TrainingSpec

    data = workdir / f"train-{packing}-{fixed}.jsonl"
    data.write_text("".join(json.dumps({"messages": c}) + "\n" for c in chats))
    hp = {**LORA, "max_steps": args.steps, "batch_size": args.batch_size, "packing": packing,
          "max_seq_len": fixed or args.max_seq_len, "logging_steps": args.steps, "checkpoint_steps": 0}
    spec = TrainingSpec(job_id="bench", base=str(model), base_path=str(model), training_file=data,
                        validation_file=None, suffix=None, hyperparameters=hp,
                        output_dir=workdir / f"out-{packing}-{fixed}")

    class Never:
        def cancelled(self) -> bool:
            return False

    for item in LocalTrainer().train(spec, Never()):
        if isinstance(item, TrainingResult):
            return {"tokens": item.metrics["trained_tokens"], "seconds": item.metrics["train_runtime_s"]}
    raise RuntimeError("no result")


def run_baseline(model_dir: Path, examples: list[Any], args: argparse.Namespace,
                 workdir: Path) -> dict[str, float]:
    """transformers Trainer + peft, padding each batch to its longest example."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    torch.manual_seed(42)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    counted = {"tokens": 0}

    def collate(rows: list[Any]) -> dict[str, Any]:
        width = max(len(r) for r in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r.input_ids)
            labels[i, : len(r)] = torch.tensor(r.labels)
            mask[i, : len(r)] = 1
        counted["tokens"] += int(mask.sum())
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    clock: dict[str, float] = {}

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            clock["start"] = time.perf_counter()

        def on_train_end(self, *a: Any, **k: Any) -> None:
            clock["end"] = time.perf_counter()

    targs = TrainingArguments(
        output_dir=str(workdir / "hf"), per_device_train_batch_size=args.batch_size,
        max_steps=args.steps, learning_rate=2e-4, logging_steps=args.steps, save_strategy="no",
        report_to=[], use_cpu=not torch.cuda.is_available(), bf16=torch.cuda.is_available(),
        dataloader_num_workers=0, seed=42, remove_unused_columns=False, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=examples, data_collator=collate,
                      callbacks=[Clock()])
    trainer.train()
    return {"tokens": counted["tokens"], "seconds": clock["end"] - clock["start"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="HF folder (default: SmolLM2-135M, converted once).")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128, help="Length in fixed mode.")
    parser.add_argument("--max-seq-len", type=int, default=512, help="Packed row length in variable mode.")
    parser.add_argument("--peak-gflops", type=float, default=330.0)
    parser.add_argument("--modes", default="fixed,variable")
    args = parser.parse_args()

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    model_dir = args.model or default_model()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    with torch.device("meta"):
        params = sum(p.numel() for p in AutoModelForCausalLM.from_config(
            AutoConfig.from_pretrained(str(model_dir))).parameters())
    print(f"model {model_dir.name}: {params / 1e6:.1f}M parameters; {torch.get_num_threads()} threads; "
          f"steps {args.steps}, batch {args.batch_size}; peak {args.peak_gflops:.0f} GFLOP/s assumed")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for mode in args.modes.split(","):
            fixed = args.seq_len if mode == "fixed" else None
            need = args.steps * args.batch_size * (1 if fixed else args.max_seq_len // 48 + 2)
            chats = (make_conversations(need, 200, 260, 1) if fixed
                     else make_conversations(need, 8, args.max_seq_len - 60, 2))
            # Fixed mode: every example is longer than --seq-len and both sides cut it there.
            examples = examples_for(tokenizer, chats, fixed)
            baseline = run_baseline(model_dir, examples, args, work)
            ours = run_gateway(model_dir, chats, args, packing=not fixed, fixed=fixed, workdir=work)
            for name, r in (("transformers Trainer+peft", baseline), ("gateway local", ours)):
                tps = r["tokens"] / r["seconds"]
                rows.append((mode, name, tps, 4 * params * tps / 1e9))
            ratio = rows[-1][2] / rows[-2][2]
            target = 1.0 if fixed else 1.5
            rows.append((mode, "ratio", ratio, target))
            _print(rows[-3:], args.peak_gflops)  # as each mode ends: runs can be long on a busy CPU


def _print(rows: list[tuple[str, str, float, float]], peak: float) -> None:
    print(f"{'mode':9} {'trainer':27} {'tokens/s':>9} {'GFLOP/s':>8} {'MFU':>6}")
    for mode, name, value, extra in rows:
        if name == "ratio":
            verdict = "meets" if value >= extra else "misses"
            print(f"{mode:9} {'ratio gateway/baseline':27} {value:9.2f}  ({verdict} target {extra})")
        else:
            print(f"{mode:9} {name:27} {value:9.1f} {extra:8.1f} {extra / peak:6.1%}")
    print(flush=True)


if __name__ == "__main__":
    main()
