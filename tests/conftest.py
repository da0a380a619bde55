"""Shared fixtures: the ESP-IDF test vectors."""

from __future__ import annotations

from pathlib import Path

import pytest

VECTORS = Path(__file__).parent / "vectors" / "esp-idf"


@pytest.fixture
def vectors() -> Path:
    return VECTORS
