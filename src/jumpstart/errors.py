"""The two error families of the project.

``InputError``: the input or the peer is bad (a corrupt image, a malformed CSV, a wrong
signature). Servers answer it with 4xx or by closing the connection, the CLI with exit code 2
and one line. ``UsageError``: the caller misused an API (a programming error). Device APIs add
``esp_err_t``-named subclasses later; everything derives from ``JumpstartError``.
"""

from __future__ import annotations


class JumpstartError(Exception):
    """Base of every error raised on purpose by jumpstart."""


class InputError(JumpstartError, ValueError):
    """The input (file, bytes, peer message) is malformed or fails a check."""


class UsageError(JumpstartError):
    """An API was called in a way its contract does not allow."""
