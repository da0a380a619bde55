"""A fleet of complete outlets in one process: all reach the cloud and sync, on copy-on-write
flash over one shared image; what happens to one (an OTA, a factory reset, a power cut)
changes no other's flash, state or shadow."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from jumpstart.cloud.admin import operator_credentials, shadow_request
from jumpstart.cloud.firmware import FirmwareStore, firmware_url
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.service import CloudService
from jumpstart.fleet import Fleet, build_fleet
from jumpstart.fleet.fleet import FleetDevice
from jumpstart.host.app_build import load_app_package
from jumpstart.host.image_tools import image_build
from jumpstart.idf.flash import SparseFlash
from jumpstart.idf.radio import RadioWorld
from tests.cloud_device import running_cloud, wait_until
from tests.idf.device_helpers import APPS

COUNT = 20


def release(version: str) -> bytes:
    package = dataclasses.replace(load_app_package(APPS / "outlet"), version=version)
    when = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    return image_build(package.name, version, package.to_bytes(), when=when)


def images(members: list[FleetDevice]) -> list[bytes]:
    return [m.device.flash.image() for m in members]


def changed(before: list[bytes], after: list[bytes]) -> list[int]:
    return [n for n, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]


def test_a_fleet_syncs_and_its_devices_are_independent(tmp_path: Path) -> None:
    home = CloudHome(tmp_path / "cloud")

    async def main() -> None:
        async with running_cloud(home) as cloud:
            operator_credentials(home)
            world = RadioWorld(None)
            members = await asyncio.to_thread(
                build_fleet, home, cloud.mqtt_port, COUNT, APPS, tmp_path, world=world
            )
            assert len({m.home.ssid for m in members}) == COUNT  # a home each
            fleet = Fleet(members)
            await fleet.start()
            try:
                await fleet.wait_all(lambda m: m.in_sync, 60)
                stats = fleet.stats()
                assert (stats.running, stats.connected, stats.in_sync) == (COUNT, COUNT, COUNT)
                flashes = [m.device.flash for m in members]
                assert all(isinstance(f, SparseFlash) for f in flashes)
                # Each holds only what it changed: its factory data, NVS, otadata.
                own = [f.own_bytes for f in flashes if isinstance(f, SparseFlash)]
                assert max(own) < 128 * 1024, own
                shadows = [cloud.store.load(m.thing, "") for m in members]
                shadows = await _one_outlet_takes_an_ota(cloud, home, members, shadows)
                await _one_outlet_is_reset_and_cut(cloud, fleet, members, shadows)
            finally:
                await fleet.stop()

    asyncio.run(main())


async def _one_outlet_takes_an_ota(
    cloud: CloudService, home: CloudHome, members: list[FleetDevice], shadows: list[Any]
) -> list[Any]:
    # An OTA of one outlet: its flash and shadow change, no other's.
    before = images(members)
    updated = members[5]
    hosted = FirmwareStore(home).upload(release("2.0.0"), "outlet-2.bin")
    url = firmware_url("localhost", cloud.firmware_port, hosted.name)
    body = json.dumps({"state": {"desired": {"ota_url": url}}}).encode()
    response = await asyncio.to_thread(
        shadow_request, home, "POST", updated.thing, "", body, cloud.rest_port
    )
    assert response.status == 200

    def confirmed() -> bool:  # the new release reached the cloud and marked itself valid
        stored = cloud.store.load(updated.thing, "")
        reported = stored.state.get("reported", {}) if stored is not None else {}
        return isinstance(reported, dict) and reported.get("ota_status") == "updated to 2.0.0"

    await wait_until(confirmed, 60, "the OTA")
    await asyncio.sleep(0.5)  # its last reports
    assert changed(before, images(members)) == [5]
    assert updated.device.status()["partition"] == "ota_1"
    assert all(m.device.status()["version"] == "1.0.0" for m in members if m != updated)
    now = [cloud.store.load(m.thing, "") for m in members]
    assert [n for n in range(COUNT) if now[n] != shadows[n]] == [5]
    return now


async def _one_outlet_is_reset_and_cut(
    cloud: CloudService, fleet: Fleet, members: list[FleetDevice], shadows: list[Any]
) -> None:
    # A factory reset and then a power cut of another: only its flash changes.
    before = images(members)
    victim = members[3]
    boots = victim.device.boot_count
    victim.device.gpio.drive(0, 0)  # hold the button 3 s: reset to factory
    await asyncio.sleep(3.6)
    victim.device.gpio.drive(0, None)
    await asyncio.sleep(0.3)
    assert victim.device.boot_count == boots + 1  # the reset rebooted it
    await fleet.wait_all(lambda m: m is victim or m.in_sync, 10)
    victim.device.power_cut()  # and then a power cut, mid-provisioning
    await asyncio.sleep(0.5)
    assert changed(before, images(members)) == [3]
    others = [m for m in members if m is not victim]
    assert all(m.in_sync for m in others)
    now = [cloud.store.load(m.thing, "") for m in members]
    assert [n for n in range(COUNT) if n != 3 and now[n] != shadows[n]] == []
