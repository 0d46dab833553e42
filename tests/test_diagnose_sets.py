"""scripts/diagnose_sets.sh, reduced to fit CI: SmolLM2 fine-tuned for 20 steps of 4 rows on
each new set, then `gateway diagnose` on its first 40 samples. regulated-wording was built as a
behaviour problem and policy-knowledge as a knowledge problem; the test asserts what these short
runs show (see the README's "Behaviour or knowledge?" for the full-size figures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "diagnose_sets.sh"
LIMIT = 40


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_diagnose_tells_behaviour_from_knowledge(smollm2_dir: Path, tmp_path: Path) -> None:
    env = dict(os.environ, SMOLLM2_PATH=str(smollm2_dir), STEPS="20", BATCH="4", LIMIT=str(LIMIT),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("GATEWAY_CONFIG", None)
    work = tmp_path / "work"
    result = subprocess.run(["bash", str(SCRIPT), str(work)], env=env, text=True,
                            capture_output=True, timeout=1100, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wording = json.loads((work / "regulated-wording.json").read_text())
    policy = json.loads((work / "policy-knowledge.json").read_text())
    for diagnosis in (wording, policy):
        assert diagnosis["n"] == LIMIT and len(diagnosis["runs"]) == 5, diagnosis["notes"]
        assert (work / f"{diagnosis['evalset']}.html").is_file()
    summary = {d["evalset"]: (d["sentence"], d["means"]) for d in (wording, policy)}

    # regulated-wording: the fine-tune learns the mandated wording; prompting does not.
    ft = wording["effects"]["fine-tuning"]
    assert ft["low"] > 0 and ft["estimate"] >= wording["min_effect"], summary
    assert wording["effects"]["fine-tune vs best prompt-only"]["low"] > 0, summary
    assert wording["verdict"] in ("behaviour", "both"), summary

    # policy-knowledge: retrieval finds the facts; the fine-tune never saw them.
    assert policy["verdict"] == "knowledge", summary
    assert policy["effects"]["retrieval"]["low"] > 0, summary
    assert policy["means"]["fine-tune"] < policy["means"]["base + retrieval"], summary
    assert policy["retrieval_recall"] >= 0.8, summary
