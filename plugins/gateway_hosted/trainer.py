"""The "hosted" trainer: fine-tuning at a provider, through litellm.

A job uploads its (already validated) file with `litellm.acreate_file`, creates
the provider's job with `litellm.acreate_fine_tuning_job` and polls it with
`litellm.aretrieve_fine_tuning_job`, backing off from `poll_interval` to
`poll_max_interval`. The provider's job id is reported at once (the host
stores it), so a restarted or resumed job polls that job again and never
creates a second, paid one. litellm has no call for job events; for providers
that speak OpenAI's API they are read with the openai SDK and mirrored.

Hyperparameters are sent as `hyperparameters` (n_epochs, batch_size,
learning_rate_multiplier and any provider-specific key): litellm drops `method`
on its OpenAI path, so that is the form that reaches the provider.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import version as package_version
from typing import Any, ClassVar, TypeVar

from gateway.contracts import (
    BaseTrainer,
    CostEstimate,
    GatewayError,
    JobControl,
    TrainingEvent,
    TrainingResult,
    TrainingSpec,
)
from gateway_hosted.providers import EventLoop, Provider, import_litellm, is_transient

T = TypeVar("T")
# Local names that a provider knows by OpenAI's names.
RENAMED = {"epochs": "n_epochs"}
# Providers whose jobs litellm can create, poll and cancel.
TRAINABLE = ("openai", "azure")


class ProviderError(GatewayError):
    """The provider refused or failed; the message is the provider's, key removed."""


class HostedTrainer(BaseTrainer):
    name: ClassVar[str] = "hosted"
    description: ClassVar[str] = "fine-tuning at a provider's API (openai, azure, vertex_ai) via litellm"
    needs_provider: ClassVar[bool] = True
    uses_local_compute: ClassVar[bool] = False

    @property
    def version(self) -> str | None:
        return f"litellm {package_version('litellm')}"

    def resolve_hyperparameters(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        if "learning_rate" in hyperparameters:
            raise GatewayError("hosted providers take learning_rate_multiplier, not learning_rate "
                               "(--set learning_rate_multiplier=2)")
        return {RENAMED.get(k, k): v for k, v in hyperparameters.items()}

    def train(self, spec: TrainingSpec, control: JobControl) -> Iterator[TrainingEvent | TrainingResult]:
        provider = Provider.from_settings(spec.provider or "", spec.provider_settings)
        if provider.kind not in TRAINABLE:
            # litellm creates Vertex AI tuning jobs but cannot poll or cancel them: refuse
            # before anything is uploaded or paid for.
            raise ProviderError(f"provider {provider.name!r} ({provider.kind}): litellm cannot "
                                "poll or cancel its fine-tuning jobs; train with openai or azure")
        session = _Session(provider, control)
        try:
            yield from session.run(spec)
        finally:
            session.close()

    def cancel(self, spec: TrainingSpec) -> None:
        if not spec.remote_job_id:
            return
        litellm = import_litellm()
        provider = Provider.from_settings(spec.provider or "", spec.provider_settings)
        loop = EventLoop()
        try:
            loop.run(litellm.acancel_fine_tuning_job(
                fine_tuning_job_id=spec.remote_job_id, **provider.litellm_kwargs()))
        except Exception as exc:
            raise ProviderError(provider.redact(f"{type(exc).__name__}: {exc}")) from None
        finally:
            loop.close()

    def estimate_cost(self, spec: TrainingSpec) -> CostEstimate | None:
        """Trained tokens x epochs x the configured price, before the job is paid for."""
        import json

        litellm = import_litellm()
        provider = Provider.from_settings(spec.provider or "", spec.provider_settings)
        price = provider.price("training_cost_per_1m")
        if price is None:
            return None
        tokens = 0
        with spec.training_file.open(encoding="utf-8") as rows:
            for line in rows:
                if line.strip():
                    messages = json.loads(line).get("messages", [])
                    tokens += int(litellm.token_counter(model=spec.base, messages=messages))
        epochs = spec.hyperparameters.get("n_epochs", "auto")
        epochs_n = int(epochs) if isinstance(epochs, int) else int(provider.number("auto_epochs", 3))
        return CostEstimate(tokens=tokens, epochs=epochs_n, price_per_1m=price,
                            cost=tokens * epochs_n * price / 1e6,
                            epochs_assumed=not isinstance(epochs, int))


class _Session:
    """One run of a hosted job: its event loop, its provider, its retries."""

    def __init__(self, provider: Provider, control: JobControl) -> None:
        self.provider = provider
        self.control = control
        self.loop = EventLoop()
        self.seen_events: set[str] = set()
        self.polls = 0
        self.outage_started: float | None = None

    def close(self) -> None:
        self.loop.close()

    def _call(self, what: str, make: Callable[[], Awaitable[T]]) -> T:
        """One provider call, retried with backoff through outages up to `max_outage`."""
        delay = self.provider.number("poll_interval", 5.0)
        while True:
            try:
                result = self.loop.run(make())
                self.outage_started = None
                return result
            except Exception as exc:
                message = self.provider.redact(f"{type(exc).__name__}: {exc}")
                if not is_transient(exc):
                    raise ProviderError(f"{self.provider.name}: {what} failed: {message}") from None
                now = time.monotonic()
                self.outage_started = self.outage_started or now
                limit = self.provider.number("max_outage", 1800.0)
                if now - self.outage_started > limit:
                    raise ProviderError(
                        f"{self.provider.name}: {what} failed for {now - self.outage_started:.0f} s "
                        f"(max_outage {limit:.0f} s): {message}") from None
                if self._sleep(delay):
                    raise ProviderError(f"{self.provider.name}: cancelled during an outage") from None
                delay = min(delay * 2, self.provider.number("poll_max_interval", 60.0))

    def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early on a cancel. True when the job was cancelled."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.control.cancelled():
                return True
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
        return self.control.cancelled()

    def run(self, spec: TrainingSpec) -> Iterator[TrainingEvent | TrainingResult]:
        litellm = import_litellm()

        kwargs = self.provider.litellm_kwargs()
        remote_id = spec.remote_job_id
        if remote_id is None:
            files = {}
            for field, path in (("training_file", spec.training_file), ("validation_file", spec.validation_file)):
                if path is None:
                    continue
                upload = (path.name, path.read_bytes())

                async def send(upload: tuple[str, bytes] = upload) -> Any:
                    return await litellm.acreate_file(file=upload, purpose="fine-tune", **kwargs)

                uploaded = self._call(f"uploading {field}", send)
                files[field] = uploaded.id
                yield TrainingEvent(type="message", message=f"uploaded {field} to {self.provider.name} as {uploaded.id}",
                                    data={f"remote_{field}": uploaded.id})
            params = dict(spec.hyperparameters)
            seed = params.pop("seed", None)
            job = self._call("creating the job", lambda: litellm.acreate_fine_tuning_job(
                model=spec.base, hyperparameters=params, suffix=spec.suffix, seed=seed, **files, **kwargs))
            remote_id = str(job.id)
            yield TrainingEvent(type="status", message=f"created {self.provider.name} job {remote_id}",
                                data={"remote_job_id": remote_id})
        yield from self._poll(spec, remote_id)

    def _poll(self, spec: TrainingSpec, remote_id: str) -> Iterator[TrainingEvent | TrainingResult]:
        litellm = import_litellm()

        kwargs = self.provider.litellm_kwargs()
        delay = self.provider.number("poll_interval", 5.0)
        deadline = time.monotonic() + self.provider.number("job_timeout", 86400.0)
        status = None
        while True:
            if self.control.cancelled():
                yield TrainingEvent(type="message", message="cancel seen; stopping the poll")
                return
            job = self._call("polling the job", lambda: litellm.aretrieve_fine_tuning_job(
                fine_tuning_job_id=remote_id, **kwargs))
            self.polls += 1
            yield from self._mirror_progress(remote_id)
            if job.status != status:
                status = job.status
                yield TrainingEvent(type="message", message=f"{self.provider.name} job {remote_id}: {status}",
                                    data={"remote_status": status, "polls": self.polls})
            if status == "succeeded":
                yield self._result(spec, job)
                return
            if status in ("failed", "cancelled"):
                error = getattr(job, "error", None)
                detail = f"{getattr(error, 'code', None)}: {getattr(error, 'message', None)}" if error else status
                raise ProviderError(self.provider.redact(
                    f"{self.provider.name} job {remote_id} {status}: {detail}"))
            if time.monotonic() > deadline:
                raise ProviderError(f"{self.provider.name} job {remote_id} did not finish within "
                                    f"job_timeout ({self.provider.number('job_timeout', 86400.0):.0f} s)")
            if self._sleep(delay):
                continue
            delay = min(delay * 1.5, self.provider.number("poll_max_interval", 60.0))

    def _mirror_progress(self, remote_id: str) -> Iterator[TrainingEvent]:
        """The provider's new events and checkpoints, as this job's events (OpenAI-API providers)."""
        client = self.provider.openai_client()
        if client is None:
            return
        try:
            page = client.fine_tuning.jobs.list_events(remote_id, limit=100)
        except Exception:  # events are a courtesy; the job's status is what counts
            return
        for event in reversed(page.data):
            if event.id in self.seen_events:
                continue
            self.seen_events.add(event.id)
            data = dict(event.data or {}) if isinstance(event.data, dict) else {}
            step = data.get("step")
            yield TrainingEvent(
                type="metrics" if event.type == "metrics" else "message",
                message=f"[{self.provider.name}] {self.provider.redact(event.message)}",
                step=int(step) if isinstance(step, int) else None,
                data={**data, "remote_event_id": event.id},
            )
        try:
            checkpoints = client.fine_tuning.jobs.checkpoints.list(remote_id, limit=100).data
        except Exception:
            return
        for checkpoint in reversed(checkpoints):
            if checkpoint.id in self.seen_events:
                continue
            self.seen_events.add(checkpoint.id)
            yield TrainingEvent(
                type="message", step=checkpoint.step_number,
                message=f"[{self.provider.name}] checkpoint at step {checkpoint.step_number}: "
                        f"{checkpoint.fine_tuned_model_checkpoint}",
                data={"remote_checkpoint_id": checkpoint.id,
                      "remote_checkpoint": checkpoint.fine_tuned_model_checkpoint,
                      "metrics": checkpoint.metrics.model_dump(exclude_none=True)
                      if checkpoint.metrics is not None else {}},
            )

    def _result(self, spec: TrainingSpec, job: Any) -> TrainingResult:
        reported: Any = getattr(job, "hyperparameters", None)
        if reported is not None and hasattr(reported, "model_dump"):
            reported = reported.model_dump(exclude_none=True)
        hyperparameters = {**spec.hyperparameters, **dict(reported or {})}
        return TrainingResult(
            kind="hosted", remote_id=str(job.fine_tuned_model), provider=self.provider.name,
            hyperparameters=hyperparameters,
            metrics={"trained_tokens": getattr(job, "trained_tokens", None), "remote_job_id": str(job.id),
                     "polls": self.polls, "litellm_version": package_version("litellm")},
        )
