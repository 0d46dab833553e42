"""lm-evaluation-harness, a client nobody here wrote, pointed at `gateway serve` (tox env `lmeval`).

- `--model local-completions` with its defaults (tokenized, batched requests; `echo` and
  `logprobs` for loglikelihood) runs a multiple-choice task. Its accuracy equals lm-eval's own
  `--model hf` run on the same model and data, and every loglikelihood agrees to 1e-3.
- `--model local-chat-completions --apply_chat_template` runs a generation task.

Both sides run the tiny model in float32, on task files and data the test writes (no hub).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from servers import gateway_server

from gateway.registry import BaseModel, add_base_model
from gateway.store import Store

pytestmark = pytest.mark.lmeval

QUESTIONS = [
    ("What colour is the sky on a clear day?", ["blue", "green", "red", "black"], 0),
    ("How many legs does a cat have?", ["two", "four", "six", "eight"], 1),
    ("Which is a fruit?", ["carrot", "potato", "apple", "onion"], 2),
    ("What do bees make?", ["milk", "silk", "wool", "honey"], 3),
    ("Which animal barks?", ["dog", "cat", "fish", "bird"], 0),
    ("What is frozen water called?", ["steam", "ice", "sand", "glass"], 1),
    ("Which season is the coldest?", ["summer", "spring", "winter", "autumn"], 2),
    ("What do you use to write on paper?", ["spoon", "plate", "shoe", "pen"], 3),
]

MC_TASK = """\
task: gw_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: choices
doc_to_target: answer
metric_list:
  - metric: acc
"""

GEN_TASK = """\
task: gw_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{choices[answer]}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: !function utils.contains
    aggregation: mean
    higher_is_better: true
"""

UTILS = '''
def contains(references, predictions):
    return float(references[0].lower() in predictions[0].lower())
'''


def write_tasks(folder: Path) -> Path:
    folder.mkdir(parents=True)
    data = folder / "questions.jsonl"
    data.write_text("".join(json.dumps({"question": q, "choices": c, "answer": a}) + "\n"
                            for q, c, a in QUESTIONS), encoding="utf-8")
    (folder / "gw_mc.yaml").write_text(MC_TASK.format(data=data), encoding="utf-8")
    (folder / "gw_gen.yaml").write_text(GEN_TASK.format(data=data), encoding="utf-8")
    (folder / "utils.py").write_text(UTILS, encoding="utf-8")
    return folder


def lm_eval(*args: str, out: Path) -> dict[str, Any]:
    """Run the lm_eval CLI; return its results JSON and samples by task."""
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", OPENAI_API_KEY="unused")
    done = subprocess.run([sys.executable, "-m", "lm_eval", *args, "--output_path", str(out),
                           "--log_samples"], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"lm_eval {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    results = json.loads(sorted(out.rglob("results_*.json"))[-1].read_text(encoding="utf-8"))
    samples = {}
    for path in out.rglob("samples_*.jsonl"):
        task = path.name.removeprefix("samples_").rsplit("_", 1)[0]
        samples[task] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {"results": results["results"], "samples": samples}


def loglikelihoods(samples: list[dict[str, Any]]) -> dict[tuple[int, int], float]:
    return {(s["doc_id"], i): float(resp[0][0]) for s in samples for i, resp in enumerate(s["resps"])}


def test_lm_eval_through_the_gateway_matches_its_own_hf_run(tmp_path: Path, tiny_model_dir: Path) -> None:
    tasks = write_tasks(tmp_path / "tasks")
    direct = lm_eval("--model", "hf", "--model_args", f"pretrained={tiny_model_dir},dtype=float32",
                     "--tasks", "gw_mc", "--include_path", str(tasks), "--device", "cpu",
                     "--batch_size", "4", out=tmp_path / "hf")

    home = tmp_path / "home"
    add_base_model(Store(home / "gateway.duckdb"),
                   BaseModel(name="tiny", source="path", path=str(tiny_model_dir)))
    (home / "config.toml").write_text('[backends.tiny]\nbackend = "local"\ndtype = "float32"\n')
    with gateway_server(home, startup_timeout=120) as url:
        served = lm_eval("--model", "local-completions", "--model_args",
                         f"model=tiny,base_url={url}/v1/completions,tokenizer={tiny_model_dir},"
                         "num_concurrent=2,max_retries=1",
                         "--tasks", "gw_mc", "--include_path", str(tasks), "--batch_size", "4",
                         out=tmp_path / "served")
        chat = lm_eval("--model", "local-chat-completions", "--model_args",
                       f"model=tiny,base_url={url}/v1/chat/completions,num_concurrent=2,max_retries=1",
                       "--apply_chat_template", "--tasks", "gw_gen", "--include_path", str(tasks),
                       out=tmp_path / "chat")

    accuracy = direct["results"]["gw_mc"]["acc,none"], served["results"]["gw_mc"]["acc,none"]
    expected, got = loglikelihoods(direct["samples"]["gw_mc"]), loglikelihoods(served["samples"]["gw_mc"])
    assert expected.keys() == got.keys() and len(got) == 4 * len(QUESTIONS)
    largest = max(abs(expected[k] - got[k]) for k in expected)
    print(f"\nlm-eval gw_mc accuracy: hf {accuracy[0]:.3f}, through the gateway {accuracy[1]:.3f}; "
          f"largest loglikelihood difference {largest:.2e} over {len(got)} choices")
    assert accuracy[0] == accuracy[1] and largest < 1e-3
    generated = chat["samples"]["gw_gen"]
    assert len(generated) == len(QUESTIONS) and all(isinstance(s["resps"][0][0], str) for s in generated)
    assert "contains,none" in chat["results"]["gw_gen"]
