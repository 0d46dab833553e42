"""Retrieval corpora: documents cut into passages, with stable ids and a hash.

A corpus is either
- a folder of `.txt` and `.md` files (read recursively; a document's id is its
  path inside the folder, POSIX-style, without the suffix: `fees/wire`), or
- a JSONL file of `{"id": ..., "text": ...}` objects, one document per line.

The chunking rule, the same for both: a document is split into paragraphs at
blank lines; a markdown heading (a line starting with `#`) always starts a
new passage; consecutive paragraphs are packed into one passage until adding
the next would pass `MAX_PASSAGE_WORDS` words (a longer paragraph becomes a
passage of its own, cut at that many words). Passage ids are `DOC#N`, N
counting from 0 in document order. A heading is kept with the text under it.

The corpus hash covers every passage id and text, so an edited document or a
changed chunking rule changes the runs' fingerprints and the cache keys.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from gateway.contracts import Passage
from gateway.errors import ValidationError

MAX_PASSAGE_WORDS = 200
DOCUMENT_SUFFIXES = (".txt", ".md")
_HEADING = re.compile(r"^\s{0,3}#")


class Corpus:
    """Passages of one corpus, in a fixed order, and their hash."""

    def __init__(self, source: Path, passages: list[Passage]) -> None:
        self.source = source
        self.passages = passages
        digest = hashlib.sha256()
        for passage in passages:
            digest.update(passage.id.encode() + b"\0" + passage.text.encode() + b"\0")
        self.sha256 = digest.hexdigest()

    def __len__(self) -> int:
        return len(self.passages)


def _paragraphs(text: str) -> list[str]:
    """Blank-line paragraphs; a heading line is split off the text above it."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if not line.strip() or _HEADING.match(line):
            if current:
                paragraphs.append("\n".join(current))
            current = [line] if line.strip() else []
            continue
        current.append(line)
    if current:
        paragraphs.append("\n".join(current))
    return [p.strip() for p in paragraphs if p.strip()]


def chunk(doc_id: str, text: str, max_words: int = MAX_PASSAGE_WORDS) -> list[Passage]:
    """One document's passages, by the rule in the module docstring."""
    pieces: list[str] = []
    current: list[str] = []
    words = 0
    for paragraph in _paragraphs(text):
        size = len(paragraph.split())
        starts_section = bool(_HEADING.match(paragraph))
        if current and (starts_section or words + size > max_words):
            pieces.append("\n\n".join(current))
            current, words = [], 0
        if size > max_words:  # a long paragraph is cut at max_words
            tokens = paragraph.split()
            for start in range(0, len(tokens), max_words):
                pieces.append(" ".join(tokens[start:start + max_words]))
            continue
        current.append(paragraph)
        words += size
    if current:
        pieces.append("\n\n".join(current))
    return [Passage(id=f"{doc_id}#{i}", text=piece) for i, piece in enumerate(pieces)]


def _folder_documents(folder: Path) -> list[tuple[str, str]]:
    documents = []
    for file in sorted(p for p in folder.rglob("*") if p.suffix in DOCUMENT_SUFFIXES and p.is_file()):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError(f"corpus {folder}: cannot read {file}: {exc}", [(None, str(exc))]) from exc
        documents.append((file.relative_to(folder).with_suffix("").as_posix(), text))
    return documents


def _jsonl_documents(path: Path) -> list[tuple[str, str]]:
    documents: list[tuple[str, str]] = []
    errors: list[tuple[int | None, str]] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"corpus {path}: cannot read: {exc}", [(None, str(exc))]) from exc
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append((line_no, f"invalid JSON: {exc.msg}"))
            continue
        if not (isinstance(obj, dict) and isinstance(obj.get("id"), (str, int))
                and isinstance(obj.get("text"), str)):
            errors.append((line_no, 'needs {"id": ..., "text": "..."}'))
            continue
        doc_id = str(obj["id"])
        if doc_id in seen:
            errors.append((line_no, f"duplicate id {doc_id!r}"))
            continue
        seen.add(doc_id)
        documents.append((doc_id, obj["text"]))
    if errors:
        shown = "; ".join(f"line {n}: {m}" for n, m in errors[:20])
        raise ValidationError(f"corpus {path}: {shown}", errors)
    return documents


def load_corpus(source: str | Path) -> Corpus:
    """A corpus from a folder of .txt/.md files or a JSONL of {id, text}."""
    path = Path(source).expanduser().resolve()
    if path.is_dir():
        documents = _folder_documents(path)
    elif path.is_file():
        documents = _jsonl_documents(path)
    else:
        raise ValidationError(f"corpus {path} does not exist (a folder of .txt/.md files "
                              "or a JSONL of {id, text})", [(None, "no such corpus")])
    passages = [passage for doc_id, text in documents for passage in chunk(doc_id, text)]
    if not passages:
        raise ValidationError(f"corpus {path} holds no text", [(None, "empty corpus")])
    return Corpus(path, passages)


def gold_hit(gold: str, retrieved: list[str]) -> bool:
    """Whether a gold passage was retrieved: `gold` is a passage id (`DOC#N`) or
    a document id, which any of its passages satisfies."""
    return any(pid == gold or pid.split("#", 1)[0] == gold for pid in retrieved)
