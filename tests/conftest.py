"""Shared fixtures: the ESP-IDF test vectors, a PostgreSQL cluster."""

from __future__ import annotations

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
