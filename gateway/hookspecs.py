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
    import click

    from gateway.contracts import Backend, Evaluator, Trainer
    from gateway.registry import ModelVersion

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
    model, and is built with that configuration's settings dict.
    """


@hookspec
def register_evaluators(register: Callable[[type[Evaluator]], None]) -> None:
    """Register evaluators (scorers) for eval sets.

    Call `register(EvaluatorClass)` once per evaluator. An eval set names it
    under `scorers:` and its options become the constructor's keyword
    arguments.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands or command groups to the `gateway` CLI.

    Use `@cli.command()` or `cli.add_command(...)`.
    """


@hookspec
def model_version_created(version: ModelVersion, context: dict[str, Any]) -> None:
    """React to a new model version, right after it is stored.

    `context` carries what the caller knows: "config" (the Config), and for
    versions made by `gateway train`, "evalsets" (the names given with
    --eval). Use it to run regression evals or to notify a channel. An
    exception here is reported but never undoes the version.
    """
