"""First use of a state folder, safe when several processes start at once.

``make run``, ``cloud serve`` and ``cloud thing create`` may all be the first to touch a fresh
``$JUMPSTART_HOME``. Whoever comes first creates the CA, the server certificate, the registry,
the radio world, under an exclusive lock on the folder; files appear whole (a temporary file
renamed into place), so nobody ever reads half a key or a CA that is replaced a moment later.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCK_NAME", "folder_lock", "write_new"]

LOCK_NAME = ".lock"


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created if missing) for the block."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_new(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` whole: a temporary file in the same folder, then renamed over it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
