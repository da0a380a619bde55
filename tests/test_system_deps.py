"""The one set-up step for system packages (scripts/system_deps.py, run by make test)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from scripts.system_deps import REQUIREMENTS, Requirement, install_command, missing

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "system_deps.py"


def test_missing_reports_absent_commands_and_files(tmp_path: Path) -> None:
    reqs = [
        Requirement("has-cmd", "x", commands=("here",)),
        Requirement("no-cmd", "y", commands=("absent",)),
        Requirement("has-file", "z", files=("/bin/*",)),
        Requirement("no-file", "w", files=("/nowhere/*",)),
    ]
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").touch()

    def which(name: str) -> str | None:
        return "/x/here" if name == "here" else None

    found = missing(reqs, which, root=str(tmp_path))
    assert [r.package for r in found] == ["no-cmd", "no-file"]


def test_install_command_names_every_package() -> None:
    assert install_command(["a", "b"], as_root=True) == (
        "apt-get update && env DEBIAN_FRONTEND=noninteractive apt-get install -y a b"
    )
    assert install_command(["a"], as_root=False).startswith("sudo apt-get update && sudo env")


def test_nothing_missing_is_silent_success() -> None:
    if missing():
        pytest.skip("this machine lacks some packages; make test installs them")
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=30, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# The system's interpreter: the venv's may live under /root, which other users cannot enter.
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None or not Path(SYSTEM_PYTHON).exists(),
    reason="needs root, runuser and the system's python3",
)
def test_non_root_stops_at_once_with_the_one_command() -> None:
    # A user who cannot install: the file probes point at an empty tree, so those are missing.
    # pytest's tmp_path is private to root, so the script goes where the user can read it.
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    script = folder / "system_deps.py"
    script.write_bytes(SCRIPT.read_bytes())
    script.chmod(0o644)
    tmp_path = folder
    env = {"PATH": "/usr/bin:/bin", "JUMPSTART_SYSTEM_ROOT": str(tmp_path / "empty")}
    result = subprocess.run(
        [str(shutil.which("runuser")), "-u", "nobody", "--", SYSTEM_PYTHON, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    needed = [r.package for r in REQUIREMENTS if r.files]
    assert lines[0].endswith(install_command(needed, as_root=False))
    shutil.rmtree(folder)
