"""Eval sets: a YAML file naming a JSONL data file, the scorers and generation settings.

```yaml
name: support-tickets
description: ...
data: eval.jsonl
train: train.jsonl          # optional; OpenAI chat JSONL; the few-shot pool
cluster: customer           # optional metadata key for clustered statistics
generation: {max_tokens: 8, temperature: 0}   # also: top_p, stop, seed, response_format
schema: schema.json         # optional; the answers' JSON schema (inline, or a .json/.yaml path):
                            # the json scorer checks it, `-p schema` decodes under it
corpus: corpus              # optional; documents for `-p retrieve:K` (a folder or a JSONL)
retrieval: {query: last_user}   # optional; see gateway/evaluation/retrieval.py
scorers:
  - name: classification    # evaluator plugin name
    id: classification      # optional display id (defaults to name)
    options: {labels: [billing, refund]}
```

Rows are `{"id", "messages", "ideal", "metadata"}`; openai/evals rows
`{"input": str | messages, "ideal"}` are accepted too (their id is the line number).

Where sets are found, in order: a path, then each directory of
GATEWAY_EVALSETS_PATH (os.pathsep-separated), then `evalset_paths` in
config.toml, then the shipped sets: `evalsets/` next to the `gateway` package
(a source checkout or editable install) or an installed `gateway_evalsets`
resource package. Inside a directory a set is `<dir>/<name>/evalset.yaml`,
`<dir>/<name>.yaml`, or any YAML file whose `name:` is the one asked for.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gateway.errors import GatewayError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from gateway.evaluation.retrieval import RetrievalSettings

YAML_SUFFIXES = (".yaml", ".yml")
GENERATION_KEYS = {"max_tokens", "temperature", "top_p", "stop", "seed", "response_format"}
ROLES = {"system", "user", "assistant", "tool", "developer"}
MAX_REPORTED_ERRORS = 20


@dataclass
class EvalRow:
    id: str
    messages: list[dict[str, Any]]
    ideal: str | list[str] | None
    metadata: dict[str, Any] = field(default_factory=dict)
    line: int = 0


@dataclass
class ScorerSpec:
    name: str
    id: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalSet:
    name: str
    description: str
    path: Path
    rows: list[EvalRow]
    train_path: Path | None
    cluster: str | None
    generation: dict[str, Any]
    scorers: list[ScorerSpec]
    sha256: str
    schema: dict[str, Any] | None = None  # the set-level `schema:`, loaded
    retrieval: RetrievalSettings | None = None  # `corpus:` and `retrieval:`


# ------------------------------------------------------------------ locating


def shipped_evalsets_dir() -> Path | None:
    """The shipped sets: the repo's evalsets/ (source checkout) or the installed resource dir."""
    import gateway

    checkout = Path(gateway.__file__).resolve().parent.parent / "evalsets"
    if checkout.is_dir():
        return checkout
    spec = importlib.util.find_spec("gateway_evalsets")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return None


def evalset_dirs(extra: list[str] | None = None) -> list[Path]:
    """Directories searched for eval sets by name, in order."""
    dirs: list[Path] = []
    env = os.environ.get("GATEWAY_EVALSETS_PATH", "")
    dirs += [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    dirs += [Path(p).expanduser() for p in extra or []]
    shipped = shipped_evalsets_dir()
    if shipped is not None:
        dirs.append(shipped)
    return [d for d in dirs if d.is_dir()]


def _config_dirs() -> list[str]:
    from gateway.config import load_config

    try:
        raw = load_config().raw.get("evalset_paths", [])
    except Exception:  # a broken config is reported by the commands that need it
        return []
    return [str(p) for p in raw] if isinstance(raw, list) else [str(raw)]


def _yaml_name(path: Path) -> str | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return str(name) if name is not None and "data" in data else None


def discover(dirs: list[Path] | None = None) -> dict[str, Path]:
    """Every eval set YAML in the search dirs, by name (the first found wins)."""
    found: dict[str, Path] = {}
    for root in dirs if dirs is not None else evalset_dirs(_config_dirs()):
        candidates = sorted(p for p in root.glob("*") if p.suffix in YAML_SUFFIXES)
        candidates += sorted(p for p in root.glob("*/*") if p.suffix in YAML_SUFFIXES)
        for path in candidates:
            name = _yaml_name(path)
            if name and name not in found:
                found[name] = path
    return found


def find_evalset(name_or_path: str | Path) -> Path:
    """The YAML file of a set given by path (file or folder) or by name."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        for fname in ("evalset.yaml", "evalset.yml"):
            if (path / fname).is_file():
                return path / fname
        yamls = sorted(p for p in path.glob("*") if p.suffix in YAML_SUFFIXES)
        if len(yamls) == 1:
            return yamls[0]
        raise NotFoundError(f"{path} holds no evalset.yaml")
    if path.is_file():
        return path
    name = str(name_or_path)
    dirs = evalset_dirs(_config_dirs())
    for root in dirs:
        for candidate in (root / name / "evalset.yaml", root / name / "evalset.yml",
                          root / f"{name}.yaml", root / f"{name}.yml"):
            if candidate.is_file():
                return candidate
    found = discover(dirs)
    if name in found:
        return found[name]
    raise NotFoundError(
        f"no eval set named {name!r} (and no such file). Known sets: "
        f"{', '.join(sorted(found)) or 'none'}; searched {', '.join(map(str, dirs)) or 'no folders'}. "
        "Add folders with GATEWAY_EVALSETS_PATH."
    )


# ------------------------------------------------------------------ loading


def _fail(path: Path, message: str) -> ValidationError:
    return ValidationError(f"{path}: {message}", [(None, message)])


def _check_messages(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list"
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            return f"messages[{i}] must be an object"
        if msg.get("role") not in ROLES:
            return f"messages[{i}] has role {msg.get('role')!r}; expected one of {sorted(ROLES)}"
        if not isinstance(msg.get("content"), (str, list)):
            return f"messages[{i}] needs a 'content' string"
    return None


def _parse_row(obj: Any, line: int) -> EvalRow:
    """One JSONL row, in either shape; raises ValueError with the reason."""
    if not isinstance(obj, dict):
        raise ValueError("a row must be a JSON object")
    if "messages" in obj:
        messages = obj["messages"]
    elif "input" in obj:
        raw = obj["input"]
        messages = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw
    else:
        raise ValueError("a row needs 'messages' (or openai/evals 'input')")
    problem = _check_messages(messages)
    if problem:
        raise ValueError(problem)
    ideal = obj.get("ideal")
    if ideal is not None and not isinstance(ideal, str) and not (
        isinstance(ideal, list) and all(isinstance(x, str) for x in ideal)
    ):
        raise ValueError("'ideal' must be a string or a list of strings")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError("'metadata' must be an object")
    row_id = obj.get("id", line)
    if not isinstance(row_id, (str, int)) or isinstance(row_id, bool):
        raise ValueError("'id' must be a string or an integer")
    return EvalRow(id=str(row_id), messages=messages, ideal=ideal, metadata=metadata, line=line)


def load_rows(path: Path) -> list[EvalRow]:
    """Rows of an eval JSONL file; every problem is reported with its line number."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, f"cannot read: {exc}") from exc
    rows: list[EvalRow] = []
    errors: list[tuple[int | None, str]] = []
    seen: dict[str, int] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = _parse_row(json.loads(line), line_no)
        except json.JSONDecodeError as exc:
            errors.append((line_no, f"invalid JSON: {exc.msg} (column {exc.colno})"))
            continue
        except ValueError as exc:
            errors.append((line_no, str(exc)))
            continue
        if row.id in seen:
            errors.append((line_no, f"duplicate id {row.id!r} (first on line {seen[row.id]})"))
            continue
        seen[row.id] = line_no
        rows.append(row)
    if not rows and not errors:
        errors.append((None, "no rows"))
    if errors:
        shown = "; ".join(f"line {n}: {m}" if n else m for n, m in errors[:MAX_REPORTED_ERRORS])
        more = f" (and {len(errors) - MAX_REPORTED_ERRORS} more)" if len(errors) > MAX_REPORTED_ERRORS else ""
        raise ValidationError(f"{path}: {shown}{more}", errors)
    return rows


def _parse_scorers(raw: Any, path: Path) -> list[ScorerSpec]:
    if not isinstance(raw, list) or not raw:
        raise _fail(path, "'scorers' must be a non-empty list")
    scorers: list[ScorerSpec] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _fail(path, f"scorers[{i}] needs a 'name' (an evaluator plugin name)")
        options = item.get("options") or {}
        if not isinstance(options, dict):
            raise _fail(path, f"scorers[{i}].options must be a mapping")
        scorer_id = str(item.get("id") or item["name"])
        if any(s.id == scorer_id for s in scorers):
            raise _fail(path, f"scorers[{i}]: id {scorer_id!r} is used twice; give each an 'id'")
        scorers.append(ScorerSpec(name=item["name"], id=scorer_id, options=options))
    return scorers


def load_evalset(name_or_path: str | Path) -> EvalSet:
    """Load and validate an eval set by name or path (its YAML file or folder)."""
    path = find_evalset(name_or_path)
    yaml_bytes = path.read_bytes()
    try:
        data = yaml.safe_load(yaml_bytes)
    except yaml.YAMLError as exc:
        raise _fail(path, f"invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise _fail(path, "must be a YAML mapping with name, data and scorers")
    for key in ("name", "data"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise _fail(path, f"needs a '{key}' string")
    generation = data.get("generation") or {}
    if not isinstance(generation, dict):
        raise _fail(path, "'generation' must be a mapping")
    unknown = set(generation) - GENERATION_KEYS
    if unknown:
        raise _fail(path, f"unknown generation keys {sorted(unknown)}; allowed: {sorted(GENERATION_KEYS)}")
    scorers = _parse_scorers(data.get("scorers"), path)
    data_path = (path.parent / data["data"]).resolve()
    if not data_path.is_file():
        raise _fail(path, f"data file {data_path} does not exist")
    train_path = None
    if data.get("train"):
        train_path = (path.parent / str(data["train"])).resolve()
        if not train_path.is_file():
            raise _fail(path, f"train file {train_path} does not exist")
    response_format = generation.get("response_format")
    if response_format is not None and not (isinstance(response_format, dict)
                                            and response_format.get("type")):
        raise _fail(path, "generation.response_format must be a mapping with a 'type' "
                    "(text, json_object or json_schema)")
    rows = load_rows(data_path)
    digest = hashlib.sha256(yaml_bytes)
    digest.update(b"\0")
    digest.update(data_path.read_bytes())
    schema, schema_bytes = _set_schema(path, data.get("schema"))
    digest.update(schema_bytes)
    cluster = data.get("cluster")
    retrieval = _set_retrieval(path, data)
    return EvalSet(
        name=data["name"],
        description=str(data.get("description") or ""),
        path=path.resolve(),
        rows=rows,
        train_path=train_path,
        cluster=str(cluster) if cluster else None,
        generation=generation,
        scorers=scorers,
        sha256=digest.hexdigest(),
        schema=schema,
        retrieval=retrieval,
    )


def _set_retrieval(path: Path, data: dict[str, Any]) -> RetrievalSettings:
    """The set's `corpus:` (a folder or JSONL beside the set) and `retrieval:` settings."""
    from gateway.evaluation.retrieval import parse_settings

    corpus = data.get("corpus")
    if corpus is not None and not isinstance(corpus, str):
        raise _fail(path, "'corpus' must be the path of a folder or a JSONL file")
    corpus_path = (path.parent / corpus).resolve() if corpus else None
    if corpus_path is not None and not corpus_path.exists():
        raise _fail(path, f"corpus {corpus_path} does not exist")
    try:
        return parse_settings(data.get("retrieval"), corpus_path, str(path))
    except GatewayError as exc:
        raise ValidationError(str(exc), [(None, str(exc))]) from exc


def _set_schema(path: Path, value: Any) -> tuple[dict[str, Any] | None, bytes]:
    """The set-level `schema:` (inline, or a .json/.yaml file beside the set) and its bytes."""
    if value is None:
        return None, b""
    if isinstance(value, dict):
        return value, json.dumps(value, sort_keys=True).encode()
    if not isinstance(value, str):
        raise _fail(path, "'schema' must be a JSON schema mapping or the path of a .json/.yaml file")
    file = (path.parent / value).resolve()
    try:
        raw = file.read_bytes()
        loaded = json.loads(raw) if file.suffix == ".json" else yaml.safe_load(raw)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise _fail(path, f"schema {file}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise _fail(path, f"schema {file} must hold a JSON schema object")
    return loaded, raw
