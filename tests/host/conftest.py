"""Fixtures of the host tool tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``$JUMPSTART_HOME`` for the test."""
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    return tmp_path / "home"
