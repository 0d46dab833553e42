"""`gateway models`: base models, fine-tuned versions and aliases.

Adding models is core work (gateway/model_sources.py); this module prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.cli.context import AppContext, pass_app
from gateway.cli.output import echo_rows, format_option, object_format_option, wants_json
from gateway.model_sources import add_local_model, import_gguf_model, pull_builtin_model

if TYPE_CHECKING:
    from gateway.contracts import BaseModel
    from gateway.store import Store

def _describe_base(model: BaseModel) -> str:
    parts = [model.architecture or ""]
    if model.parameters:
        parts.append(f"{model.parameters / 1e6:.1f}M params")
    if model.context_length:
        parts.append(f"context {model.context_length}")
    return ", ".join(p for p in parts if p)


# ------------------------------------------------------------------ commands


@click.group()
def models() -> None:
    """Base models, fine-tuned versions and their aliases."""


@models.command("add")
@click.option("--path", "path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A local Hugging Face folder (with config.json).")
@click.option("--hf", "hf_id", help="A Hugging Face hub id, e.g. HuggingFaceTB/SmolLM2-135M-Instruct.")
@click.option("--name", help="Name to register (default: the folder name, or the id's last part).")
@click.option("--replace", is_flag=True, help="Replace a base model of the same name.")
@pass_app
def add(app: AppContext, path: Path | None, hf_id: str | None, name: str | None, replace: bool) -> None:
    """Register a base model from a local folder or a hub id.

    A hub id is only recorded here; it is fetched by whatever uses it.
    """
    from gateway.contracts import BaseModel
    from gateway.registry import add_base_model

    if (path is None) == (hf_id is None):
        raise click.UsageError("give exactly one of --path DIR or --hf ID")
    if path is not None:
        model = add_local_model(app.store, path, name, replace=replace)
    else:
        assert hf_id is not None
        model = add_base_model(
            app.store,
            BaseModel(name=name or hf_id.rstrip("/").split("/")[-1], source="hf", hf_id=hf_id),
            replace=replace,
        )
    details = _describe_base(model)
    click.echo(f"Added base model {model.name}" + (f" ({details})" if details else ""))


@models.command("import-gguf")
@click.argument("gguf", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Name to register the converted model under.")
@pass_app
def import_gguf(app: AppContext, gguf: Path, name: str) -> None:
    """Convert a GGUF checkpoint into a safetensors folder and register it."""
    model = import_gguf_model(app.store, app.config, gguf, name)
    click.echo(f"Added base model {model.name} ({_describe_base(model)}) at {model.path}")


@models.command("pull")
@click.argument("builtin")
@click.option("--name", help="Register under this name (default: the built-in name).")
@pass_app
def pull(app: AppContext, builtin: str, name: str | None) -> None:
    """Fetch a built-in model for offline use (e.g. smollm2-135m). Safe to repeat."""
    model, already = pull_builtin_model(app.store, app.config, builtin, name)
    if already:
        click.echo(f"{model.name} is already available at {model.path}")
    else:
        click.echo(f"Added base model {model.name} ({_describe_base(model)}) at {model.path}")


@models.command("list")
@format_option
@pass_app
def list_models(app: AppContext, fmt: str) -> None:
    """List base models, fine-tuned versions and aliases."""
    from gateway.registry import list_aliases, list_base_models, list_versions

    rows: list[dict[str, Any]] = []
    for base in list_base_models(app.store):
        rows.append({
            "model": base.name, "type": "base", "base": "", "id": "",
            "location": base.path or base.hf_id, "details": _describe_base(base), "data": "",
            "created": base.created,
        })
    refs: dict[str, str] = {}
    for version in list_versions(app.store):
        refs[version.id] = version.ref
        rows.append({
            "model": version.ref, "type": f"version ({version.kind})", "base": version.base,
            "id": version.id, "location": version.artifact_uri or version.remote_id,
            "details": (version.trainer or "") + (f" at {version.provider}" if version.provider else ""),
            # The training data's sha256: the same data trained two ways shows the same prefix.
            "data": (version.dataset_sha256 or "")[:12], "created": version.created,
        })
    for alias in list_aliases(app.store):
        rows.append({
            "model": f"{alias['name']}@{alias['alias']}", "type": "alias", "base": "",
            "id": alias["version_id"], "location": "", "data": "",
            "details": f"-> {refs.get(alias['version_id'], alias['version_id'])}",
            "created": alias["updated"],
        })
    echo_rows(rows, ["model", "type", "base", "id", "location", "details", "data", "created"], fmt)


def _lineage(store: Store, version_id: str) -> dict[str, Any]:
    from dataclasses import asdict

    from gateway.registry import get_version

    version = get_version(store, version_id)
    info: dict[str, Any] = {"type": "version", "ref": version.ref, **asdict(version)}
    info["aliases"] = [
        f"{r['name']}@{r['alias']}"
        for r in store.query(
            "SELECT name, alias FROM aliases WHERE version_id = ? ORDER BY alias", [version.id]
        )
    ]
    if version.job_id:
        info["job"] = store.query_one(
            "SELECT id, status, training_file, validation_file, provider, remote_job_id, created, "
            "finished FROM jobs WHERE id = ?", [version.job_id],
        )
    return info


@models.command("show")
@click.argument("model")
@object_format_option
@pass_app
def show(app: AppContext, model: str, fmt: str, legacy_json: bool) -> None:
    """Show a base model, or a version with its lineage.

    MODEL is a base model name, a version id, NAME@vN, NAME@ALIAS or NAME.
    """
    from dataclasses import asdict

    from gateway.registry import get_base_model, list_versions, resolve

    target = resolve(app.store, model)
    info: dict[str, Any]
    if target.version_id is None:
        info = {"type": "base", **asdict(get_base_model(app.store, target.base))}
        info["versions"] = [v.ref for v in list_versions(app.store) if v.base == target.base]
    else:
        from gateway.evaluation.runs import version_eval_summary

        info = _lineage(app.store, target.version_id)
        info["evals"] = version_eval_summary(app.store, target.version_id)
    if wants_json(fmt, legacy_json):
        click.echo(json.dumps(info, indent=2, default=str))
        return
    evals = info.pop("evals", [])
    for key, value in info.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value, default=str) if value else ""
        click.echo(f"{key + ':':<17} {'' if value is None else value}")
    if evals:
        click.echo("\nEval results (this version against its baselines):")
        echo_rows(evals, ["evalset", "role", "scorer", "mean", "baseline_mean", "delta", "n", "run_id"])


@models.command("alias")
@click.argument("alias_ref", metavar="NAME@ALIAS")
@click.argument("version_ref", metavar="VERSION")
@pass_app
def alias(app: AppContext, alias_ref: str, version_ref: str) -> None:
    """Point NAME@ALIAS (e.g. support-bot@prod) at a version of NAME."""
    from gateway.registry import set_alias

    version = set_alias(app.store, alias_ref, version_ref)
    click.echo(f"{alias_ref} -> {version.ref} ({version.id})")


commands = [models]
