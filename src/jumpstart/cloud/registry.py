"""The registry: things, certificates and their roles, in SQLite.

A certificate belongs to one principal (a thing for devices, a name for operators and phone
apps) and carries a role that decides what it may do (``cloud.policy``). Revoked certificates
stay listed so they can be refused by id and put on a CRL.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

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
    """Things and certificates of one cloud, persisted in ``path`` (SQLite)."""

    def __init__(self, path: Path | str, ca: CertificateAuthority) -> None:
        self.ca = ca
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

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
            self._db.execute("INSERT INTO things VALUES (?, ?)", (name, now))
        except sqlite3.IntegrityError:
            raise InputError(f"thing {name!r} exists already") from None
        return Thing(name, now)

    def thing(self, name: str) -> Thing | None:
        row = self._db.execute(
            "SELECT name, created_at FROM things WHERE name=?", (name,)
        ).fetchone()
        return Thing(*row) if row else None

    def things(self) -> list[Thing]:
        rows = self._db.execute("SELECT name, created_at FROM things ORDER BY name").fetchall()
        return [Thing(*row) for row in rows]

    def delete_thing(self, name: str) -> None:
        """Remove the thing and revoke its certificates (its shadows stay, as on AWS)."""
        if self.thing(name) is None:
            raise InputError(f"no thing named {name!r}")
        with self._transaction():
            self._db.execute("DELETE FROM things WHERE name=?", (name,))
            self._db.execute(
                "UPDATE certificates SET status=? WHERE principal=? AND role=?",
                (CertStatus.REVOKED.value, name, Role.DEVICE.value),
            )

    def owner_of(self, name: str) -> str | None:
        """The identity ``name`` belongs to: a registered thing or a principal holding a
        certificate (one namespace: a name has one role), else None."""
        if not name:
            return None
        row = self._db.execute(
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
        self._db.execute(
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
                self._db.executemany(
                    "INSERT INTO things VALUES (?, ?)", [(name, now) for name, _, _ in devices]
                )
            except sqlite3.IntegrityError:
                raise InputError("a thing of this batch is registered already") from None
            self._db.executemany(
                "INSERT INTO certificates VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (cert_id, name, Role.DEVICE.value, CertStatus.ACTIVE.value, pem, now)
                    for name, cert_id, pem in devices
                ],
            )

    def _check_role(self, principal: str, role: Role) -> None:
        """One name, one role: an external broker knows a client only by its certificate's
        common name, so a thing named like an admin would get the admin's rights there."""
        row = self._db.execute(
            "SELECT role FROM certificates WHERE principal=? AND role<>? LIMIT 1",
            (principal, role.value),
        ).fetchone()
        if row is not None:
            raise InputError(
                f"{principal!r} is already used by a principal with role {row[0]};"
                " choose another name"
            )

    def certificate(self, certificate_id: str) -> CertificateRecord | None:
        row = self._db.execute(
            "SELECT id, principal, role, status, pem, created_at FROM certificates WHERE id=?",
            (certificate_id,),
        ).fetchone()
        return _record(row) if row else None

    def certificates(self, principal: str | None = None) -> list[CertificateRecord]:
        query = "SELECT id, principal, role, status, pem, created_at FROM certificates"
        rows = (
            self._db.execute(query + " WHERE principal=? ORDER BY created_at", (principal,))
            if principal
            else self._db.execute(query + " ORDER BY created_at")
        ).fetchall()
        return [_record(row) for row in rows]

    def revoke(self, certificate_id: str) -> None:
        cursor = self._db.execute(
            "UPDATE certificates SET status=? WHERE id=?",
            (CertStatus.REVOKED.value, certificate_id),
        )
        if cursor.rowcount == 0:
            raise InputError(f"no certificate with id {certificate_id}")

    def revoked_ids(self) -> set[str]:
        """The ids of every revoked certificate."""
        rows = self._db.execute(
            "SELECT id FROM certificates WHERE status=?", (CertStatus.REVOKED.value,)
        ).fetchall()
        return {row[0] for row in rows}

    def crl_pem(self) -> bytes:
        revoked = [
            x509.load_pem_x509_certificate(record.pem)
            for record in self.certificates()
            if record.status is CertStatus.REVOKED
        ]
        return self.ca.crl_pem(revoked)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


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
