"""Generate the shipped eval sets under evalsets/ (deterministic for a given seed).

    python scripts/make_evalsets.py [--out DIR] [--seed N]

Each set gets evalset.yaml, eval.jsonl and train.jsonl (80 eval and 200 chat rows;
regulated-wording 56 and 140, policy-knowledge 48 and 72, plus its corpus/ folder).
Train rows are never exact or near duplicates of eval inputs. Re-running with the
same seed rewrites byte-identical files, so the output can be committed.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evalset_gen import (
    house_style,
    json_extraction,
    policy_knowledge,
    regulated_wording,
    support_tickets,
)
from evalset_gen.common import write_set

ROOT = Path(__file__).resolve().parent.parent
SEED = 20251125


def generate(out: Path, seed: int = SEED) -> None:
    modules = (support_tickets, json_extraction, house_style, regulated_wording, policy_knowledge)
    for module in modules:
        # One generator per set, so editing one set leaves the others unchanged.
        rng = random.Random(f"{seed}:{module.NAME}")
        split = module.build(rng)
        write_set(out, module.NAME, module.PREFIX, module.SYSTEM, module.yaml_text(), split)
        if hasattr(module, "write_extras"):
            module.write_extras(out / module.NAME)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "evalsets")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    generate(args.out, args.seed)
    print(f"wrote eval sets to {args.out}")


if __name__ == "__main__":
    main()
