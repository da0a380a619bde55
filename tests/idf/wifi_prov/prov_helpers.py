"""A provisioning outlet (apps/4_network_config) in an in-memory radio world."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from jumpstart.host.app_build import build_app_image
from jumpstart.host.prov_client import ProvOptions, provision
from jumpstart.host.prov_connect import open_device
from jumpstart.idf.device import Device
from jumpstart.idf.efuse import VirtualEfuse
from jumpstart.idf.radio import AccessPoint, BleAdvert, RadioWorld
from tests.idf.device_helpers import APPS, outlet_flash

MAC = bytes.fromhex("240ac4ce03c0")
SERVICE = "PROV_CE03C0"
HOME = AccessPoint("HomeNet", "correct-horse", channel=11, rssi=-40)
OTHER = AccessPoint("Neighbour", "whatever1", channel=1, rssi=-70)


def app_image(**config: Any) -> bytes:
    return build_app_image(APPS / "4_network_config", overrides=config)


@dataclass
class Outlet:
    device: Device
    world: RadioWorld
    lines: list[str] = field(default_factory=list)

    def softap(self) -> AccessPoint | None:
        return self.world.find(SERVICE)

    def advert(self) -> BleAdvert | None:
        return self.world.find_advert(SERVICE)

    def endpoint(self) -> str:
        ap = self.softap()
        assert ap is not None, self.lines[-20:]
        assert ap.endpoint is not None
        return ap.endpoint

    def qr_payload(self) -> dict[str, Any]:
        for line in self.lines:
            found = re.search(r"QR payload: (\{.*\})", line)
            if found:
                return dict(json.loads(found[1]))
        raise AssertionError("no QR payload printed")

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.lines)


async def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


FCTRY_OFFSET = 0x340000


@contextlib.asynccontextmanager
async def running_outlet(factory: bytes | None = None, **config: Any) -> AsyncIterator[Outlet]:
    """``factory``: an NVS image written to the ``fctry`` partition first."""
    world = RadioWorld(None, [HOME, OTHER])
    flash = outlet_flash(ota_0=app_image(**config))
    if factory is not None:
        flash.write(FCTRY_OFFSET, factory)
    outlet = Outlet(None, world)  # type: ignore[arg-type]
    outlet.device = Device(
        "outlet", flash, VirtualEfuse(MAC), console=outlet.lines.append, world=world
    )
    task = asyncio.create_task(outlet.device.run())
    try:
        await wait_until(lambda: outlet.logged("QR payload") or outlet.logged("provisioned"))
        yield outlet
    finally:
        await outlet.device.stop()
        await asyncio.wait_for(task, 5)


async def run_client(outlet: Outlet, options: ProvOptions) -> tuple[bool, list[str]]:
    """Provision ``outlet`` as ``jumpstart prov`` does (joining its SoftAP, or over BLE)."""
    said: list[str] = []

    def work() -> bool:
        link = open_device(outlet.world, options.transport, SERVICE)
        try:
            return provision(link, options, said.append)
        finally:
            link.close()

    return await asyncio.to_thread(work), said
