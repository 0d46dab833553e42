"""scripts/compare_formats.sh, reduced: SmolLM2 fine-tuned on json-extraction for 20 steps, then
base, base + schema, fine-tune and fine-tune + schema on its first 20 samples, compared pairwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_formats.sh"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_format_question_is_answered_four_ways(smollm2_dir: Path, tmp_path: Path) -> None:
    env = dict(os.environ, SMOLLM2_PATH=str(smollm2_dir), STEPS="20", LIMIT="20",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("GATEWAY_CONFIG", None)
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "work")], env=env, text=True,
                            capture_output=True, timeout=1100, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = json.loads((tmp_path / "work" / "runs.json").read_text())
    assert len(runs) == 4 and all(r["samples"] == 20 and r["errors"] == 0 for r in runs)
    valid = [next(s["mean"] for s in run["scores"] if s["scorer"] == "json") for run in runs]
    base, base_schema, fine_tune, fine_tune_schema = valid
    # Decoding under the schema makes the answers valid JSON of the schema, trained or not
    # (only an answer cut off at max_tokens can fail).
    assert base_schema >= base and fine_tune_schema >= fine_tune
    assert base_schema >= 0.9 and fine_tune_schema >= 0.9, valid
    for question in ("does the schema alone fix the format?", "does fine-tuning fix it?",
                     "given the schema, does fine-tuning still help?",
                     "given the fine-tune, does the schema still help?"):
        assert question in result.stdout
    assert result.stdout.count("paired") >= 4 or result.stdout.count("B − A") >= 4, result.stdout[-2000:]
