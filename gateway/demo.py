"""What `gateway demo` is made of, apart from its printing (gateway/cli/demo_cmd.py).

The demo routes support tickets (the shipped `support-tickets` eval set) with
the built-in SmolLM2-135M-Instruct: the base model zero-shot and with a
few-shot prompt, then a LoRA fine-tune on the set's train.jsonl. This module
holds its settings, finds an earlier identical fine-tune to reuse, and builds
the closing instructions (serve, curl, openai SDK, SQL).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.contracts import ModelVersion
from gateway.registry import list_versions
from gateway.store import Store

EVALSET = "support-tickets"
BUILTIN_MODEL = "smollm2-135m"
VERSION_NAME = "support-bot"
FEWSHOT_PROMPT = "fewshot:3"
# The scorer whose verdict decides "significantly better" (macro-F1, paired bootstrap).
DECIDING_SCORER = "classification"
TRAINER = "local"

# The train rows are 212-253 tokens, so 256 keeps every label. Training runs in
# float32 on a CPU at about 105 trained tokens/s on 2 cores (measured), so the
# recipe is 15 steps of 8 rows (120 of the 200 rows, about 27k tokens, 4-5
# minutes) at a higher learning rate, instead of two epochs (50 steps).
HYPERPARAMETERS: dict[str, Any] = {
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "learning_rate": 2e-3,
    "epochs": 1,
    "max_steps": 15,
    "batch_size": 8,
    "max_seq_len": 256,
    "warmup_steps": 2,
    "logging_steps": 1,
    "checkpoint_steps": 10,
}

SQL_EXAMPLE = (
    "SELECT r.model, r.prompt_variant, count(*) AS n, round(avg(s.value), 3) AS accuracy "
    "FROM eval_runs r JOIN eval_scores s ON s.run_id = r.id "
    f"WHERE r.evalset = '{EVALSET}' AND s.scorer = '{DECIDING_SCORER}' AND s.sample_id <> '*' "
    "GROUP BY ALL ORDER BY accuracy DESC"
)

EXAMPLE_TICKET = "Hi, I was charged twice for my Homebase Plus plan this month. Can I get one of them back?"


def hyperparameters(epochs: int | None = None, max_steps: int | None = None) -> dict[str, Any]:
    """The demo's training settings with the command line's overrides."""
    params = dict(HYPERPARAMETERS)
    if epochs is not None:
        params["epochs"] = epochs
        params.pop("max_steps")  # --epochs means whole epochs
    if max_steps is not None:
        params["max_steps"] = max_steps
    return params


def resolved_hyperparameters(params: dict[str, Any]) -> dict[str, Any]:
    """The settings as the trainer will store them (defaults filled in)."""
    from gateway.plugins import get_trainer

    return get_trainer(TRAINER)().resolve_hyperparameters(params)


def reusable_version(
    store: Store, base: str, dataset_sha256: str, params: dict[str, Any], name: str = VERSION_NAME
) -> ModelVersion | None:
    """The newest demo fine-tune `name` of `base` on the same data with the same settings
    whose adapter is still on disk, if any: re-running the demo need not train again."""
    for version in reversed(list_versions(store, name)):
        if (
            version.base == base
            and version.trainer == TRAINER
            and version.dataset_sha256 == dataset_sha256
            and version.hyperparameters == params
            and version.artifact_uri
            and Path(version.artifact_uri).is_dir()
        ):
            return version
    return None


def system_prompt(messages: list[dict[str, Any]]) -> str | None:
    """The system prompt of an eval row's messages, for the serving examples."""
    for message in messages:
        if message.get("role") == "system" and isinstance(message.get("content"), str):
            return str(message["content"])
    return None


def next_steps(config: Config, version: ModelVersion, system: str | None, needs_key: bool) -> str:
    """How to serve the fine-tune and query it with curl and the openai SDK, and
    where the results are (the DuckDB file and a SQL query to try)."""
    host = config.server.host
    base_url = f"http://{host}:{config.server.port}/v1"
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": EXAMPLE_TICKET})
    body = {"model": version.ref, "messages": messages, "max_tokens": 8, "temperature": 0}
    auth = ' \\\n  -H "Authorization: Bearer $GATEWAY_API_KEY"' if needs_key else ""
    key_note = (
        "This store has API keys: export GATEWAY_API_KEY=<a key from `gateway keys create`>.\n"
        if needs_key else ""
    )
    python_messages = "\n".join(f"        {m!r}," for m in messages)
    home = shlex.quote(str(config.home))
    lines = [
        f"Serve it (every registered model and version, OpenAI-compatible, on {base_url}):",
        "",
        f"  GATEWAY_HOME={home} gateway serve",
        "",
        key_note + f"Ask {version.ref} (also reachable as {version.id}) with curl:",
        "",
        # Flush left: a here-document ends only at an unindented EOF.
        f"curl -s {base_url}/chat/completions{auth} \\",
        "  -H 'Content-Type: application/json' -d @- <<'EOF'",
        json.dumps(body, indent=2),
        "EOF",
        "",
        "or with the openai SDK (pip install openai):",
        "",
        "  import os",
        "  from openai import OpenAI",
        f'  client = OpenAI(base_url="{base_url}", api_key=os.environ.get("GATEWAY_API_KEY", "unused"))',
        "  reply = client.chat.completions.create(",
        f'      model="{version.ref}",',
        "      messages=[",
        python_messages,
        "      ],",
        "      max_tokens=8,",
        "      temperature=0,",
        "  )",
        "  print(reply.choices[0].message.content)",
        "",
        f"Everything above is stored in one DuckDB file: {config.db_path}",
        "Try plain SQL on it, joining eval runs and their per-sample scores:",
        "",
        f'  GATEWAY_HOME={home} gateway db sql "{SQL_EXAMPLE}"',
        "",
        "or open the file with any DuckDB client while no gateway command is using it.",
    ]
    return "\n".join(lines)
