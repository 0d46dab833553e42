"""Evals on each new model version, run by the core once its job has succeeded.

The eval sets are those given with `gateway train --eval` plus
`[auto_eval] <name> = [...]` in config.toml. Each set runs on the new
version, on its base model and on `name@prod` when that alias exists (and is
another version); `version_evals` links the new version's run to each
baseline's run, which `gateway models show` reads through
gateway.evaluation.runs.version_eval_summary.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gateway.config import Config
from gateway.contracts import ModelVersion
from gateway.errors import GatewayError, PluginError
from gateway.store import Store


def evalsets_for(config: Config, name: str, requested: Sequence[str] = ()) -> list[str]:
    """The eval sets for a new version of `name`: those asked for, then [auto_eval]'s."""
    return list(dict.fromkeys([*map(str, requested), *config.auto_eval.get(name, [])]))


def check_evaluators(names: Sequence[str]) -> None:
    """Fail before any work when a set's scorers are not available (say, because
    GATEWAY_PLUGINS leaves out the plugin that provides them)."""
    from gateway.evaluation.evalset import load_evalset
    from gateway.plugins import get_evaluator_class

    for name in names:
        try:
            evalset = load_evalset(name)
        except (GatewayError, OSError):
            continue  # reported when the evals run; the version is still made
        for spec in evalset.scorers:
            try:
                get_evaluator_class(spec.name)
            except PluginError as exc:
                raise PluginError(f"--eval {name}: its scorer {spec.name!r} cannot load: {exc}") from exc


def baselines(store: Store, version: ModelVersion) -> list[tuple[str, str]]:
    """(role, model) pairs to compare the new version against."""
    found = [("base", version.base)]
    prod = store.query_one(
        "SELECT version_id FROM aliases WHERE name = ? AND alias = 'prod'", [version.name])
    if prod is not None and prod["version_id"] != version.id:
        found.append(("prod", f"{version.name}@prod"))
    return found


def run_version_evals(config: Config, store: Store, version: ModelVersion,
                      requested: Sequence[str] = ()) -> list[str]:
    """Run the eval sets for a new version and its baselines; returns the new version's run ids.

    Problems are reported on stderr and never undo the version.
    """
    names = evalsets_for(config, version.name, requested)
    if not names:
        return []
    from gateway.evaluation.runner import run_sync

    return run_sync(_run_all(config, store, version, names))


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


async def _run_all(config: Config, store: Store, version: ModelVersion, names: list[str]) -> list[str]:
    from gateway.evaluation.evalset import load_evalset
    from gateway.evaluation.runner import run_eval
    from gateway.evaluation.runs import link_version_eval
    from gateway.router import Router

    compare_with = baselines(store, version)
    router = Router(config, store)  # one router: each base model loads once for all runs
    run_ids: list[str] = []
    try:
        for name in names:
            try:
                evalset = load_evalset(name)
                run_id = await run_eval(config, store, evalset, version.id, progress=False,
                                        router=router)
            except (GatewayError, OSError) as exc:
                _warn(f"eval set {name!r} on {version.ref} did not run: {exc}")
                continue
            run_ids.append(run_id)
            linked = False
            for role, model in compare_with:
                try:
                    baseline_run = await run_eval(config, store, evalset, model, progress=False,
                                                  router=router)
                except (GatewayError, OSError) as exc:
                    _warn(f"eval set {name!r} on baseline {model} did not run: {exc}")
                    continue
                link_version_eval(store, version.id, evalset.name, run_id, baseline_run, role)
                linked = True
            if not linked:
                link_version_eval(store, version.id, evalset.name, run_id, None, "candidate")
    finally:
        await router.close()
    return run_ids
