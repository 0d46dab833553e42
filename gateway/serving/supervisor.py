"""Runs the jobs created through POST /v1/fine_tuning/jobs, in worker processes.

`gateway serve` holds one JobSupervisor. Every few seconds (and at once when a
job is created) it looks at the API's active jobs:
- an unclaimed job (new, or made runnable again) gets a worker process
  (gateway.jobs_worker), at most `[jobs] max_running` of them at a time; the
  worker itself waits for a compute slot shared with `gateway train` and
  `--detach` jobs on the same home (gateway.job_claims);
- a claimed job whose process is gone (the machine or the server was killed)
  is resumed from its last checkpoint, or re-attached to its provider job.
  Hosted jobs started with `gateway train` are re-attached the same way when
  their process dies (re-attaching only polls; it never creates a second job).
  Other CLI jobs are left for `gateway jobs resume`.

Workers run in their own session: stopping the server does not stop them, and a
restarted server leaves a job whose worker still lives alone.
"""

from __future__ import annotations

import subprocess
import sys
import threading

from gateway.config import Config
from gateway.errors import GatewayError
from gateway.job_records import Job, get_job
from gateway.store import Store

# Seconds between looks at the jobs table.
INTERVAL = 2.0


class JobSupervisor:
    def __init__(self, config: Config, store: Store, interval: float = INTERVAL) -> None:
        # `store` is the server's own: one Store per process serialises writes to a job row.
        self.config = config
        self.store = store
        self.interval = interval
        self._workers: dict[str, subprocess.Popen[bytes]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="job-supervisor", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the jobs now (a job was just created)."""
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for worker in self._workers.values():
            worker.poll()  # reap what has exited; the rest keep running on their own

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # a locked store: try again at the next tick
                print(f"job supervisor: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            self._wake.wait(self.interval)
            self._wake.clear()

    def _supervised_jobs(self) -> list[Job]:
        """API jobs, and orphaned hosted jobs from the CLI, oldest first."""
        from gateway.plugins import trainer_uses_local_compute

        rows = self.store.query(
            "SELECT id, coalesce(json_extract_string(api, '$.source') = 'api', false) AS api "
            "FROM jobs WHERE status IN ('validating_files', 'queued', 'running') ORDER BY created, id"
        )
        found = []
        for row in rows:
            job = get_job(self.store, row["id"])
            # An unclaimed CLI job is about to be claimed by the command that made it.
            if row["api"] or (job.claim is not None and job.orphaned
                              and not trainer_uses_local_compute(job.trainer)):
                found.append(job)
        return found

    def _check_exit(self, job_id: str, worker: subprocess.Popen[bytes]) -> None:
        """A worker that died before it claimed its job fails the job (no respawn loop)."""
        from gateway.job_log import update_job

        job = get_job(self.store, job_id)
        if job.claim is None and job.status in ("validating_files", "queued"):
            update_job(self.store, job_id, only_if=("validating_files", "queued"), status="failed",
                       error=f"the worker exited with code {worker.returncode} before it started; "
                       f"see {job.folder / 'worker.log'}")

    def tick(self) -> None:
        """Start or resume what needs a worker; returns once the workers are spawned."""
        from gateway.jobs import prepare_resume
        from gateway.jobs_worker import spawn

        live = {job_id for job_id, worker in self._workers.items() if worker.poll() is None}
        for job_id in set(self._workers) - live:
            self._check_exit(job_id, self._workers.pop(job_id))
        for job in self._supervised_jobs():
            if job.id in live:
                continue
            if job.claim is not None and not job.orphaned:
                continue  # a worker from an earlier server, or `gateway jobs resume`
            if len(live) >= self.config.max_running_jobs:
                return
            if job.claim is not None:
                try:
                    prepare_resume(self.store, job.id)
                except GatewayError as exc:
                    print(f"job supervisor: cannot resume {job.id}: {exc}", file=sys.stderr)
                    continue
                print(f"job supervisor: resuming {job.id} (its process {job.pid} is gone)",
                      file=sys.stderr, flush=True)
            self._workers[job.id] = spawn(self.config, job.id, self.config.path, self.store)
            live.add(job.id)
