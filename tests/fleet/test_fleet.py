"""A fleet of complete outlets in one process: all reach the cloud and sync, on copy-on-write
flash over one shared image; what happens to one changes no other."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jumpstart.cloud.home import CloudHome
from jumpstart.fleet import Fleet, build_fleet
from jumpstart.fleet.fleet import HOME_AP
from jumpstart.idf.flash import SparseFlash
from jumpstart.idf.radio import RadioWorld
from tests.cloud_device import running_cloud
from tests.idf.device_helpers import APPS

COUNT = 20


def test_a_fleet_syncs_and_its_devices_are_independent(tmp_path: Path) -> None:
    home = CloudHome(tmp_path / "cloud")

    async def main() -> None:
        async with running_cloud(home) as cloud:
            world = RadioWorld(None, [HOME_AP])
            members = await asyncio.to_thread(
                build_fleet, home, cloud.mqtt_port, COUNT, APPS, tmp_path, world=world
            )
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
                before = [f.image() for f in flashes]
                shadows = [cloud.store.load(m.thing, "") for m in members]
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
                after = [f.image() for f in flashes]
                changed = [n for n, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
                assert changed == [3]  # only the device that was reset and cut
                others = [m for m in members if m is not victim]
                assert all(m.in_sync for m in others)
                now = [cloud.store.load(m.thing, "") for m in members]
                assert [a for n, a in enumerate(now) if n != 3] == [
                    b for n, b in enumerate(shadows) if n != 3
                ]
            finally:
                await fleet.stop()

    asyncio.run(main())
