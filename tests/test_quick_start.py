"""The README's two commands: what make run and make test install."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _recipe(makefile: str, target: str) -> str:
    found = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert found, target
    return found[1]


def test_make_run_installs_only_what_running_needs_and_shows_progress() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^run: \$\(RUN_STAMP\)$", makefile, re.MULTILINE)
    run_install = _recipe(makefile, "$(RUN_STAMP)")
    assert "install --progress-bar on -e .\n" in run_install  # no [test] extra
    assert "--quiet" not in makefile
    test_install = _recipe(makefile, "$(STAMP)")
    assert "-e '.[test]'" in test_install
    # make test runs the system-package step before anything else, as .ci/run does.
    assert re.search(r"^test: system-deps lint typecheck unit$", makefile, re.MULTILINE)
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "apt-get install -y -q mosquitto" not in ci  # one list, in scripts/system_deps.py


def test_project_metadata_builds_without_deprecation_warnings() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"  # an SPDX string, not a table
    assert "setuptools>=77" in project["build-system"]["requires"]
