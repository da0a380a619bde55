"""Shared fixtures: the ESP-IDF test vectors, a PostgreSQL cluster."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres_cluster import postgres_cluster

VECTORS = Path(__file__).parent / "vectors" / "esp-idf"


@pytest.fixture
def vectors() -> Path:
    return VECTORS


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL cluster for the whole run (the shared store's backend)."""
    try:
        with postgres_cluster() as url:
            yield url
    except RuntimeError as err:
        if os.environ.get("CI"):
            raise  # CI installs PostgreSQL: its absence there is a failure
        pytest.skip(str(err))
