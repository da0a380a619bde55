"""Shared fixtures: the ESP-IDF test vectors, a PostgreSQL cluster; and the run's check that
no server logged a traceback."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres_cluster import postgres_cluster
from tests.system_tools import require

VECTORS = Path(__file__).parent / "vectors" / "esp-idf"


@pytest.fixture
def vectors() -> Path:
    return VECTORS


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL cluster for the whole run (the shared store's backend)."""
    require("postgresql")
    with postgres_cluster() as url:
        yield url


class TracebackLog(logging.Handler):
    """Every log record of the run that carries a traceback: an exception a server (the
    cloud, a device, a provisioning transport, asyncio itself) did not handle."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is None or record.exc_info[0] is None:
            return
        lines = traceback.format_exception(*record.exc_info)
        self.found.append(f"{record.name}: {record.getMessage()}\n{''.join(lines)}")


TRACEBACKS = TracebackLog()


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(TRACEBACKS)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The whole run fails when anything logged a traceback, and says what."""
    if not TRACEBACKS.found:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.section("tracebacks logged during the run", sep="=", red=True)
        for entry in TRACEBACKS.found[:20]:
            reporter.write_line(entry)
        reporter.write_line(f"{len(TRACEBACKS.found)} traceback(s) logged: the run fails")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
