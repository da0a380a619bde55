"""``make run`` the way a new user meets it: every printed command, then Ctrl-C.

Real processes throughout: make and the product (cloud + outlet) in one process group, the
``jumpstart prov`` line, the guide's curl lines, ``jumpstart device status``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.system_tools import require

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FREE_PORTS = "--mqtt-port 0 --rest-port 0 --firmware-port 0 --dashboard-port 0"


@pytest.fixture(autouse=True)
def _curl_installed() -> None:
    require("curl")


class Console:
    """Collects the lines a process prints, from a background thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._process = process
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if re.search(pattern, line):
                    return line
            seen = max(0, len(self.lines) - 1)
            if self._process.poll() is not None and seen >= len(self.lines) - 1:
                break
            time.sleep(0.05)
        tail = "\n".join(self.lines[-30:])
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{tail}")

    def command(self, starts: str) -> str:
        """A printed command line (indented in the 'Next' block)."""
        return self.wait_for(rf"^\s+{re.escape(starts)}").strip()


def run_printed(line: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a printed command as a user would paste it into a shell."""
    return subprocess.run(
        line, shell=True, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def wait_for_value(read: Callable[[], object], expected: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (value := read()) != expected:
        assert time.monotonic() < deadline, f"{value!r}, expected {expected!r}"
        time.sleep(0.2)


def port_of(line: str) -> int:
    found = re.search(r"://localhost:(\d+)", line)
    assert found, line
    return int(found[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _make_run(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["make", "--no-print-directory", "run", f"RUN_ARGS={FREE_PORTS}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # one process group: Ctrl-C reaches make and the product
    )


def _ctrl_c(make: subprocess.Popen[str]) -> None:
    os.killpg(make.pid, signal.SIGINT)
    try:
        make.wait(30)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)


def _new_terminal() -> dict[str, str]:
    """A new terminal's environment: no venv on the PATH, no JUMPSTART_HOME; the printed
    lines must say both."""
    env = {k: v for k, v in os.environ.items() if k != "JUMPSTART_HOME"}
    env["PATH"] = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != BIN)
    return env


def test_make_run_then_the_printed_commands_then_ctrl_c(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "JUMPSTART_HOME": str(tmp_path / "home"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    new_terminal = _new_terminal()
    make = _make_run(env)
    console = Console(make)
    try:
        ports = [
            port_of(console.wait_for(rf"^  {kind} .*://localhost:\d+", 120))
            for kind in ("MQTT", "REST", "Firmware")
        ]
        prov = console.wait_for(r"^\s+JUMPSTART_HOME=\S+ \S+/jumpstart prov ").strip()
        switch_on = console.wait_for(r'"output":true').strip()
        ota = console.wait_for(r'"ota_url"').strip()
        console.wait_for("QR payload")

        provisioned = run_printed(prov, new_terminal)
        assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
        assert "Provisioning was successful" in provisioned.stdout
        console.wait_for("Shadow in sync", 30)

        switched = run_printed(switch_on + " -s", env)
        assert switched.returncode == 0, switched.stderr
        assert json.loads(switched.stdout)["state"]["desired"] == {"output": True}
        console.wait_for("Output on")
        status = run_printed("jumpstart device status outlet", env)
        assert json.loads(status.stdout)["outputs"] == {"27": 1}
        read = switch_on.replace(' -d \'{"state":{"desired":{"output":true}}}\'', "")

        def shadow_output() -> tuple[object, object]:
            state = json.loads(run_printed(read + " -s", env).stdout)["state"]
            return state["reported"].get("output"), state["desired"].get("output")

        # The button: the press shows in reported and desired.
        press = console.wait_for(r"/jumpstart device press outlet$").strip()
        assert run_printed(press, new_terminal).returncode == 0
        wait_for_value(shadow_output, (False, False))
        # The AP goes down, the button is pressed, the AP comes back: the change arrives.
        assert run_printed("jumpstart world ap down myssid", env).returncode == 0
        console.wait_for("Wi-Fi lost")
        assert run_printed("jumpstart device press outlet", env).returncode == 0
        assert shadow_output() == (False, False)
        assert run_printed("jumpstart world ap up myssid", env).returncode == 0
        wait_for_value(shadow_output, (True, True), 30)

        upgraded = run_printed(ota + " -s", env)
        assert upgraded.returncode == 0, upgraded.stderr
        console.wait_for(r"^\[0\] Hello world!$", 30)
    finally:
        _ctrl_c(make)
    # make ends the way a shell's Ctrl-C ends it; the product shut down cleanly before that.
    assert make.returncode in (0, -signal.SIGINT), "\n".join(console.lines[-20:])
    console.wait_for("stopped: cloud and outlet")
    assert not any("Traceback" in line for line in console.lines)
    assert all(port_is_free(port) for port in ports), ports
    _second_run_knows_it_is_provisioned(env)


def _second_run_knows_it_is_provisioned(env: dict[str, str]) -> None:
    """State is kept: the next make run knows the outlet is provisioned, and says how to
    provision it again instead of printing a prov line that would fail."""
    again = _make_run(env)
    console = Console(again)
    try:
        console.wait_for("provisioned already .*'myssid'", 120)
        console.wait_for(r"/jumpstart device press outlet --hold 3$")
        assert not any(re.search(r"^1\. Provision the outlet", line) for line in console.lines)
    finally:
        _ctrl_c(again)
