"""``jumpstart demo``: the guide's story end to end, as a person runs it (a real process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
JUMPSTART = [sys.executable, "-m", "jumpstart.cli"]


def test_the_whole_story_holds(tmp_path: Path) -> None:
    done = subprocess.run(
        [*JUMPSTART, "demo", "--home", str(tmp_path / "demo")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    steps = [line for line in lines if line.startswith("[")]
    assert len(steps) == 8
    checks = [line for line in lines if line.startswith("  ✓")]
    assert len(checks) >= 9  # every step says what it checked
    assert lines[-1] == "All 8 steps held."
    assert any("refused before the switch" in line for line in checks)
    assert any("rolled back" in line for line in checks)
    assert "Traceback" not in done.stderr


def test_a_home_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    done = subprocess.run(
        [*JUMPSTART, "demo", "--home", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "not empty" in done.stderr
