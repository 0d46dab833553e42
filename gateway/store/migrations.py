"""Ordered, named migrations, recorded in the `_migrations` table.

Each migration is a function registered with @migration in the order it must
run. Applied names are recorded, so re-running is safe. Append new migrations
at the end; never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from gateway.errors import StoreError

Migration = Callable[[duckdb.DuckDBPyConnection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_models(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE base_models (
            name TEXT PRIMARY KEY,
            source TEXT NOT NULL,          -- path | hf | gguf | builtin
            path TEXT,                     -- local folder with config.json and weights
            hf_id TEXT,
            architecture TEXT,
            context_length INTEGER,
            parameters BIGINT,
            created TIMESTAMP NOT NULL
        );
        CREATE TABLE model_versions (
            id TEXT PRIMARY KEY,           -- ft:<base>:<suffix>:<short-id>
            name TEXT NOT NULL,            -- the suffix, e.g. support
            version INTEGER NOT NULL,      -- support@v<version>
            base TEXT NOT NULL,
            kind TEXT NOT NULL,            -- local | hosted
            provider TEXT,
            artifact_uri TEXT,             -- adapter folder for local versions
            remote_id TEXT,                -- provider model id for hosted versions
            trainer TEXT,
            trainer_version TEXT,
            job_id TEXT,
            dataset_sha256 TEXT,
            hyperparameters JSON,
            metrics JSON,
            created TIMESTAMP NOT NULL,
            UNIQUE (name, version)
        );
        CREATE TABLE aliases (
            name TEXT NOT NULL,
            alias TEXT NOT NULL,
            version_id TEXT NOT NULL,
            updated TIMESTAMP NOT NULL,
            PRIMARY KEY (name, alias)
        );
        """
    )


@migration
def m002_jobs(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE files (
            id TEXT PRIMARY KEY,
            filename TEXT NOT NULL,
            purpose TEXT NOT NULL,
            bytes BIGINT NOT NULL,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL,
            created TIMESTAMP NOT NULL
        );
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            trainer TEXT NOT NULL,
            base TEXT NOT NULL,
            status TEXT NOT NULL,          -- validating_files queued running succeeded failed cancelled
            training_file TEXT NOT NULL,
            validation_file TEXT,
            suffix TEXT,
            hyperparameters JSON,
            output_dir TEXT,
            error TEXT,
            model_version_id TEXT,
            remote_id TEXT,
            pid INTEGER,
            trained_tokens BIGINT,
            created TIMESTAMP NOT NULL,
            started TIMESTAMP,
            finished TIMESTAMP
        );
        CREATE TABLE job_events (
            job_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            created TIMESTAMP NOT NULL,
            type TEXT NOT NULL,            -- status metrics checkpoint message
            message TEXT,
            step INTEGER,
            data JSON,
            PRIMARY KEY (job_id, seq)
        );
        CREATE TABLE checkpoints (
            job_id TEXT NOT NULL,
            step INTEGER NOT NULL,
            path TEXT NOT NULL,
            metrics JSON,
            created TIMESTAMP NOT NULL,
            PRIMARY KEY (job_id, step)
        );
        """
    )


@migration
def m003_serving(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT,
            prefix TEXT NOT NULL,          -- first characters, to recognise a key in listings
            hash TEXT NOT NULL,            -- sha256 of the whole key; the key itself is never stored
            scope TEXT NOT NULL,           -- inference | admin
            created TIMESTAMP NOT NULL,
            revoked TIMESTAMP
        );
        CREATE TABLE request_log (
            id TEXT PRIMARY KEY,
            created TIMESTAMP NOT NULL,
            key_id TEXT,
            route TEXT NOT NULL,
            model TEXT,
            model_version_id TEXT,
            backend TEXT,
            adapter TEXT,
            stream BOOLEAN,
            status INTEGER NOT NULL,
            error TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            latency_ms DOUBLE,
            ttft_ms DOUBLE
        );
        """
    )


@migration
def m004_evals(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE eval_runs (
            id TEXT PRIMARY KEY,
            evalset TEXT NOT NULL,
            evalset_sha256 TEXT NOT NULL,
            model TEXT NOT NULL,           -- as requested
            model_version_id TEXT,         -- resolved version, NULL for a base model
            prompt_variant TEXT,           -- e.g. fewshot:5, or NULL
            endpoint TEXT,
            settings JSON,
            environment JSON,
            status TEXT NOT NULL,          -- running | completed | failed
            sample_count INTEGER,
            created TIMESTAMP NOT NULL,
            finished TIMESTAMP
        );
        CREATE TABLE eval_samples (
            run_id TEXT NOT NULL,
            sample_id TEXT NOT NULL,
            output TEXT,
            latency_ms DOUBLE,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            cost DOUBLE,
            error TEXT,
            cached BOOLEAN,
            created TIMESTAMP NOT NULL,
            PRIMARY KEY (run_id, sample_id)
        );
        CREATE TABLE eval_scores (
            run_id TEXT NOT NULL,
            sample_id TEXT NOT NULL,       -- '*' for a corpus-level score
            scorer TEXT NOT NULL,
            value DOUBLE NOT NULL,
            passed BOOLEAN,
            detail TEXT,
            PRIMARY KEY (run_id, sample_id, scorer)
        );
        CREATE TABLE response_cache (
            key TEXT PRIMARY KEY,          -- sha256 of (model version id, request)
            output TEXT NOT NULL,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            created TIMESTAMP NOT NULL
        );
        """
    )


@migration
def m020_job_details(con: duckdb.DuckDBPyConnection) -> None:
    # What a job needs to be resumed by another process: its dataset hash and
    # the eval sets named with --eval (passed on to the version it creates).
    con.execute(
        """
        ALTER TABLE jobs ADD COLUMN dataset_sha256 TEXT;
        ALTER TABLE jobs ADD COLUMN evalsets JSON;
        """
    )


@migration
def m060_eval_runner(con: duckdb.DuckDBPyConnection) -> None:
    # The runner caches a call's cost too, and links the evals run on each new
    # version (autoeval) to the runs of its baselines (its base, name@prod).
    con.execute(
        """
        ALTER TABLE response_cache ADD COLUMN cost DOUBLE;
        CREATE TABLE version_evals (
            version_id TEXT NOT NULL,
            evalset TEXT NOT NULL,
            run_id TEXT NOT NULL,          -- the run on the new version
            baseline_run_id TEXT,          -- the run on the baseline, NULL when none ran
            role TEXT NOT NULL,            -- base | prod | candidate (no baseline)
            created TIMESTAMP NOT NULL
        );
        """
    )


@migration
def m070_hosted_jobs(con: duckdb.DuckDBPyConnection) -> None:
    # Jobs are claimed by one worker (claim), may run at a provider (provider,
    # remote_job_id: stored as soon as the provider answers, so a restart
    # re-attaches instead of paying for a second job), and keep the OpenAI
    # request they came from (api: file ids, seed, metadata, the hyperparameters
    # as asked). Served requests record their cost.
    con.execute(
        """
        ALTER TABLE jobs ADD COLUMN claim TEXT;
        ALTER TABLE jobs ADD COLUMN provider TEXT;
        ALTER TABLE jobs ADD COLUMN remote_job_id TEXT;
        ALTER TABLE jobs ADD COLUMN api JSON;
        ALTER TABLE request_log ADD COLUMN cost DOUBLE;
        """
    )


@migration
def m080_audit_log(con: duckdb.DuckDBPyConnection) -> None:
    # Who changed what: keys, adapters, fine-tuning jobs (gateway.audit).
    con.execute(
        """
        CREATE TABLE audit_log (
            id TEXT PRIMARY KEY,
            created TIMESTAMP NOT NULL,
            actor TEXT NOT NULL,           -- the API key's id, cli:<user>, or anonymous (keyless)
            action TEXT NOT NULL,          -- key.create key.revoke adapter.load adapter.unload job.create job.cancel
            target TEXT NOT NULL,
            detail JSON
        );
        """
    )


@migration
def m090_request_user(con: duckdb.DuckDBPyConnection) -> None:
    # OpenAI's `user` and `metadata` request fields, recorded as the client sent them.
    con.execute(
        """
        ALTER TABLE request_log ADD COLUMN "user" TEXT;
        ALTER TABLE request_log ADD COLUMN metadata JSON;
        """
    )


@migration
def m100_retrieval(con: duckdb.DuckDBPyConnection) -> None:
    # The passages a `retrieve:K` run showed the model for each sample (best
    # first), whether the row's gold passage was among them (NULL: no gold),
    # and the stored `gateway diagnose` results.
    con.execute(
        """
        ALTER TABLE eval_samples ADD COLUMN passages VARCHAR[];
        ALTER TABLE eval_samples ADD COLUMN gold_retrieved BOOLEAN;
        CREATE TABLE diagnoses (
            id TEXT PRIMARY KEY,
            evalset TEXT NOT NULL,
            evalset_sha256 TEXT NOT NULL,
            scorer TEXT NOT NULL,
            verdict TEXT NOT NULL,
            run_ids JSON NOT NULL,      -- contender name -> eval run id
            result JSON NOT NULL,       -- effects, costs, verdict numbers, thresholds
            created TIMESTAMP NOT NULL
        );
        """
    )


def _table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
    ).fetchall()
    return {str(r[0]) for r in rows}


def migrate(con: duckdb.DuckDBPyConnection, path: Path | None = None) -> list[str]:
    """Apply the migrations not yet recorded. Returns the names applied."""
    tables = _table_names(con)
    if "_migrations" not in tables:
        if tables:
            # A DuckDB file that some other program made: refuse to touch it.
            raise StoreError(
                f"{path or 'the database'} is a DuckDB file but not a gateway store "
                f"(it has tables {', '.join(sorted(tables)[:5])} and no _migrations). "
                "Point GATEWAY_HOME at another directory."
            )
        con.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied TIMESTAMP NOT NULL)")
    done = {str(r[0]) for r in con.execute("SELECT name FROM _migrations").fetchall()}
    applied: list[str] = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            fn(con)
            con.execute(
                "INSERT INTO _migrations VALUES (?, ?)", [name, datetime.now(UTC).replace(tzinfo=None)]
            )
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        applied.append(name)
    return applied
