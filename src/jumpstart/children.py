"""Child processes that end with the process that started them, even when it is killed -9."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal

__all__ = ["die_with_parent", "stop_child"]

# prctl(2): PR_SET_PDEATHSIG. Without it a child outlives a parent killed by SIGKILL: a broker
# keeps holding its port, a pool worker waits for work forever.
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child (``preexec_fn``, a pool's ``initializer``): SIGTERM when the parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def stop_child(process: asyncio.subprocess.Process | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; nothing if it has already ended."""
    if process is None or process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        process.kill()
        with contextlib.suppress(ProcessLookupError):
            await process.wait()
