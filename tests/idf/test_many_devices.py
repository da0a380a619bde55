"""Fifty devices in one process: own flash, own event loop state, independent lives."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from jumpstart.formats.bootloader_image import BOOTLOADER_OFFSET
from jumpstart.formats.partition_table import PartitionTable
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV
from jumpstart.idf.device import Device, DeviceState
from jumpstart.idf.efuse import VirtualEfuse, random_mac
from jumpstart.idf.flash import FileFlash
from tests.idf.device_helpers import FLASH_SIZE, OTA_0, app_image, bootloader_image

COUNT = 50


def app_namespaces() -> set[str]:
    return {name.split(".")[0] for name in sys.modules if name.startswith("_jumpstart_app_")}


def test_fifty_devices_toggle_independently_and_restart_alone(tmp_path: Path) -> None:
    image = app_image("2_drivers")
    table = PartitionTable.from_csv(OUTLET_PARTITIONS_CSV, flash_size=FLASH_SIZE).to_binary()
    devices: list[Device] = []
    for n in range(COUNT):
        flash = FileFlash(tmp_path / f"flash{n}.bin", FLASH_SIZE)
        flash.write(BOOTLOADER_OFFSET, bootloader_image())
        flash.write(0x8000, table)
        flash.write(OTA_0, image)
        devices.append(Device(f"d{n}", flash, VirtualEfuse(random_mac()), console=lambda _: None))

    async def main() -> None:
        tasks = [asyncio.create_task(d.run()) for d in devices]
        await asyncio.sleep(0.3)
        assert all(d.state is DeviceState.RUNNING for d in devices)
        for n in (7, 21):
            devices[n].gpio.drive(0, 0)
        await asyncio.sleep(0.1)
        for n in (7, 21):
            devices[n].gpio.drive(0, None)
        await asyncio.sleep(0.15)
        assert [d.gpio.output_level(27) for d in devices] == [
            1 if n in (7, 21) else 0 for n in range(COUNT)
        ]
        devices[3].restart()
        await asyncio.sleep(0.2)
        assert [d.boot_count for d in devices] == [2 if n == 3 else 1 for n in range(COUNT)]
        assert all(d.state is DeviceState.RUNNING for d in devices)
        assert devices[7].gpio.output_level(27) == 1  # the others kept their state
        # each boot runs the app from modules of its own; a restart unloads the old ones
        assert len(app_namespaces()) == COUNT
        for device in devices:
            await device.stop()
        await asyncio.gather(*tasks)
        assert app_namespaces() == set()

    asyncio.run(main())
    for device in devices:
        assert isinstance(device.flash, FileFlash)
        device.flash.close()
