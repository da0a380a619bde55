"""The registry: things, certificates and their roles, in SQLite (or, for engines on
several hosts, PostgreSQL: ``cloud.postgres.PostgresRegistry``).

A certificate belongs to one principal (a thing for devices, a name for operators and phone
apps) and carries a role that decides what it may do (``cloud.policy``). Revoked certificates
stay listed so they can be refused by id and put on a CRL.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography import x509

from jumpstart.cloud.pki import CertificateAuthority, IssuedCertificate
from jumpstart.errors import InputError

__all__ = ["CertStatus", "CertificateRecord", "Registry", "Role", "Thing", "check_thing_name"]

# botocore iot-data model: thingName is 1-128 characters of [a-zA-Z0-9:_-].
THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")


class Role(Enum):
    DEVICE = "device"  # its own thing's topics and shadows
    APP = "app"  # a phone app: read and change any thing's shadows
    ADMIN = "admin"  # an operator: everything, the service engines included


class CertStatus(Enum):
    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"


@dataclass(frozen=True, slots=True)
class Thing:
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    certificate_id: str
    principal: str
    role: Role
    status: CertStatus
    pem: bytes
    created_at: int


def check_thing_name(name: str) -> str:
    if not THING_NAME.fullmatch(name):
        raise InputError(f"thing name {name!r} must be 1-128 characters of a-z A-Z 0-9 : _ -")
    return name


_SCHEMA = """
CREATE TABLE IF NOT EXISTS things (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    pem BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS certificates_principal ON certificates(principal);
"""


class Registry:
    """Things and certificates of one cloud, persisted in ``path`` (SQLite).

    The queries are plain SQL with ``?`` parameters; a backend on another database
    overrides the four hooks below (``_execute``, ``_executemany``, ``_transaction`` and
    ``_duplicate``)."""

    def __init__(self, path: Path | str, ca: CertificateAuthority) -> None:
        self.ca = ca
        self._db: Any = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    # backend hooks -----------------------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Any:
        return self._db.execute(sql, params)

    def _executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self._db.executemany(sql, rows)

    def _transaction(self) -> AbstractContextManager[object]:
        return _Transaction(self._db)

    def _duplicate(self, err: Exception) -> bool:
        """Whether ``err`` is the database refusing a second row with one key."""
        return isinstance(err, sqlite3.IntegrityError)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self.close()

    # things ------------------------------------------------------------------------------

    def create_thing(self, name: str) -> Thing:
        check_thing_name(name)
        self._check_role(name, Role.DEVICE)
        now = int(time.time())
        try:
            self._execute("INSERT INTO things VALUES (?, ?)", (name, now))
        except Exception as err:
            if not self._duplicate(err):
                raise
            raise InputError(f"thing {name!r} exists already") from None
        return Thing(name, now)

    def thing(self, name: str) -> Thing | None:
        row = self._execute("SELECT name, created_at FROM things WHERE name=?", (name,)).fetchone()
        return Thing(*row) if row else None

    def things(self) -> list[Thing]:
        rows = self._execute("SELECT name, created_at FROM things ORDER BY name").fetchall()
        return [Thing(*row) for row in rows]

    def delete_thing(self, name: str) -> None:
        """Remove the thing and revoke its certificates (its shadows stay, as on AWS)."""
        if self.thing(name) is None:
            raise InputError(f"no thing named {name!r}")
        with self._transaction():
            self._execute("DELETE FROM things WHERE name=?", (name,))
            self._execute(
                "UPDATE certificates SET status=? WHERE principal=? AND role=?",
                (CertStatus.REVOKED.value, name, Role.DEVICE.value),
            )

    def owner_of(self, name: str) -> str | None:
        """The identity ``name`` belongs to: a registered thing or a principal holding a
        certificate (one namespace: a name has one role), else None."""
        if not name:
            return None
        row = self._execute(
            "SELECT 1 FROM things WHERE name=? UNION ALL"
            " SELECT 1 FROM certificates WHERE principal=? LIMIT 1",
            (name, name),
        ).fetchone()
        return name if row else None

    # certificates ------------------------------------------------------------------------

    def issue(self, principal: str, role: Role) -> IssuedCertificate:
        """A new key and certificate for ``principal``; a device's thing must exist."""
        if role is Role.DEVICE and self.thing(principal) is None:
            raise InputError(f"no thing named {principal!r}; create it first")
        if role is not Role.DEVICE:
            check_thing_name(principal)
        self._check_role(principal, role)
        issued = self.ca.issue_client(principal)
        self._execute(
            "INSERT INTO certificates VALUES (?, ?, ?, ?, ?, ?)",
            (
                issued.certificate_id,
                principal,
                role.value,
                CertStatus.ACTIVE.value,
                issued.cert_pem,
                int(time.time()),
            ),
        )
        return issued

    def register_things(self, devices: Sequence[tuple[str, str, bytes]]) -> None:
        """Register many things, each with its certificate ``(name, certificate id, PEM)``
        issued by this registry's CA, in one transaction (a factory batch): all or none."""
        now = int(time.time())
        with self._transaction():
            for name, _, _ in devices:
                check_thing_name(name)
                self._check_role(name, Role.DEVICE)
            try:
                self._executemany(
                    "INSERT INTO things VALUES (?, ?)", [(name, now) for name, _, _ in devices]
                )
            except Exception as err:
                if not self._duplicate(err):
                    raise
                raise InputError("a thing of this batch is registered already") from None
            self._executemany(
                "INSERT INTO certificates VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (cert_id, name, Role.DEVICE.value, CertStatus.ACTIVE.value, pem, now)
                    for name, cert_id, pem in devices
                ],
            )

    def _check_role(self, principal: str, role: Role) -> None:
        """One name, one role: an external broker knows a client only by its certificate's
        common name, so a thing named like an admin would get the admin's rights there."""
        row = self._execute(
            "SELECT role FROM certificates WHERE principal=? AND role<>? LIMIT 1",
            (principal, role.value),
        ).fetchone()
        if row is not None:
            raise InputError(
                f"{principal!r} is already used by a principal with role {row[0]};"
                " choose another name"
            )

    def certificate(self, certificate_id: str) -> CertificateRecord | None:
        row = self._execute(
            "SELECT id, principal, role, status, pem, created_at FROM certificates WHERE id=?",
            (certificate_id,),
        ).fetchone()
        return _record(row) if row else None

    def certificates(self, principal: str | None = None) -> list[CertificateRecord]:
        query = "SELECT id, principal, role, status, pem, created_at FROM certificates"
        rows = (
            self._execute(query + " WHERE principal=? ORDER BY created_at", (principal,))
            if principal
            else self._execute(query + " ORDER BY created_at")
        ).fetchall()
        return [_record(row) for row in rows]

    def revoke(self, certificate_id: str) -> None:
        cursor = self._execute(
            "UPDATE certificates SET status=? WHERE id=?",
            (CertStatus.REVOKED.value, certificate_id),
        )
        if cursor.rowcount == 0:
            raise InputError(f"no certificate with id {certificate_id}")

    def revoked_ids(self) -> set[str]:
        """The ids of every revoked certificate."""
        rows = self._execute(
            "SELECT id FROM certificates WHERE status=?", (CertStatus.REVOKED.value,)
        ).fetchall()
        return {row[0] for row in rows}

    def copy_to(self, other: Registry) -> None:
        """Add this registry's things and certificates to ``other`` (moving to another
        database); rows ``other`` has already are left as they are there."""
        things = self._execute("SELECT name, created_at FROM things").fetchall()
        certificates = self._execute(
            "SELECT id, principal, role, status, pem, created_at FROM certificates"
        ).fetchall()
        with other._transaction():
            other._executemany(
                "INSERT INTO things VALUES (?, ?) ON CONFLICT DO NOTHING",
                [tuple(r) for r in things],
            )
            other._executemany(
                "INSERT INTO certificates VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(*row[:4], bytes(row[4]), row[5]) for row in certificates],
            )

    def crl_pem(self) -> bytes:
        revoked = [
            x509.load_pem_x509_certificate(record.pem)
            for record in self.certificates()
            if record.status is CertStatus.REVOKED
        ]
        return self.ca.crl_pem(revoked)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


def _record(row: tuple[str, str, str, str, bytes, int]) -> CertificateRecord:
    return CertificateRecord(
        row[0], row[1], Role(row[2]), CertStatus(row[3]), bytes(row[4]), row[5]
    )
