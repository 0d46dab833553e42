"""What compare and report read from an eval set: clusters, samples, corpus metrics.

Runs store the eval set's name, hash and the folder it was loaded from, so
the set is loaded again from that folder, else by name. When it cannot be
loaded (moved, renamed), callers carry on without clusters or bootstraps and
report the note this module returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.contracts import Sample
from gateway.errors import GatewayError
from gateway.evaluation.evalset import EvalRow, EvalSet


@dataclass
class EvalSetView:
    evalset: EvalSet
    cluster: str | None
    _by_id: dict[str, EvalRow] | None = field(default=None, repr=False)

    def row(self, sample_id: str) -> EvalRow | None:
        return self._rows().get(sample_id)

    def _rows(self) -> dict[str, EvalRow]:
        if self._by_id is None:
            self._by_id = {r.id: r for r in self.evalset.rows}
        return self._by_id

    def cluster_lists(self) -> list[list[str]] | None:
        """[sample ids, cluster values] for rows that carry the cluster field."""
        if not self.cluster:
            return None
        ids: list[str] = []
        values: list[str] = []
        for row in self.evalset.rows:
            value = row.metadata.get(self.cluster)
            if value is not None:
                ids.append(row.id)
                values.append(str(value))
        return [ids, values] if ids else None

    def samples(self, outputs: dict[str, str]) -> list[Sample]:
        """Samples for the given outputs, in their order; ids unknown to the set are skipped."""
        rows = self._rows()
        return [
            Sample(id=sid, messages=row.messages, ideal=row.ideal, output=out, metadata=row.metadata)
            for sid, out in outputs.items()
            if (row := rows.get(sid)) is not None
        ]


def load_view(name: str, sha256: str | None = None,
              path: str | None = None) -> tuple[EvalSetView | None, str | None]:
    """The eval set a run used, and a note for the reader when something is off."""
    from gateway.evaluation.evalset import load_evalset

    evalset: EvalSet | None = None
    if path and Path(path).is_dir():
        try:
            found = load_evalset(path)
        except GatewayError:
            found = None
        evalset = found if found is not None and found.name == name else None
    try:
        evalset = evalset or load_evalset(name)
    except GatewayError as exc:
        return None, f"eval set {name!r} could not be loaded ({exc}); unclustered, no bootstrap"
    notes: list[str] = []
    if sha256 and evalset.sha256 != sha256:
        notes.append(f"eval set {name!r} changed since the run; clusters and bootstraps use the current file")
    view = EvalSetView(evalset, evalset.cluster)
    if evalset.cluster and view.cluster_lists() is None:
        notes.append(f"no row has metadata {evalset.cluster!r}: statistics are unclustered")
        view.cluster = None
    return view, "; ".join(notes) or None


def corpus_metric(
    view: EvalSetView, scorer_id: str
) -> tuple[Callable[[list[Sample]], float] | None, str]:
    """The set's evaluator for `scorer_id` as a corpus metric, or None and why not."""
    from gateway.plugins import get_evaluator_class

    spec = next((s for s in view.evalset.scorers if s.id == scorer_id), None)
    if spec is None:
        return None, "the eval set no longer names this scorer"
    try:
        evaluator = get_evaluator_class(spec.name)(**spec.options)
    except GatewayError as exc:
        return None, str(exc)
    if not evaluator.corpus_level:
        return None, f"evaluator {spec.name!r} is not corpus-level"

    def metric(samples: list[Sample]) -> float:
        return float(evaluator.score_corpus(samples).value)

    return metric, ""
