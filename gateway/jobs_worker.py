"""Runs one job in a background process: `python -m gateway.jobs_worker JOB_ID`.

`gateway train --detach` and `gateway jobs resume --detach` start it in its own
session (a closed terminal does not stop it), with output in the job folder's
worker.log.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from gateway.config import Config
from gateway.store import Store


def spawn(
    config: Config, job_id: str, config_path: Path | None = None, store: Store | None = None
) -> subprocess.Popen[bytes]:
    """Start a worker for the job and record its pid. Returns the process.

    Pass the caller's `store` when it has one: two Store objects in one process
    writing the same row can conflict."""
    from gateway.job_log import record_pid

    folder = config.jobs_dir / job_id
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "gateway.jobs_worker", job_id]
    if config_path is not None:
        cmd += ["--config", str(config_path)]
    env = dict(os.environ, GATEWAY_HOME=str(config.home))
    with open(folder / "worker.log", "ab") as log:
        process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env,
        )
    record_pid(store or Store(config.db_path), job_id, process.pid)
    return process


def main(argv: list[str] | None = None) -> int:
    from gateway.config import load_config
    from gateway.jobs import run_job

    parser = argparse.ArgumentParser(prog="python -m gateway.jobs_worker")
    parser.add_argument("job_id")
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    job = run_job(config, Store(config.db_path), args.job_id)
    print(f"job {job.id}: {job.status}" + (f": {job.error}" if job.error else ""), flush=True)
    return 0 if job.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
