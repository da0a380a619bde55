"""A local cloud and a cloud-connected outlet in one event loop, for device-side tests.

The cloud is the real service (gateway, shadows, REST, firmware hosting) on free ports; the
outlet is a virtual device booting a real app image with the thing's credentials embedded,
its Wi-Fi credentials already in NVS, in an in-memory radio world.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jumpstart.cloud.admin import operator_credentials, shadow_request
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.registry import Role
from jumpstart.cloud.service import CloudConfig, CloudService
from jumpstart.formats.nvs import FormatVersion
from jumpstart.host.app_build import build_app_image
from jumpstart.host.nvs_gen import NvsImageBuilder, parse_nvs_size
from jumpstart.idf.device import Device
from jumpstart.idf.efuse import VirtualEfuse
from jumpstart.idf.flash import MemoryFlash
from jumpstart.idf.radio import AccessPoint, RadioWorld
from jumpstart.idf.wifi import NVS_NAMESPACE, NVS_PASSWORD_KEY, NVS_SSID_KEY
from tests.idf.device_helpers import APPS, outlet_flash

THING = "outlet1"
HOME_AP = AccessPoint("HomeNet", "correct-horse", channel=6, rssi=-45)
NVS_OFFSET = 0x9000
OUTPUT_GPIO = 27


@dataclass
class ThingCredentials:
    thing: str
    cert: bytes
    key: bytes
    ca: bytes

    def cloud_cfg(self, port: int) -> dict[str, bytes]:
        """The guide's five cloud_cfg files, by name."""
        return {
            "server.cert": self.ca,
            "device.cert": self.cert,
            "device.key": self.key,
            "deviceid.txt": self.thing.encode(),
            "endpoint.txt": b"localhost",
        }


@contextlib.asynccontextmanager
async def running_cloud(home: CloudHome, mqtt_port: int = 0) -> AsyncIterator[CloudService]:
    config = CloudConfig(mqtt_port=mqtt_port, rest_port=0, firmware_port=0)
    async with CloudService(home, config) as service:
        yield service


def register_thing(service: CloudService, thing: str = THING) -> ThingCredentials:
    service.registry.create_thing(thing)
    issued = service.registry.issue(thing, Role.DEVICE)
    ca = service.home.ca_pem.read_bytes()
    return ThingCredentials(thing, issued.cert_pem, issued.key_pem, ca)


def wifi_nvs(ap: AccessPoint = HOME_AP) -> bytes:
    """An ``nvs`` partition in which the station is already provisioned for ``ap``."""
    builder = NvsImageBuilder(parse_nvs_size("0x6000"), FormatVersion.V2)
    ns = builder.namespace(NVS_NAMESPACE)
    builder.string(ns, NVS_SSID_KEY, ap.ssid)
    builder.string(ns, NVS_PASSWORD_KEY, ap.password)
    return builder.to_bytes()


def cloud_app_image(app: str, creds: ThingCredentials, mqtt_port: int, **config: Any) -> bytes:
    return build_app_image(
        APPS / app,
        overrides={"mqtt_port": mqtt_port, **config},
        embedded=creds.cloud_cfg(mqtt_port),
    )


@dataclass
class CloudOutlet:
    cloud: CloudService
    creds: ThingCredentials
    device: Device
    world: RadioWorld
    flash: MemoryFlash
    lines: list[str] = field(default_factory=list)
    timed: list[tuple[float, str]] = field(default_factory=list)
    """Each console line with the perf_counter() time it was printed."""
    task: asyncio.Task[None] | None = None

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    @property
    def relay(self) -> int:
        return self.device.gpio.output_level(OUTPUT_GPIO)

    async def press(self, hold: float = 0.1) -> None:
        self.device.gpio.drive(0, 0)
        await asyncio.sleep(hold)
        self.device.gpio.drive(0, None)
        await asyncio.sleep(0.08)  # the button's glitch filter, then the app's handler

    async def rest(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The thing's shadow over the REST API, as the operator (what curl does)."""
        payload = json.dumps(body).encode() if body is not None else b""
        home, port = self.cloud.home, self.cloud.rest_port
        response = await asyncio.to_thread(
            shadow_request, home, method, self.creds.thing, "", payload, port
        )
        assert response.status == 200, response.document
        return dict(response.document)

    async def reported(self) -> dict[str, Any]:
        return dict((await self.rest("GET"))["state"].get("reported", {}))

    async def desired(self) -> dict[str, Any]:
        return dict((await self.rest("GET"))["state"].get("desired", {}))


async def wait_until(
    check: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def cloud_outlet(
    tmp_path: Path, app: str = "5_cloud", **config: Any
) -> AsyncIterator[CloudOutlet]:
    """The cloud, and an outlet running ``app`` that has joined HOME_AP and synced."""
    home = CloudHome(tmp_path / "cloud")
    async with running_cloud(home) as service:
        operator_credentials(home)
        creds = register_thing(service)
        image = cloud_app_image(app, creds, service.mqtt_port, **config)
        flash = outlet_flash(ota_0=image)
        flash.write(NVS_OFFSET, wifi_nvs())
        world = RadioWorld(None, [HOME_AP])
        lines: list[str] = []
        timed: list[tuple[float, str]] = []

        def console(line: str) -> None:
            lines.append(line)
            timed.append((time.perf_counter(), line))

        efuse = VirtualEfuse(bytes.fromhex("240ac4c10d01"))
        device = Device("outlet", flash, efuse, console=console, world=world)
        outlet = CloudOutlet(service, creds, device, world, flash, lines, timed)
        outlet.task = asyncio.create_task(device.run())
        try:
            await wait_until(lambda: outlet.logged("Shadow in sync"), 15, "first shadow sync")
            yield outlet
        finally:
            await device.stop()
            await asyncio.wait_for(outlet.task, 10)
