"""The run's traceback check (tests/conftest.py) sees what asyncio and the servers log."""

from __future__ import annotations

import asyncio
import logging

from tests.conftest import TracebackLog


def test_an_unhandled_task_exception_is_caught_by_the_check() -> None:
    check = TracebackLog()
    logger = logging.getLogger("asyncio")
    logger.addHandler(check)
    logger.propagate = False  # this test's deliberate traceback is not the run's
    try:

        async def fails() -> None:
            raise RuntimeError("a server bug")

        async def main() -> None:
            loop = asyncio.get_running_loop()
            loop.call_exception_handler(
                {"message": "Task exception was never retrieved", "exception": RuntimeError("x")}
            )
            task = asyncio.create_task(fails())
            await asyncio.sleep(0)
            assert task.done()
            task.exception()  # retrieved: not logged

        asyncio.run(main())
    finally:
        logger.propagate = True
        logger.removeHandler(check)
    assert len(check.found) == 1
    assert "Task exception was never retrieved" in check.found[0]
    assert "RuntimeError: x" in check.found[0]
    assert not [r for r in check.found if "a server bug" in r]
