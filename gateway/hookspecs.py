"""The plugin contract. Every hook here has a docstring, and a meta-test
checks that each one is documented and exercised by a test.

Plugins implement hooks with `@gateway.hookimpl` and are found through the
"gateway" entry-point group, the built-in ones included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    import click

    from gateway.contracts import (
        Backend,
        Evaluator,
        ModelInfo,
        ModelVersion,
        Retriever,
        TokenCounter,
        Trainer,
    )

hookspec = pluggy.HookspecMarker("gateway")
hookimpl = pluggy.HookimplMarker("gateway")


@hookspec
def register_trainers(register: Callable[[type[Trainer]], None]) -> None:
    """Register training methods.

    Call `register(TrainerClass)` once per trainer. The class has a unique
    `name` (what `gateway train --trainer NAME` selects) and a `train(spec,
    control)` method that yields TrainingEvent objects and then one
    TrainingResult. Keep heavy imports inside `train`.
    """


@hookspec
def register_backends(register: Callable[[type[Backend]], None]) -> None:
    """Register serving backends.

    Call `register(BackendClass)` once per backend. The class has a unique
    `name`, the name the configuration uses to pick the backend for a base
    model, and is built as `Backend(settings, context)`: the user's settings
    table and a BackendContext (base model, home, adapter roots, a read-only
    view of the versions on that base). Subclass BaseBackend for the defaults.
    """


@hookspec
def register_evaluators(register: Callable[[type[Evaluator]], None]) -> None:
    """Register evaluators (scorers) for eval sets.

    Call `register(EvaluatorClass)` once per evaluator. An eval set names it
    under `scorers:` and its options become the constructor's keyword
    arguments.
    """


@hookspec
def register_retrievers(register: Callable[[type[Retriever]], None]) -> None:
    """Register retrievers, the search behind the `retrieve:K` prompt variant.

    Call `register(RetrieverClass)` once per retriever. The class has a
    unique `name` (what `retriever:` in evalset.yaml or `--retriever` picks)
    and is built with the eval set's `retriever_options:` as keyword
    arguments. Subclass BaseRetriever; implement `index` (build or load the
    index in the folder given, which the host keys by the corpus hash) and
    `search`. Keep heavy imports inside those methods.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands or command groups to the `gateway` CLI.

    Use `@cli.command()` or `cli.add_command(...)`.
    """


@hookspec
def model_version_created(version: ModelVersion, context: dict[str, Any]) -> None:
    """React to a new model version, once the job that made it has succeeded.

    The host fires it after the job is marked succeeded. `context` carries
    "job_id" and, for versions made by `gateway train`, "evalsets" (the names
    given with --eval; the core runs those itself). Use it to notify a channel
    or to start other work. An exception here is reported but never undoes
    the version.
    """


@hookspec
def register_builtin_models(register: Callable[[str, str], None]) -> None:
    """Announce base models this plugin can fetch with `gateway models pull NAME`.

    Call `register(name, description)` once per model. `pull_model` is then
    asked to fetch a name the user picked from these.
    """


@hookspec(firstresult=True)
def pull_model(name: str, dest: Path, progress: Callable[[str], None]) -> ModelInfo | None:
    """Fetch the built-in model `name` into the folder `dest` as a Hugging Face folder.

    Return its ModelInfo (architecture, context length, parameters), or
    None when this plugin does not know `name`. The first plugin that answers
    wins. Report long steps with `progress("...")`. Raise a GatewayError on
    failure and leave no half-written `dest` behind.
    """


@hookspec(firstresult=True)
def import_gguf(gguf_path: Path, dest: Path, progress: Callable[[str], None]) -> ModelInfo | None:
    """Convert the GGUF checkpoint `gguf_path` into a safetensors folder at `dest`.

    Return the new folder's ModelInfo, or None when this plugin cannot
    convert GGUF files. The first plugin that answers wins. Raise a
    GatewayError for a broken file.
    """


@hookspec(firstresult=True)
def describe_model(path: Path) -> ModelInfo | None:
    """Read a local model folder's metadata for `gateway models add --path`.

    Return its ModelInfo (any field may be None), or None when this plugin
    does not understand the folder. The first plugin that answers wins.
    """


@hookspec(firstresult=True)
def load_token_counter(model_path: str) -> TokenCounter | None:
    """Load a TokenCounter for a base model (a local folder or a hub id).

    The counter's `count(messages)` gives the number of tokens an example
    takes after the model's chat template, and `context_length` its limit;
    `gateway data validate --base` uses it. Return None when this plugin
    cannot load that model's tokenizer. The first plugin that answers wins.
    """
