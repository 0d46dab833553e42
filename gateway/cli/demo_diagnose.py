"""`gateway demo --diagnose`: behaviour or knowledge, on policy-knowledge.

The policy-knowledge set asks for facts of an invented retailer that its
train.jsonl does not hold (they are in its corpus). A fine-tune learns the
answer format but cannot learn those facts; retrieval can find them. The demo
fine-tunes SmolLM2-135M-Instruct briefly, runs `gateway diagnose` and writes
the report with the 2×2 chart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gateway.cli.context import AppContext
from gateway.cli.demo_cmd import Stages, base_model, fine_tune, training_runtime

DIAGNOSE_EVALSET = "policy-knowledge"
DIAGNOSE_VERSION = "policy-bot"
RETRIEVE_K, FEWSHOT_K = 4, 3
# The answers are one short sentence (under 40 tokens with the system prompt
# and question under 100), so short sequences and small batches keep the
# training to a minute or two on 2 cores.
DIAGNOSE_HYPERPARAMETERS: dict[str, Any] = {
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "learning_rate": 2e-3,
    "epochs": 1,
    "max_steps": 20,
    "batch_size": 4,
    "max_seq_len": 128,
    "warmup_steps": 2,
    "logging_steps": 1,
    "checkpoint_steps": 10,
}


def diagnose_demo(app: AppContext, output: Path, max_steps: int | None, retrain: bool,
                  base: str | None, limit: int | None) -> None:
    from gateway.cli.diagnose_cmd import print_diagnosis
    from gateway.evaluation.diagnosis import diagnose
    from gateway.evaluation.evalset import load_evalset
    from gateway.evaluation.report import write_report
    from gateway.hardware import cpu_summary

    stages = Stages(total=4)
    hardware = cpu_summary()
    click.echo(f"Machine: {hardware}")
    stages.begin(1, "Base model")
    base_name = base_model(app, base)
    evalset = load_evalset(DIAGNOSE_EVALSET)
    rows = len(evalset.rows) if limit is None else min(limit, len(evalset.rows))
    click.echo(f"Eval set {evalset.name}: {rows} questions about policies the training data "
               "does not cover; the answers are in its corpus")

    stages.begin(2, f"Fine-tuning a LoRA adapter on {base_name}")
    params = dict(DIAGNOSE_HYPERPARAMETERS)
    if max_steps is not None:
        params["max_steps"] = max_steps
    version = fine_tune(app, evalset, base_name, params, retrain, name=DIAGNOSE_VERSION)

    stages.begin(3, "Diagnosing: base, few-shot, retrieval, fine-tune, fine-tune + retrieval")
    diagnosis = diagnose(app.config, app.store, evalset, base_name, version.ref,
                         retrieve_k=RETRIEVE_K, fewshot_k=FEWSHOT_K, limit=limit, concurrency=16)
    click.echo("")
    print_diagnosis(diagnosis.as_dict())

    stages.begin(4, "Report")
    path = write_report(app.store, list(diagnosis.runs.values()), output,
                        diagnosis=diagnosis.as_dict())
    click.echo(f"Wrote {path.resolve()} (the 2x2 chart, then the five runs compared with the base)")
    stages.summary(f"{hardware}; {training_runtime(version)}")
