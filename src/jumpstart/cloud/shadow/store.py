"""Where shadow documents live. One interface, two backends: SQLite (the default, one
process) and PostgreSQL (shared by several engine instances).

``save`` is a compare-and-set on the version the caller loaded, so two engines that race on
one shadow cannot both win: the loser reloads and retries. A save returns only once the
document is durable against a crash of the process (SQLite WAL commit; PostgreSQL commit).
"""

from __future__ import annotations

import contextlib
import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from jumpstart.cloud.shadow.engine import StoredShadow

__all__ = ["CLASSIC", "ShadowStore", "SqliteShadowStore", "StaleShadowError"]

CLASSIC = ""  # the classic (unnamed) shadow's name in the store


class StaleShadowError(Exception):
    """The shadow changed since it was loaded."""


class ShadowStore(Protocol):
    def load(self, thing: str, name: str) -> StoredShadow | None: ...

    def save(self, thing: str, name: str, shadow: StoredShadow, loaded_version: int | None) -> None:
        """Store ``shadow`` if the stored version is still ``loaded_version`` (None: absent)."""

    def named_shadows(self, thing: str) -> list[str]:
        """The names of the thing's existing named shadows, sorted."""

    def exclusive(self, thing: str, name: str) -> AbstractContextManager[object]:
        """Hold off other engine instances from this shadow while one request is served
        (its load, its save): where several instances share a store, compare-and-set alone
        let one of two instances lose every retry to the other."""

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS shadows (
    thing TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    exists_now INTEGER NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (thing, name)
) WITHOUT ROWID;
"""


class SqliteShadowStore:
    """The default store: one SQLite file in WAL mode."""

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the process being killed (not a power cut of
        # the host, which a laptop cloud does not need to survive).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def load(self, thing: str, name: str) -> StoredShadow | None:
        row = self._db.execute(
            "SELECT document FROM shadows WHERE thing=? AND name=?", (thing, name)
        ).fetchone()
        return StoredShadow.from_json(row[0]) if row else None

    def save(self, thing: str, name: str, shadow: StoredShadow, loaded_version: int | None) -> None:
        if loaded_version is None:
            try:
                self._db.execute(
                    "INSERT INTO shadows VALUES (?, ?, ?, ?, ?)",
                    (thing, name, shadow.version, int(shadow.exists), shadow.to_json()),
                )
            except sqlite3.IntegrityError:
                raise StaleShadowError(thing, name) from None
            return
        cursor = self._db.execute(
            "UPDATE shadows SET version=?, exists_now=?, document=? "
            "WHERE thing=? AND name=? AND version=?",
            (shadow.version, int(shadow.exists), shadow.to_json(), thing, name, loaded_version),
        )
        if cursor.rowcount != 1:
            raise StaleShadowError(thing, name)

    def named_shadows(self, thing: str) -> list[str]:
        rows = self._db.execute(
            "SELECT name FROM shadows WHERE thing=? AND name<>'' AND exists_now=1 ORDER BY name",
            (thing,),
        ).fetchall()
        return [row[0] for row in rows]

    def exclusive(self, thing: str, name: str) -> AbstractContextManager[object]:
        """Nothing to hold: engine shards sharing a file serve disjoint things."""
        return contextlib.nullcontext()

    def close(self) -> None:
        self._db.close()
