"""scripts/compare_formats.sh, reduced to fit CI: SmolLM2 fine-tuned on json-extraction for 8 steps
of 2 rows, then base, base + schema, fine-tune and fine-tune + schema on the first 6 samples of a
copy of the set whose answers stop at 96 tokens, compared pairwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.store import Store

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "compare_formats.sh"
MAX_TOKENS = 96


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_format_question_is_answered_four_ways(smollm2_dir: Path, tmp_path: Path) -> None:
    evalset = shutil.copytree(ROOT / "evalsets" / "json-extraction", tmp_path / "json-extraction")
    spec = (evalset / "evalset.yaml").read_text()
    assert "max_tokens: 256" in spec
    (evalset / "evalset.yaml").write_text(spec.replace("max_tokens: 256", f"max_tokens: {MAX_TOKENS}"))
    env = dict(os.environ, SMOLLM2_PATH=str(smollm2_dir), STEPS="8", BATCH="2", LIMIT="6",
               EVALSET=str(evalset), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("GATEWAY_CONFIG", None)
    work = tmp_path / "work"
    result = subprocess.run(["bash", str(SCRIPT), str(work)], env=env, text=True,
                            capture_output=True, timeout=1100, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = json.loads((work / "runs.json").read_text())
    assert len(runs) == 4 and all(r["samples"] == 6 and r["errors"] == 0 for r in runs), runs
    assert [r["model"].endswith("[schema]") for r in runs] == [False, True, False, True]
    # Under the schema, every answer that ended before max_tokens is valid JSON of the schema.
    store = Store(work / "home" / "gateway.duckdb")
    for run in (runs[1], runs[3]):
        rows = store.query(
            "SELECT s.completion_tokens, c.passed FROM eval_samples s JOIN eval_scores c "
            "ON c.run_id = s.run_id AND c.sample_id = s.sample_id AND c.scorer = 'json' "
            "WHERE s.run_id = ?", [run["run_id"]])
        assert len(rows) == 6
        assert all(r["passed"] for r in rows if r["completion_tokens"] < MAX_TOKENS), rows
    for question in ("does the schema alone fix the format?", "does fine-tuning fix it?",
                     "given the schema, does fine-tuning still help?",
                     "given the fine-tune, does the schema still help?"):
        assert question in result.stdout
    assert result.stdout.count("B − A (95% CI)") == 4, result.stdout[-2000:]
