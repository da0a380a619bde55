"""The front panel's side: the virtual devices of this ``$JUMPSTART_HOME`` (its
``devices/``, beside the cloud's folder), their state and button, over each device's control
socket. A device runs in its own process (``device run``, ``make run``); this only talks to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jumpstart.errors import InputError
from jumpstart.host.device_control import is_running, send_command
from jumpstart.host.device_home import JumpstartHome

__all__ = ["local_devices", "press_device"]

CONSOLE_TAIL = 40


def _thing_of(folder: Path) -> str | None:
    """The thing a device is, when its folder says (``jumpstart run`` keeps cloud_cfg/)."""
    path = folder / "cloud_cfg" / "deviceid.txt"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def local_devices(home_path: Path) -> list[dict[str, Any]]:
    """Each device: name, chip, whether it runs, its outputs and console tail when it does."""
    home = JumpstartHome(home_path)
    devices = []
    for name in home.device_names():
        folder = home.device(name)
        running = is_running(folder)
        entry: dict[str, Any] = {
            "name": name,
            "chip": folder.chip().name,
            "thing": _thing_of(folder.path),
            "running": running,
            "outputs": {},
            "console": [],
        }
        if running:
            try:
                entry["outputs"] = send_command(folder, {"cmd": "status"}, timeout=2)["outputs"]
            except (InputError, OSError, KeyError, TypeError):
                entry["running"] = False
        if folder.console_path.exists():
            lines = folder.console_path.read_text(errors="replace").splitlines()
            entry["console"] = lines[-CONSOLE_TAIL:]
        devices.append(entry)
    return devices


def press_device(home_path: Path, name: str, hold: float) -> dict[str, Any]:
    """Press the device's button for ``hold`` seconds (3 s or more: reset to factory)."""
    folder = JumpstartHome(home_path).device(name)
    if not is_running(folder):
        raise InputError(f"device {name!r} is not running")
    result = send_command(folder, {"cmd": "press", "hold": hold}, timeout=hold + 10)
    return dict(result) if isinstance(result, dict) else {}
