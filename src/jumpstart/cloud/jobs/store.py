"""Where jobs and job executions live. The interface mirrors the shadow store's: a
compare-and-set on the execution's version, so two engines cannot both move one execution.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from jumpstart.cloud.jobs.model import ExecutionStatus, Job, JobExecution, JobStatus

__all__ = [
    "EXECUTION_COLUMNS",
    "JOB_COLUMNS",
    "JOB_INSERT_COLUMNS",
    "JobExistsError",
    "JobStore",
    "SqlJobStore",
    "SqliteJobStore",
    "StaleExecutionError",
    "execution_from_row",
    "execution_row",
    "job_from_row",
    "job_row",
]


class StaleExecutionError(Exception):
    """The execution changed since it was loaded."""


class JobExistsError(Exception):
    """A job with this id exists already."""


class JobStore(Protocol):
    def create(self, job: Job, executions: list[JobExecution]) -> Job:
        """Store a new job and its executions atomically; the job with its sequence."""

    def job(self, job_id: str) -> Job | None: ...

    def jobs(self) -> list[Job]:
        """Every job, oldest first."""

    def save_job(self, job: Job) -> None: ...

    def execution(self, job_id: str, thing: str) -> JobExecution | None: ...

    def executions_for_thing(self, thing: str) -> list[JobExecution]:
        """The thing's executions, oldest job first."""

    def executions_for_job(self, job_id: str) -> list[JobExecution]: ...

    def due_timeouts(self, now: int) -> list[JobExecution]:
        """IN_PROGRESS executions whose step timeout has passed."""

    def save_execution(self, execution: JobExecution, loaded_version: int) -> None:
        """Store ``execution`` if the stored version is still ``loaded_version``."""

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    document TEXT NOT NULL,
    description TEXT NOT NULL,
    things TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_updated_at INTEGER NOT NULL,
    completed_at INTEGER
);
CREATE TABLE IF NOT EXISTS executions (
    job_id TEXT NOT NULL,
    thing TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    status TEXT NOT NULL,
    status_details TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    started_at INTEGER,
    last_updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    execution_number INTEGER NOT NULL,
    timeout_at INTEGER,
    PRIMARY KEY (thing, job_id)
);
CREATE INDEX IF NOT EXISTS executions_job ON executions(job_id);
"""

JOB_COLUMNS = (
    "job_id, document, description, things, status, created_at, last_updated_at, "
    "completed_at, sequence"
)
JOB_INSERT_COLUMNS = (
    "job_id, document, description, things, status, created_at, last_updated_at, completed_at"
)
EXECUTION_COLUMNS = (
    "job_id, thing, status, status_details, queued_at, started_at, last_updated_at, "
    "version, execution_number, timeout_at, sequence"
)


def job_from_row(row: tuple[Any, ...]) -> Job:
    return Job(
        job_id=row[0],
        document=row[1],
        description=row[2],
        things=tuple(json.loads(row[3])),
        status=JobStatus(row[4]),
        created_at=row[5],
        last_updated_at=row[6],
        completed_at=row[7],
        sequence=row[8],
    )


def job_row(job: Job) -> tuple[Any, ...]:
    """The values of JOB_INSERT_COLUMNS (the sequence is the database's to assign)."""
    return (
        job.job_id,
        job.document,
        job.description,
        json.dumps(list(job.things)),
        job.status.value,
        job.created_at,
        job.last_updated_at,
        job.completed_at,
    )


def execution_from_row(row: tuple[Any, ...]) -> JobExecution:
    return JobExecution(
        job_id=row[0],
        thing=row[1],
        status=ExecutionStatus(row[2]),
        status_details=json.loads(row[3]),
        queued_at=row[4],
        started_at=row[5],
        last_updated_at=row[6],
        version=row[7],
        execution_number=row[8],
        timeout_at=row[9],
        sequence=row[10],
    )


def execution_row(e: JobExecution) -> tuple[Any, ...]:
    return (
        e.job_id,
        e.thing,
        e.status.value,
        json.dumps(e.status_details),
        e.queued_at,
        e.started_at,
        e.last_updated_at,
        e.version,
        e.execution_number,
        e.timeout_at,
        e.sequence,
    )


class SqlJobStore:
    """The queries both backends share, written with ``?`` placeholders. A backend opens
    the connection (``_db``), creates the schema and makes ``create`` atomic its own way."""

    _db: Any

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._db.execute(sql, params)

    def job(self, job_id: str) -> Job | None:
        row = self._execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return job_from_row(row) if row else None

    def jobs(self) -> list[Job]:
        rows = self._execute(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY sequence")
        return [job_from_row(row) for row in rows]

    def save_job(self, job: Job) -> None:
        self._execute(
            "UPDATE jobs SET status=?, last_updated_at=?, completed_at=? WHERE job_id=?",
            (job.status.value, job.last_updated_at, job.completed_at, job.job_id),
        )

    def execution(self, job_id: str, thing: str) -> JobExecution | None:
        row = self._execute(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE job_id=? AND thing=?",
            (job_id, thing),
        ).fetchone()
        return execution_from_row(row) if row else None

    def executions_for_thing(self, thing: str) -> list[JobExecution]:
        rows = self._execute(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE thing=? ORDER BY sequence",
            (thing,),
        )
        return [execution_from_row(row) for row in rows]

    def executions_for_job(self, job_id: str) -> list[JobExecution]:
        rows = self._execute(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE job_id=? ORDER BY thing",
            (job_id,),
        )
        return [execution_from_row(row) for row in rows]

    def due_timeouts(self, now: int) -> list[JobExecution]:
        rows = self._execute(
            f"SELECT {EXECUTION_COLUMNS} FROM executions "
            "WHERE status='IN_PROGRESS' AND timeout_at IS NOT NULL AND timeout_at<=?",
            (now,),
        )
        return [execution_from_row(row) for row in rows]

    def save_execution(self, execution: JobExecution, loaded_version: int) -> None:
        e = execution
        cursor = self._execute(
            "UPDATE executions SET status=?, status_details=?, started_at=?, last_updated_at=?,"
            " version=?, timeout_at=? WHERE job_id=? AND thing=? AND version=?",
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


class SqliteJobStore(SqlJobStore):
    """The default store: one SQLite file in WAL mode, like the shadows."""

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def create(self, job: Job, executions: list[JobExecution]) -> Job:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute(
                f"INSERT INTO jobs ({JOB_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                job_row(job),
            )
            sequence = cursor.lastrowid or 0
            db.executemany(
                f"INSERT INTO executions ({EXECUTION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [execution_row(replace(e, sequence=sequence)) for e in executions],
            )
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            raise JobExistsError(job.job_id) from None
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return replace(job, sequence=sequence)
