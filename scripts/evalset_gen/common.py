"""Helpers shared by the eval-set builders: output writing, near-duplicate
detection, typo noise and number words."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A train input this close to any eval input (character-trigram Jaccard after
# normalising, or the share of the shorter text's trigrams found in the other)
# is dropped. The tests flag pairs at 0.8 and 0.9, so this leaves a margin.
NEAR_DUPLICATE = 0.7
CONTAINED = 0.8

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(n: int) -> str:
    """0..99 in words, the way people type them ("twenty-four")."""
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def normalize(text: str) -> str:
    """Lowercase, digits folded to 0, punctuation and spacing collapsed."""
    text = re.sub(r"\d", "0", text.lower())
    return re.sub(r"[^a-z0 ]+", " ", re.sub(r"\s+", " ", text)).strip()


def trigrams(text: str) -> frozenset[str]:
    norm = normalize(text)
    return frozenset(norm[i : i + 3] for i in range(max(len(norm) - 2, 1)))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def containment(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / min(len(a), len(b)) if a and b else 1.0


def near_duplicate(a: frozenset[str], b: frozenset[str]) -> bool:
    return jaccard(a, b) >= NEAR_DUPLICATE or containment(a, b) >= CONTAINED


def holdout(
    rng: random.Random, pools: dict[str, tuple[str, ...]], share: float = 0.35
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Split each pool of templates into eval-only and train-only parts, so the
    eval set measures unseen phrasings rather than memorised ones."""
    eval_part: dict[str, list[str]] = {}
    train_part: dict[str, list[str]] = {}
    for key, pool in pools.items():
        items = list(pool)
        rng.shuffle(items)
        cut = max(1, round(len(items) * share))
        eval_part[key], train_part[key] = items[:cut], items[cut:]
    return eval_part, train_part


@dataclass
class Candidate:
    """One generated example before it is split into eval and train rows."""

    user: str
    ideal: str | list[str]  # a list (accepted answers) only in eval rows
    stratum: str  # the value kept balanced (label, intent, document type)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Split:
    eval: list[Candidate]
    train: list[Candidate]


def build_split(
    make: Callable[[str, int, bool], Candidate],
    strata: Sequence[str],
    n_eval: int,
    n_train: int,
    rng: random.Random,
) -> Split:
    """Generate balanced eval rows, then train rows that are neither exact nor
    near duplicates of any eval input (nor of each other).

    `make(stratum, index, is_eval)` builds one candidate; `index` counts
    the rows asked for so far in that part, so builders can assign clusters.
    """

    def quota(total: int) -> list[str]:
        per, extra = divmod(total, len(strata))
        order = [s for i, s in enumerate(strata) for _ in range(per + (i < extra))]
        rng.shuffle(order)
        return order

    eval_rows: list[Candidate] = []
    seen: set[str] = set()
    for i, stratum in enumerate(quota(n_eval)):
        for _ in range(200):
            cand = make(stratum, i, True)
            if normalize(cand.user) not in seen:
                break
        else:
            raise RuntimeError(f"no distinct eval example for {stratum!r}")
        seen.add(normalize(cand.user))
        eval_rows.append(cand)

    eval_grams = [trigrams(c.user) for c in eval_rows]
    train_rows: list[Candidate] = []
    for i, stratum in enumerate(quota(n_train)):
        for _ in range(500):
            cand = make(stratum, i, False)
            grams = trigrams(cand.user)
            if normalize(cand.user) in seen:
                continue
            if not any(near_duplicate(grams, g) for g in eval_grams):
                break
        else:
            raise RuntimeError(f"no distinct train example for {stratum!r}")
        seen.add(normalize(cand.user))
        train_rows.append(cand)
    return Split(eval_rows, train_rows)


def add_typos(text: str, rng: random.Random, count: int) -> str:
    """Realistic slips in `count` words: swapped, dropped or doubled letters."""
    words = text.split(" ")
    spots = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    for i in rng.sample(spots, min(count, len(spots))):
        w = words[i]
        j = rng.randrange(1, len(w) - 2)
        kind = rng.choice(("swap", "drop", "double"))
        if kind == "swap":
            w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        elif kind == "drop":
            w = w[:j] + w[j + 1 :]
        else:
            w = w[:j] + w[j] + w[j:]
        words[i] = w
    return " ".join(words)


def chat_row(system: str, user: str, assistant: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
    }


def eval_row(prefix: str, index: int, system: str, cand: Candidate) -> dict[str, Any]:
    return {
        "id": f"{prefix}-{index:03d}",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": cand.user},
        ],
        "ideal": cand.ideal,
        "metadata": cand.metadata,
    }


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_set(out: Path, name: str, prefix: str, system: str, yaml_text: str, split: Split) -> None:
    """Write evalset.yaml, eval.jsonl and train.jsonl for one set."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evalset.yaml").write_text(yaml_text, encoding="utf-8")
    write_jsonl(
        folder / "eval.jsonl",
        [eval_row(prefix, i + 1, system, c) for i, c in enumerate(split.eval)],
    )
    train = []
    for c in split.train:
        # A training reply is one text; only eval rows may list accepted answers.
        assert isinstance(c.ideal, str), f"{name}: a train row's ideal must be text"
        train.append(chat_row(system, c.user, c.ideal))
    write_jsonl(folder / "train.jsonl", train)


FIRST_NAMES = (
    "Maria", "James", "Priya", "Tom", "Aisha", "Daniel", "Mei", "Lukas", "Sofia", "Omar",
    "Hannah", "Kenji", "Chloe", "Mateo", "Fatima", "Ben", "Olivia", "Raj", "Grace", "Diego",
    "Nora", "Samuel", "Zoë", "Ahmed", "Elena", "Marcus", "Yuki", "Isabel", "Kwame", "Laura",
    "Patrick", "Ana", "Ravi", "Emma", "Tariq", "Julia", "Noah", "Ingrid", "Carlos", "Leah",
    "Dmitri", "Amara", "Felix", "Rosa", "Hugo", "Sunita", "Owen", "Lina", "Jonas", "Beatriz",
)  # fmt: skip
LAST_NAMES = (
    "Garcia", "Okafor", "Shah", "Becker", "Nguyen", "Kowalski", "O'Brien", "Haddad", "Tanaka",
    "Rossi", "Müller", "Silva", "Johnson", "Patel", "Andersen", "Moreau", "Kim", "Dubois",
    "Mensah", "Fischer", "Lopez", "Hughes", "Novak", "Ibrahim", "Costa", "Lindqvist", "Walsh",
    "Chen", "Romero", "Adeyemi", "Byrne", "Sato", "Kaur", "Petrov", "Alvarez",
)  # fmt: skip
