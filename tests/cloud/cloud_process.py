"""``jumpstart cloud serve`` as a child process, for tests that need a real process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

JUMPSTART = str(Path(sys.executable).with_name("jumpstart"))


@dataclass
class Server:
    process: subprocess.Popen[str]
    mqtt_port: int
    rest_port: int
    banner: list[str]  # what it printed up to "Ctrl-C stops the cloud."


def serve(home: Path, store: str = "sqlite", broker: str = "embedded", *options: str) -> Server:
    """``jumpstart cloud serve`` with JUMPSTART_HOME=home, on free ports (``options`` may
    name others)."""
    env = {**os.environ, "JUMPSTART_HOME": str(home)}
    process = subprocess.Popen(
        [
            JUMPSTART,
            "cloud",
            "serve",
            "--mqtt-port",
            "0",
            "--rest-port",
            "0",
            "--firmware-port",
            "0",
            "--dashboard-port",
            "0",
            "--store",
            store,
            "--broker",
            broker,
            *options,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ports: dict[str, int] = {}
    banner: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        banner.append(line.rstrip("\n"))
        if not line or line.startswith("Ctrl-C"):  # the last line: signals are handled
            break
        found = re.search(r"(mqtts|https)://localhost:(\d+)", line)
        if found:
            ports.setdefault(found[1], int(found[2]))  # REST comes before firmware
    assert len(ports) == 2, f"the cloud did not start (exit {process.poll()}): {banner}"
    return Server(process, ports["mqtts"], ports["https"], banner)
