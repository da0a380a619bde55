"""Reading inputs and writing outputs of the host tools, with errors a user can act on."""

from __future__ import annotations

from pathlib import Path

from jumpstart.errors import InputError
from jumpstart.statefiles import write_new

__all__ = ["read_file", "write_atomically"]


def read_file(path: Path) -> bytes:
    """The bytes of ``path``; an unreadable file is an input error naming it."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}") from None


def write_atomically(path: Path, data: bytes, *, make_parents: bool = False) -> None:
    """Write via a temporary file in the same folder, so a failure never leaves a partial file
    (statefiles.write_new: a unique temporary name, so two writers never share one)."""
    try:
        if make_parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        write_new(path, data)
    except OSError as err:
        raise InputError(f"cannot write {path}: {err.strerror}") from None
