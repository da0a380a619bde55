"""Devices on in-memory flash with the guide's layout, for runtime tests."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

from jumpstart.formats.bootloader_image import BOOTLOADER_OFFSET
from jumpstart.formats.partition_table import PartitionTable
from jumpstart.host.app_build import build_app_image
from jumpstart.host.image_tools import bootloader_build
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV
from jumpstart.idf.device import Device
from jumpstart.idf.efuse import VirtualEfuse, random_mac
from jumpstart.idf.flash import MemoryFlash

APPS = Path(__file__).resolve().parents[2] / "apps"
FLASH_SIZE = 4 * 1024 * 1024
OTA_0, OTA_1, OTADATA = 0x20000, 0x1B0000, 0xF000


@functools.cache
def bootloader_image() -> bytes:
    """The second-stage bootloader every test flash carries at 0x1000."""
    return bootloader_build(when=dt.datetime(2026, 11, 29, tzinfo=dt.UTC))


@functools.cache
def app_image(name: str) -> bytes:
    return build_app_image(APPS / name)


def outlet_flash(**images: bytes) -> MemoryFlash:
    """Flash with the guide's partition table and ``ota_0=...``/``ota_1=...`` images."""
    flash = MemoryFlash(FLASH_SIZE)
    flash.write(BOOTLOADER_OFFSET, bootloader_image())
    table = PartitionTable.from_csv(OUTLET_PARTITIONS_CSV, flash_size=FLASH_SIZE)
    flash.write(0x8000, table.to_binary())
    for label, image in images.items():
        flash.write({"ota_0": OTA_0, "ota_1": OTA_1}[label], image)
    return flash


def make_device(flash: MemoryFlash, name: str = "dev") -> tuple[Device, list[str]]:
    lines: list[str] = []
    return Device(name, flash, VirtualEfuse(random_mac()), console=lines.append), lines
