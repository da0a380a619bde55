"""The control socket of a running device: one JSON request line, one JSON reply line.

Requests: ``{"cmd": "status"}``, ``{"cmd": "press", "hold": 0.1, "pin": 0}``,
``{"cmd": "restart"}``, ``{"cmd": "power_cut"}``, ``{"cmd": "stop"}``. Replies carry
``"ok": true`` and the command's result, or ``"ok": false`` and an ``"error"``.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from jumpstart.errors import InputError
from jumpstart.host.device_home import DeviceFolder

__all__ = ["MAX_REQUEST", "is_running", "send_command"]

MAX_REQUEST = 64 * 1024


def is_running(folder: DeviceFolder) -> bool:
    """Whether a process serves the device's control socket (a stale socket file is removed)."""
    path = folder.control_path
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # left behind by a killed process
            return False
    return True


def send_command(folder: DeviceFolder, request: dict[str, Any], timeout: float = 30.0) -> Any:
    """Send one request to the device's control socket and return its result."""
    path = folder.control_path
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise InputError(
                f"device {folder.name!r} is not running; start it with "
                f"'jumpstart device run {folder.name}' or 'jumpstart idf monitor "
                f"--device {folder.name}'"
            ) from None
        sock.sendall(json.dumps(request).encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    try:
        answer = json.loads(reply)
    except ValueError:
        raise InputError(
            f"device {folder.name!r} closed the control socket without a reply"
        ) from None
    if not answer.get("ok"):
        raise InputError(f"device {folder.name!r}: {answer.get('error', 'request refused')}")
    return answer.get("result")
