"""Power cut at every 10th flash operation of an upgrade: always a valid app, NVS intact.

One dry run counts the flash operations of a whole upgrade (download into the passive slot,
otadata switch, the bootloader's PENDING_VERIFY write, the new release confirming itself).
Then, for every 10th of them, the same upgrade runs on a fresh copy of the flash and the power
is cut exactly there; the outlet must boot a valid app, reach the cloud again, and its NVS must
hold everything it held before. The upgrade completes after the cut when the outlet retries it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from pathlib import Path

from jumpstart.cloud.admin import operator_credentials, shadow_request
from jumpstart.cloud.firmware import FirmwareStore, firmware_url
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.service import CloudService
from jumpstart.formats.nvs import FormatVersion
from jumpstart.host.app_build import load_app_package
from jumpstart.host.image_tools import image_build
from jumpstart.host.nvs_gen import NvsImageBuilder, parse_nvs_size
from jumpstart.idf.device import Device, DeviceState
from jumpstart.idf.efuse import VirtualEfuse
from jumpstart.idf.flash import MemoryFlash, PowerCut
from jumpstart.idf.nvs import NvsFlash, OpenMode
from jumpstart.idf.partition import PartitionMap
from jumpstart.idf.radio import RadioWorld
from jumpstart.idf.wifi import NVS_NAMESPACE, NVS_PASSWORD_KEY, NVS_SSID_KEY
from tests.cloud_device import (
    HOME_AP,
    NVS_OFFSET,
    ThingCredentials,
    cloud_app_image,
    register_thing,
    running_cloud,
    wait_until,
)
from tests.idf.device_helpers import APPS, outlet_flash
from tests.idf.ota_helpers import WHEN

CUT_EVERY = 10
MIN_CUT_POINTS = 50
FILLER = 240_000  # makes the release big enough for 500+ flash operations
KEEP = {("app", "marker"): "kept", (NVS_NAMESPACE, NVS_SSID_KEY): HOME_AP.ssid}


def release_2(creds: ThingCredentials, port: int) -> bytes:
    package = load_app_package(APPS / "6_ota", {"mqtt_port": port}, creds.cloud_cfg(port))
    filler = random.Random(2).randbytes(FILLER)
    package = dataclasses.replace(
        package, version="2.0.0", embedded={**package.embedded, "filler.bin": filler}
    )
    return image_build(package.name, "2.0.0", package.to_bytes(), when=WHEN)


def nvs_before() -> bytes:
    builder = NvsImageBuilder(parse_nvs_size("0x6000"), FormatVersion.V2)
    wifi = builder.namespace(NVS_NAMESPACE)
    builder.string(wifi, NVS_SSID_KEY, HOME_AP.ssid)
    builder.string(wifi, NVS_PASSWORD_KEY, HOME_AP.password)
    builder.string(builder.namespace("app"), "marker", "kept")
    return builder.to_bytes()


def nvs_values(flash: MemoryFlash) -> dict[tuple[str, str], str]:
    """What the device's own NVS library reads back (after its power-loss recovery)."""
    nvs = NvsFlash(PartitionMap.load(flash))
    nvs.init()
    values = {}
    for namespace, key in KEEP:
        with nvs.open(namespace, OpenMode.READONLY) as handle:
            values[(namespace, key)] = handle.get_str(key)
    return values


class Run:
    """One outlet on its own copy of the flash, against the shared cloud."""

    version: str | None = None
    """The release running after the cut."""

    def __init__(self, content: bytes, world: RadioWorld) -> None:
        self.flash = MemoryFlash(len(content), content=content)
        self.lines: list[str] = []
        self.device = Device(
            "outlet",
            self.flash,
            VirtualEfuse(bytes.fromhex("240ac4c10d02")),
            console=self.lines.append,
            world=world,
        )

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)


async def set_ota_url(service: CloudService, thing: str, url: str | None) -> None:
    body = json.dumps({"state": {"desired": {"ota_url": url}}}).encode()
    response = await asyncio.to_thread(
        shadow_request, service.home, "POST", thing, "", body, service.rest_port
    )
    assert response.status == 200, response.document


async def upgrade(
    service: CloudService, thing: str, url: str, content: bytes, world: RadioWorld, cut: int | None
) -> tuple[Run, int]:
    """Boot, sync, start the upgrade with a cut armed at operation ``cut``; the operations
    used (to confirmation, or to the cut)."""
    run = Run(content, world)
    task = asyncio.create_task(run.device.run())
    try:
        await wait_until(lambda: run.count("Shadow in sync") >= 1, 15, "first sync")
        start = run.flash.operations
        if cut is not None:
            run.flash.arm_power_cut(PowerCut(cut))
        await set_ota_url(service, thing, url)
        if cut is None:
            await wait_until(lambda: run.count("Firmware 2.0.0 confirmed"), 30, "confirmed")
            return run, run.flash.operations - start
        await wait_until(lambda: not run.flash.powered, 30, f"cut at operation {cut}")
        used = run.flash.operations - start
        run.flash.restore_power()
        synced = run.count("Shadow in sync")
        before = len(run.lines)
        run.device.power_cut()
        await wait_until(lambda: run.count("Shadow in sync") > synced, 15, "sync after the cut")
        assert run.device.state is DeviceState.RUNNING
        # The first boot after the cut (a retried upgrade may already have rebooted since).
        booted = next(line for line in run.lines[before:] if "App version:" in line)
        run.version = booted.split()[-1]
        assert run.version in ("1.0.0", "2.0.0")
        if run.version == "1.0.0" and run.count("OTA rebooting") == 0:
            # The download was cut: the desired ota_url is still there, so the old release
            # starts the upgrade again on its own, and this time it completes.
            await wait_until(lambda: run.count("Firmware 2.0.0 confirmed"), 30, "retried upgrade")
        return run, used
    finally:
        await run.device.stop()
        await asyncio.wait_for(task, 10)
        await set_ota_url(service, thing, None)


def test_power_cut_at_every_10th_flash_operation_of_an_upgrade(tmp_path: Path) -> None:
    home = CloudHome(tmp_path / "cloud")

    async def main() -> tuple[int, dict[str, int]]:
        async with running_cloud(home) as service:
            operator_credentials(home)
            creds = register_thing(service)
            port = service.mqtt_port
            hosted = FirmwareStore(home).upload(release_2(creds, port), "release-2.bin")
            url = firmware_url("localhost", service.firmware_port, hosted.name)
            base = outlet_flash(ota_0=cloud_app_image("6_ota", creds, port))
            base.write(NVS_OFFSET, nvs_before())
            content = base.image()
            world = RadioWorld(None, [HOME_AP])
            _, total = await upgrade(service, creds.thing, url, content, world, None)
            booted: dict[str, int] = {}
            for cut in range(CUT_EVERY, total + 1, CUT_EVERY):
                run, used = await upgrade(service, creds.thing, url, content, world, cut)
                assert used == cut
                version = str(run.version)
                booted[version] = booted.get(version, 0) + 1
                assert nvs_values(run.flash) == KEEP, f"NVS lost something at cut {cut}"
            return total, booted

    total, booted = asyncio.run(main())
    assert total // CUT_EVERY >= MIN_CUT_POINTS, f"only {total} flash operations"
    # Until the new release has confirmed itself (the last operation counted), every cut
    # leaves the old one: an interrupted download never got into otadata, and an unconfirmed
    # switch is rolled back (PENDING_VERIFY -> ABORTED, or its entry half-written).
    assert booted == {"1.0.0": total // CUT_EVERY}
