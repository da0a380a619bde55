"""Retained messages that outlive the process (AWS IoT keeps them until replaced or cleared
by an empty retained publish, spec/cloud.md 2.10)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Protocol

__all__ = ["RetainedStore", "SqliteRetainedStore"]


class RetainedStore(Protocol):
    def load(self) -> dict[str, tuple[bytes, int]]:
        """Every retained message: topic -> (payload, qos)."""

    def put(self, topic: str, payload: bytes, qos: int) -> None: ...

    def delete(self, topic: str) -> None: ...

    def close(self) -> None: ...


class SqliteRetainedStore:
    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL,"
            " qos INTEGER NOT NULL) WITHOUT ROWID"
        )

    def load(self) -> dict[str, tuple[bytes, int]]:
        rows = self._db.execute("SELECT topic, payload, qos FROM retained")
        return {topic: (bytes(payload), qos) for topic, payload, qos in rows}

    def put(self, topic: str, payload: bytes, qos: int) -> None:
        self._db.execute(
            "INSERT INTO retained VALUES (?, ?, ?) ON CONFLICT(topic) DO UPDATE "
            "SET payload=excluded.payload, qos=excluded.qos",
            (topic, payload, qos),
        )

    def delete(self, topic: str) -> None:
        self._db.execute("DELETE FROM retained WHERE topic=?", (topic,))

    def close(self) -> None:
        self._db.close()
