"""Tests that need a system package say which and why in one line, never with a traceback.

``make test`` installs the packages (``scripts/system_deps.py``); a plain ``pytest`` on a
machine without them skips those tests with the reason. In CI a missing package is a failure.
"""

from __future__ import annotations

import os

import pytest
from scripts.system_deps import REQUIREMENTS, install_command, missing

__all__ = ["require"]


def require(package: str) -> None:
    """Skip (or, in CI, fail) the calling test when the Debian ``package`` is missing."""
    wanted = [req for req in REQUIREMENTS if req.package == package]
    assert wanted, f"no requirement named {package!r} in scripts/system_deps.py"
    if not missing(wanted):
        return
    message = (
        f"{package} is not installed ({wanted[0].why}): "
        f"{install_command([package], as_root=os.geteuid() == 0)}, or run make test"
    )
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
