"""Child processes that end with the process that started them, even when it is killed -9."""

from __future__ import annotations

import contextlib
import ctypes
import signal

__all__ = ["die_with_parent"]

# prctl(2): PR_SET_PDEATHSIG. Without it a child outlives a parent killed by SIGKILL: a broker
# keeps holding its port, a pool worker waits for work forever.
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child (``preexec_fn``, a pool's ``initializer``): SIGTERM when the parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
