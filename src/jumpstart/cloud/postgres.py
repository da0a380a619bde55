"""PostgreSQL backends of the shadow and job stores: one database shared by several engine
instances (``jumpstart cloud serve --store postgresql://...``).

The same compare-and-set contract as SQLite: an UPDATE guarded by the loaded version, so of
two engines racing on one shadow or execution exactly one wins and the other reloads. Every
write commits before it returns (synchronous_commit as the server has it, on by default).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from jumpstart.cloud.jobs.model import Job, JobExecution
from jumpstart.cloud.jobs.store import (
    EXECUTION_COLUMNS,
    JOB_COLUMNS,
    JobExistsError,
    StaleExecutionError,
    execution_from_row,
    execution_row,
    job_from_row,
)
from jumpstart.cloud.shadow.engine import StoredShadow
from jumpstart.cloud.shadow.store import StaleShadowError
from jumpstart.errors import InputError

__all__ = ["PostgresJobStore", "PostgresShadowStore", "connect"]

_SHADOW_SCHEMA = """
CREATE TABLE IF NOT EXISTS shadows (
    thing TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    exists_now BOOLEAN NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (thing, name)
)
"""

_JOBS_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    sequence BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    document TEXT NOT NULL,
    description TEXT NOT NULL,
    things TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_updated_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE TABLE IF NOT EXISTS executions (
    job_id TEXT NOT NULL,
    thing TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    status TEXT NOT NULL,
    status_details TEXT NOT NULL,
    queued_at BIGINT NOT NULL,
    started_at BIGINT,
    last_updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    execution_number BIGINT NOT NULL,
    timeout_at BIGINT,
    PRIMARY KEY (thing, job_id)
);
CREATE INDEX IF NOT EXISTS executions_job ON executions(job_id);
"""


def connect(url: str) -> Any:
    """An autocommit connection to ``url``, with a clear error when that cannot be."""
    try:
        import psycopg  # noqa: PLC0415 - optional: only the PostgreSQL backend needs it
    except ImportError:
        raise InputError(
            "the PostgreSQL store needs psycopg: pip install 'jumpstart[postgresql]'"
        ) from None
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.Error as err:
        raise InputError(f"cannot connect to {url}: {err}".strip()) from None


class PostgresShadowStore:
    def __init__(self, url: str) -> None:
        self._db = connect(url)
        self._db.execute(_SHADOW_SCHEMA)

    def load(self, thing: str, name: str) -> StoredShadow | None:
        row = self._db.execute(
            "SELECT document FROM shadows WHERE thing=%s AND name=%s", (thing, name)
        ).fetchone()
        return StoredShadow.from_json(row[0]) if row else None

    def save(self, thing: str, name: str, shadow: StoredShadow, loaded_version: int | None) -> None:
        if loaded_version is None:
            cursor = self._db.execute(
                "INSERT INTO shadows VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (thing, name, shadow.version, shadow.exists, shadow.to_json()),
            )
        else:
            cursor = self._db.execute(
                "UPDATE shadows SET version=%s, exists_now=%s, document=%s "
                "WHERE thing=%s AND name=%s AND version=%s",
                (shadow.version, shadow.exists, shadow.to_json(), thing, name, loaded_version),
            )
        if cursor.rowcount != 1:
            raise StaleShadowError(thing, name)

    def named_shadows(self, thing: str) -> list[str]:
        rows = self._db.execute(
            "SELECT name FROM shadows WHERE thing=%s AND name<>'' AND exists_now ORDER BY name",
            (thing,),
        ).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        self._db.close()


class PostgresJobStore:
    def __init__(self, url: str) -> None:
        self._db = connect(url)
        self._db.execute(_JOBS_SCHEMA)

    def create(self, job: Job, executions: list[JobExecution]) -> Job:
        import psycopg  # noqa: PLC0415 - present: connect() succeeded

        try:
            with self._db.transaction():
                row = self._db.execute(
                    "INSERT INTO jobs (job_id, document, description, things, status,"
                    " created_at, last_updated_at, completed_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING sequence",
                    (
                        job.job_id,
                        job.document,
                        job.description,
                        json.dumps(list(job.things)),
                        job.status.value,
                        job.created_at,
                        job.last_updated_at,
                        job.completed_at,
                    ),
                ).fetchone()
                sequence = int(row[0])
                with self._db.cursor() as cursor:
                    cursor.executemany(
                        f"INSERT INTO executions ({EXECUTION_COLUMNS}) VALUES "
                        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [execution_row(replace(e, sequence=sequence)) for e in executions],
                    )
        except psycopg.errors.UniqueViolation:
            raise JobExistsError(job.job_id) from None
        return replace(job, sequence=sequence)

    def job(self, job_id: str) -> Job | None:
        row = self._db.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id=%s", (job_id,)
        ).fetchone()
        return job_from_row(row) if row else None

    def jobs(self) -> list[Job]:
        rows = self._db.execute(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY sequence")
        return [job_from_row(row) for row in rows]

    def save_job(self, job: Job) -> None:
        self._db.execute(
            "UPDATE jobs SET status=%s, last_updated_at=%s, completed_at=%s WHERE job_id=%s",
            (job.status.value, job.last_updated_at, job.completed_at, job.job_id),
        )

    def execution(self, job_id: str, thing: str) -> JobExecution | None:
        row = self._db.execute(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE job_id=%s AND thing=%s",
            (job_id, thing),
        ).fetchone()
        return execution_from_row(row) if row else None

    def executions_for_thing(self, thing: str) -> list[JobExecution]:
        rows = self._db.execute(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE thing=%s ORDER BY sequence",
            (thing,),
        )
        return [execution_from_row(row) for row in rows]

    def executions_for_job(self, job_id: str) -> list[JobExecution]:
        rows = self._db.execute(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE job_id=%s ORDER BY thing",
            (job_id,),
        )
        return [execution_from_row(row) for row in rows]

    def due_timeouts(self, now: int) -> list[JobExecution]:
        rows = self._db.execute(
            f"SELECT {EXECUTION_COLUMNS} FROM executions "
            "WHERE status='IN_PROGRESS' AND timeout_at IS NOT NULL AND timeout_at<=%s",
            (now,),
        )
        return [execution_from_row(row) for row in rows]

    def save_execution(self, execution: JobExecution, loaded_version: int) -> None:
        e = execution
        cursor = self._db.execute(
            "UPDATE executions SET status=%s, status_details=%s, started_at=%s,"
            " last_updated_at=%s, version=%s, timeout_at=%s"
            " WHERE job_id=%s AND thing=%s AND version=%s",
            (
                e.status.value,
                json.dumps(e.status_details),
                e.started_at,
                e.last_updated_at,
                e.version,
                e.timeout_at,
                e.job_id,
                e.thing,
                loaded_version,
            ),
        )
        if cursor.rowcount != 1:
            raise StaleExecutionError(e.job_id, e.thing)

    def close(self) -> None:
        self._db.close()
