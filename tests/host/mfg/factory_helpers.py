"""What the factory tests share: the outlet's console, provisioning over SoftAP, and one
outlet's identity made with the ``mfg`` commands against a running cloud."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from jumpstart.cli import main
from jumpstart.host.prov_client import ProvOptions, provision
from jumpstart.host.prov_connect import open_device
from jumpstart.idf.radio import RadioWorld
from tests.cloud_device import HOME_AP

FCTRY = 0x340000  # the ESP32 outlet layout's factory partition
WAIT_S = 20.0  # a device boots, provisions or reconnects within this


class Console:
    """A device's console lines, as run_device prints them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def qr(self) -> dict[str, Any]:
        for line in reversed(self.lines):
            found = re.search(r"QR payload: (\{.*\})", line)
            if found:
                return dict(json.loads(found[1]))
        raise AssertionError("no QR payload")


def provision_home_ap(world: RadioWorld, name: str, pop: str) -> bool:
    """Espressif's provisioning flow over SoftAP, giving the device the home network."""
    link = open_device(world, "softap", name)
    try:
        options = ProvOptions(
            pop=pop, ssid=HOME_AP.ssid, passphrase=HOME_AP.password, poll_interval_s=0.1
        )
        return provision(link, options, lambda _line: None)
    finally:
        link.close()


async def manufacture_one(out: Path, mqtt_port: int, *generate_options: str) -> dict[str, str]:
    """``mfg credentials`` then ``mfg generate`` for one outlet; its row of values.csv."""
    credentials = ["mfg", "credentials", "--count", "1", "--outdir", str(out)]
    assert await asyncio.to_thread(main, [*credentials, "--mqtt-port", str(mqtt_port)]) == 0
    config, values = str(out / "config.csv"), str(out / "values.csv")
    generate = ["mfg", "generate", config, values, "outlet", "0x6000", "--outdir", str(out)]
    assert await asyncio.to_thread(main, [*generate, *generate_options]) == 0
    return next(csv.DictReader(io.StringIO(Path(values).read_text())))
