"""End to end: the 3_wifi_connection app in a real device process, against world.toml."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from jumpstart.host.device_home import JumpstartHome
from tests.host.test_device_cli import JUMPSTART, cli, flashed_device, wait_for


def start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    flashed_device("outlet", "3_wifi_connection", tmp_path)
    folder = JumpstartHome().device("outlet")
    process = subprocess.Popen([*JUMPSTART, "device", "run", "outlet"], env=os.environ.copy())
    return process, folder.console_path


def log(console: Path) -> str:
    return console.read_text() if console.exists() else ""


def test_connects_then_survives_the_ap_going_down_and_up(home: Path, tmp_path: Path) -> None:
    # the app's hard-coded network (its [config] wifi_ssid / wifi_password)
    assert cli("world", "ap", "add", "myssid", "--password", "mypassword") == 0
    process, console = start(tmp_path)
    try:
        wait_for(lambda: "Connected with IP Address:192.168." in log(console))
        assert cli("world", "ap", "down", "myssid") == 0
        wait_for(lambda: "Disconnected (reason 200 BEACON_TIMEOUT)" in log(console))
        time.sleep(0.5)
        assert cli("world", "ap", "up", "myssid") == 0
        wait_for(lambda: log(console).count("Connected with IP Address:") == 2, timeout=15)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_wrong_password_logs_an_auth_failure(home: Path, tmp_path: Path) -> None:
    assert cli("world", "ap", "add", "myssid", "--password", "notmypassword") == 0
    process, console = start(tmp_path)
    try:
        wait_for(lambda: "auth failure connecting to 'myssid'" in log(console))
        assert "Disconnected (reason 202 AUTH_FAIL)" in log(console)
        assert "Connected with IP" not in log(console)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_world_commands_refuse_bad_input(home: Path) -> None:
    assert cli("world", "ap", "add", "x", "--password", "short") == 2
    assert cli("world", "ap", "down", "missing") == 2
    assert cli("world", "ap", "add", "x", "--auth", "nonsense") == 2
