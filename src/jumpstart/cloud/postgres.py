"""PostgreSQL backends of the shadow and job stores and of the registry: one database
shared by several engine instances (``jumpstart cloud serve --store postgresql://...``), on
several hosts with ``--registry postgresql://...``.

The same compare-and-set contract as SQLite: an UPDATE guarded by the loaded version, so of
two engines racing on one shadow or execution exactly one wins and the other reloads; and a
shadow request holds an advisory lock on its shadow while it is served (``exclusive``), so
instances that receive one thing's requests at once take turns instead of racing. Every
write commits before it returns (synchronous_commit as the server has it, on by default).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any, cast

from jumpstart.cloud.jobs.model import Job, JobExecution
from jumpstart.cloud.jobs.store import (
    EXECUTION_COLUMNS,
    JOB_INSERT_COLUMNS,
    JobExistsError,
    SqlJobStore,
    execution_row,
    job_row,
)
from jumpstart.cloud.pki import CertificateAuthority
from jumpstart.cloud.registry import Registry
from jumpstart.cloud.shadow.engine import StoredShadow
from jumpstart.cloud.shadow.store import StaleShadowError
from jumpstart.errors import InputError

__all__ = ["PostgresJobStore", "PostgresRegistry", "PostgresShadowStore", "connect"]

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


_REGISTRY_SCHEMA = """
CREATE TABLE IF NOT EXISTS things (
    name TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    pem BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS certificates_principal ON certificates(principal);
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

    @contextlib.contextmanager
    def exclusive(self, thing: str, name: str) -> Iterator[None]:
        """A transaction holding an advisory lock on (thing, name): another instance's
        request on the same shadow waits for this one's commit (a thing name has no '/')."""
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{thing}/{name}",))
            yield

    def named_shadows(self, thing: str) -> list[str]:
        rows = self._db.execute(
            "SELECT name FROM shadows WHERE thing=%s AND name<>'' AND exists_now ORDER BY name",
            (thing,),
        ).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        self._db.close()


class PostgresJobStore(SqlJobStore):
    """The shared queries on PostgreSQL; ``create`` reads the sequence back with RETURNING."""

    def __init__(self, url: str) -> None:
        self._db = connect(url)
        self._db.execute(_JOBS_SCHEMA)

    def create(self, job: Job, executions: list[JobExecution]) -> Job:
        import psycopg  # noqa: PLC0415 - present: connect() succeeded

        try:
            with self._db.transaction():
                row = self._db.execute(
                    f"INSERT INTO jobs ({JOB_INSERT_COLUMNS})"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING sequence",
                    job_row(job),
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

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._db.execute(sql.replace("?", "%s"), params)


class PostgresRegistry(Registry):
    """The registry's queries on PostgreSQL, so that engine instances on several hosts
    agree on things and certificates (the broker configuration follows it from any of
    them)."""

    def __init__(self, url: str, ca: CertificateAuthority) -> None:
        self.ca = ca
        self._db = connect(url)
        # Two processes creating the tables at once: one waits for the other's lock.
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(7415)")
            self._db.execute(_REGISTRY_SCHEMA)

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Any:
        return self._db.execute(sql.replace("?", "%s"), params)

    def _executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self._db.cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), rows)

    def _transaction(self) -> AbstractContextManager[object]:
        return cast(AbstractContextManager[object], self._db.transaction())

    def _duplicate(self, err: Exception) -> bool:
        import psycopg  # noqa: PLC0415 - present: connect() succeeded

        return isinstance(err, psycopg.errors.UniqueViolation)
