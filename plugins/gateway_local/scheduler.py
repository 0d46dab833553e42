"""The generation worker: one thread that owns the model and batches requests.

Callers (on the event loop) submit Sequences; the worker gathers them into a
batch of at most max_batch_size rows, waiting up to max_wait_ms for company
when it starts a batch from idle, and runs a manual decode loop. Rows stream
their tokens as they go and leave the batch independently; new arrivals are
prefilled and join the running batch at the next step (continuous batching).
Adapter loads and unloads are queued as commands and run between steps, so
the model never changes under a forward pass.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import torch

from gateway.contracts import BackendRequestError, BackendUnavailable
from gateway_local.serving_adapters import BASE_ADAPTER, AdapterSet
from gateway_local.serving_batch import Batch, Sequence, TokenLogprob, sample, token_logprobs

T = TypeVar("T")


class Scheduler:
    def __init__(
        self,
        model: Any,
        device: torch.device,
        *,
        eos_ids: set[int],
        pad_id: int,
        max_batch_size: int = 16,
        max_wait_ms: float = 10.0,
        max_adapters: int = 8,
        max_queue: int = 256,
    ) -> None:
        self.device = device
        self.eos_ids = eos_ids
        self.max_batch_size = max(1, max_batch_size)
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.max_queue = max(1, max_queue)
        self.adapters = AdapterSet(model, max_adapters)
        self.batch = Batch(device, pad_id)
        self._cond = threading.Condition()
        self._pending: deque[Sequence] = deque()
        self._commands: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="gateway-local-generate", daemon=True)
        self.stats = {"requests": 0, "prefills": 0, "steps": 0, "tokens": 0, "row_steps": 0,
                      "max_rows": 0, "errors": 0}

    # ------------------------------------------------------------ caller side

    def start(self) -> None:
        self._thread.start()

    def submit(self, seq: Sequence) -> None:
        with self._cond:
            if self._stopping:
                raise BackendUnavailable("the local backend is shutting down")
            if len(self._pending) >= self.max_queue:
                raise BackendUnavailable(
                    f"the local backend's queue is full ({self.max_queue} waiting requests; "
                    "max_queue)", retry_after=1.0)
            self._pending.append(seq)
            self.stats["requests"] += 1
            self._cond.notify()

    def call(self, fn: Callable[[], T]) -> Future[T]:
        """Run fn on the worker thread between steps; its result or error lands in the Future."""
        future: Future[T] = Future()
        with self._cond:
            if self._stopping:
                raise BackendUnavailable("the local backend is shutting down")
            self._commands.append((fn, future))
            self._cond.notify()
        return future

    def queue_depth(self) -> int:
        return len(self._pending)

    def active(self) -> int:
        return len(self.batch)

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # ------------------------------------------------------------ worker side

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                joining: list[Sequence] = []
                try:
                    work = self._next_work()
                    if work is None:
                        break
                    joining = work
                    if joining:
                        self._prefill(joining)
                    elif len(self.batch):
                        self._step()
                except Exception as exc:  # a failure fails the rows involved, never the worker
                    self._fail(joining, exc)
                self.batch.drop_finished()
        self._shutdown()

    def _fail(self, joining: list[Sequence], exc: Exception) -> None:
        self.stats["errors"] += 1
        for seq in self.batch.rows + joining:
            if not seq.finished:
                seq.finished = True
                seq.emit(exc)
        self.batch = Batch(self.device, self.batch.pad_id)

    def _next_work(self) -> list[Sequence] | None:
        """Run queued commands, then pick the sequences that join now (None: stop)."""
        with self._cond:
            while not (self._stopping or self._commands or self._pending or len(self.batch)):
                self._cond.wait()
            if self._stopping:
                return None
            commands = list(self._commands)
            self._commands.clear()
        for fn, future in commands:
            self._run_command(fn, future)
        if not self._pending or not self.batch.can_join():
            return []
        if not len(self.batch):
            # Starting from idle: give concurrent requests a moment to arrive together.
            deadline = time.monotonic() + self.max_wait
            with self._cond:
                while (len(self._pending) < self.max_batch_size and not self._stopping
                       and not self._commands and (left := deadline - time.monotonic()) > 0):
                    self._cond.wait(left)
        return self._admit()

    def _run_command(self, fn: Callable[[], Any], future: Future[Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    def _admit(self) -> list[Sequence]:
        room = self.max_batch_size - len(self.batch)
        busy = {s.adapter_key for s in self.batch.rows if s.adapter_key}
        joining: list[Sequence] = []
        waiting: deque[Sequence] = deque()
        with self._cond:
            candidates, self._pending = self._pending, deque()
        while candidates:
            seq = candidates.popleft()
            try:
                placed = self._place(seq, room - len(joining), busy)
            except Exception as exc:  # one bad request fails alone; the others still join
                seq.finished = True
                seq.emit(exc if isinstance(exc, BackendRequestError) else BackendRequestError(str(exc)))
                continue
            if placed is None:
                continue
            (joining if placed else waiting).append(seq)
        with self._cond:
            waiting.extend(self._pending)
            self._pending = waiting
        return joining

    def _place(self, seq: Sequence, room: int, busy: set[str]) -> bool | None:
        """Ready `seq` to join now (True), leave it waiting (False), or drop it (None)."""
        if seq.cancelled:
            return None
        if room <= 0:
            return False
        if seq.adapter_key is None:
            seq.adapter_name = BASE_ADAPTER
        elif (name := self.adapters.touch(seq.adapter_key)) is not None:
            seq.adapter_name = name
        elif self.adapters.has_room(busy):
            try:
                seq.adapter_name = self.adapters.ensure(seq.adapter_key, seq.adapter_path or "", busy)
            except BackendRequestError:
                raise
            except Exception as exc:  # a bad adapter fails its own requests only
                raise BackendRequestError(f"cannot load the adapter at {seq.adapter_path}: {exc}") from exc
        else:
            return False  # every adapter slot serves a running row: wait for one to finish
        if seq.adapter_key:
            busy.add(seq.adapter_key)
        seq.make_generator(self.device)
        return True

    def _prefill(self, seqs: list[Sequence]) -> None:
        logits = self.batch.add(self.adapters, seqs)
        self.stats["prefills"] += 1
        for seq in seqs:
            if seq.params.echo:
                seq.emit_prompt()
            if seq.max_new_tokens == 0:  # scoring the prompt only (echo with max_tokens 0)
                seq.finish("length")
        self._accept(seqs, logits)

    def _step(self) -> None:
        logits = self.batch.step(self.adapters)
        rows = len(self.batch)
        self.stats["steps"] += 1
        self.stats["row_steps"] += rows
        self.stats["max_rows"] = max(self.stats["max_rows"], rows)
        self._accept(self.batch.rows, logits)

    def _accept(self, seqs: list[Sequence], logits: torch.Tensor) -> None:
        tokens = sample(logits, seqs)
        self.batch.set_next(seqs, tokens)
        self.stats["tokens"] += len(tokens)
        entries: dict[int, TokenLogprob] = {}
        wanted = [i for i, seq in enumerate(seqs) if seq.wants_logprobs and not seq.finished]
        if wanted:
            top = max(seqs[i].params.logprobs or 0 for i in wanted)
            found = token_logprobs(logits[wanted], [tokens[i] for i in wanted], top)
            for i, (token, logprob, alternatives) in zip(wanted, found, strict=True):
                entries[i] = (token, logprob, alternatives[: seqs[i].params.logprobs or 0])
        for i, (seq, token) in enumerate(zip(seqs, tokens, strict=True)):
            if not (seq.cancelled or seq.finished):
                seq.accept(token, self.eos_ids, entries.get(i))

    def _shutdown(self) -> None:
        gone = BackendUnavailable("the local backend was closed")
        with self._cond:
            left = list(self._pending) + self.batch.rows
            self._pending.clear()
            commands = list(self._commands)
            self._commands.clear()
        for seq in left:
            if not seq.finished:
                seq.finished = True
                seq.emit(gone)
        for _, future in commands:
            if future.set_running_or_notify_cancel():
                future.set_exception(gone)
