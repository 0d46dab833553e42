"""The json evaluator: valid JSON, a JSON schema, and field-level match against the ideal."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, ClassVar

from gateway.contracts import GatewayError, Options, PerSampleEvaluator, Sample, Score

from .options import collapse_whitespace, ideals

_FENCE = re.compile(r"```[ \t]*(?:json[a-z0-9]*)?[ \t]*\n?(.*?)```", re.DOTALL | re.IGNORECASE)
_MISSING = object()


def extract_json(text: str, strict: bool = False) -> Any:
    """The JSON value in a model's output. Raises ValueError when there is none.

    Strict: the whole output (surrounding whitespace aside) must be JSON.
    Otherwise a ```json fence is looked into first, then the first object or
    array that parses is taken out of the surrounding prose.
    """
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError as exc:
        if strict:
            raise ValueError(f"output is not JSON ({exc})") from exc
    for block in _FENCE.findall(text):
        try:
            return json.loads(block.strip())
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        return value
    raise ValueError("no JSON object or array found in the output")


def _field(value: Any, path: str) -> Any:
    """A (dotted) field of a JSON value, or _MISSING."""
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


class Json(PerSampleEvaluator):
    """Checks that the output holds JSON, optionally valid against a schema and
    matching the ideal's fields.

    Options: `strict` (the whole output must be JSON: no fences or prose),
    `schema` (a JSON schema inline, or the path of a .json/.yaml file relative
    to the eval set; the set's own `schema:` when absent, none when false), `match_fields` (compare with the ideal, a JSON object
    or JSON text; the value is the fraction of the ideal's fields matched),
    `fields` (the fields, dotted for nested ones, to compare; implies
    match_fields) and `ignore_case` for string values. Strings are compared
    with surrounding and repeated whitespace ignored; 1 equals 1.0.
    """

    name: ClassVar[str] = "json"
    description: ClassVar[str] = (
        "output is valid JSON, matches a schema, and/or matches the ideal's fields"
    )
    # The runner passes the eval set's folder so a relative schema path resolves, and
    # the set's own `schema:`, used when the `schema` option is absent (false: none).
    needs_evalset_dir: ClassVar[bool] = True
    needs_evalset_schema: ClassVar[bool] = True

    def __init__(self, *, evalset_dir: str | Path | None = None,
                 evalset_schema: dict[str, Any] | None = None, **options: Any) -> None:
        opts = Options(self.name, options)
        self.strict = opts.flag("strict", False)
        schema = opts.raw("schema")
        if schema is None:
            schema = evalset_schema
        elif schema is False:
            schema = None
        self.fields = opts.text_list("fields")
        self.match_fields = opts.flag("match_fields", self.fields is not None)
        self.ignore_case = opts.flag("ignore_case", False)
        opts.done()
        if self.fields is not None and not self.match_fields:
            raise opts.error("fields", "needs match_fields (leave match_fields out or set it true)")
        self.validator: Any = None
        if schema is not None:
            self.validator = _schema_validator(opts, schema, evalset_dir)

    def score(self, sample: Sample) -> Score:
        try:
            value = extract_json(sample.output, self.strict)
        except ValueError as exc:
            return Score(value=0.0, passed=False, detail=str(exc))
        if self.validator is not None:
            error = _best_schema_error(self.validator, value)
            if error is not None:
                return Score(value=0.0, passed=False, detail=f"does not match the schema: {error}")
        if not self.match_fields:
            what = "valid JSON matching the schema" if self.validator is not None else "valid JSON"
            return Score(value=1.0, passed=True, detail=what)
        best: Score | None = None
        # The loader may hand over a JSON ideal already parsed (an object).
        alternatives = (
            [sample.ideal] if isinstance(sample.ideal, dict) else ideals(sample, self.name)
        )
        for ideal in alternatives:
            score = self._match(value, _parse_ideal(ideal, sample))
            if best is None or score.value > best.value:
                best = score
        assert best is not None
        return best

    def _match(self, value: Any, ideal: Any) -> Score:
        if not isinstance(ideal, dict):
            same = self._equal(value, ideal)
            return Score(
                value=float(same),
                passed=same,
                detail="equals the ideal" if same else "differs from the ideal",
            )
        fields = self.fields if self.fields is not None else list(ideal)
        if not fields:
            return Score(value=1.0, passed=True, detail="the ideal has no fields")
        wrong = []
        for name in fields:
            want, got = _field(ideal, name), _field(value, name)
            if not self._equal(got, want):
                shown = "missing" if got is _MISSING else json.dumps(got)[:80]
                wrong.append(
                    f"{name} (got {shown}, want {json.dumps(want)[:80] if want is not _MISSING else 'absent'})"
                )
        matched = len(fields) - len(wrong)
        detail = f"matched {matched}/{len(fields)} fields"
        if wrong:
            detail += "; wrong: " + "; ".join(wrong)
        return Score(value=matched / len(fields), passed=not wrong, detail=detail)

    def _equal(self, got: Any, want: Any) -> bool:
        if isinstance(got, bool) or isinstance(want, bool) or got is None or want is None:
            return got is want  # true is not 1, null is not 0
        if isinstance(got, (int, float)) and isinstance(want, (int, float)):
            return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
        if isinstance(got, str) and isinstance(want, str):
            a, b = collapse_whitespace(got).strip(), collapse_whitespace(want).strip()
            return a.casefold() == b.casefold() if self.ignore_case else a == b
        if isinstance(got, dict) and isinstance(want, dict):
            return got.keys() == want.keys() and all(self._equal(got[k], want[k]) for k in want)
        if isinstance(got, list) and isinstance(want, list):
            return len(got) == len(want) and all(
                self._equal(g, w) for g, w in zip(got, want, strict=True)
            )
        return got is want


def _parse_ideal(ideal: Any, sample: Sample) -> Any:
    if not isinstance(ideal, str):
        return ideal
    try:
        return json.loads(ideal)
    except ValueError as exc:
        raise GatewayError(
            f"evaluator 'json': the ideal of sample {sample.id!r} is not JSON ({exc})"
        ) from exc


def _load_schema(opts: Options, schema: Any, evalset_dir: str | Path | None) -> Any:
    if isinstance(schema, dict):
        return schema
    if not isinstance(schema, str):
        raise opts.error("schema", f"must be a JSON schema or the path of one, got {schema!r}")
    if schema.lstrip().startswith("{"):
        try:
            return json.loads(schema)
        except ValueError as exc:
            raise opts.error("schema", f"is not valid JSON ({exc})") from exc
    path = Path(schema).expanduser()
    if not path.is_absolute():
        path = Path(evalset_dir or ".") / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise opts.error(
            "schema", f"names {str(path)!r}, which cannot be read ({exc.strerror})"
        ) from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise opts.error("schema", f"file {str(path)!r} does not parse ({exc})") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise opts.error("schema", f"file {str(path)!r} does not parse ({exc})") from exc


def _schema_validator(opts: Options, schema: Any, evalset_dir: str | Path | None) -> Any:
    import jsonschema

    loaded = _load_schema(opts, schema, evalset_dir)
    if not isinstance(loaded, dict):
        raise opts.error("schema", "must hold a JSON object (a JSON schema)")
    cls = jsonschema.validators.validator_for(loaded)
    try:
        cls.check_schema(loaded)
    except jsonschema.SchemaError as exc:
        raise opts.error("schema", f"is not a valid JSON schema: {exc.message}") from exc
    return cls(loaded)


def _best_schema_error(validator: Any, value: Any) -> str | None:
    import jsonschema

    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{error.message} (at /{where})" if where else str(error.message)
