"""Devices on in-memory flash with the guide's layout, for runtime tests."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import pytest

from jumpstart.formats.partition_table import PartitionTable
from jumpstart.host.app_build import build_app_image
from jumpstart.host.image_tools import bootloader_build
from jumpstart.host.layouts import OUTLET_LAYOUTS
from jumpstart.idf.device import Device
from jumpstart.idf.efuse import VirtualEfuse, random_mac
from jumpstart.idf.flash import MemoryFlash
from jumpstart.targets import ESP32, ESP8266, ChipProfile

APPS = Path(__file__).resolve().parents[2] / "apps"
FLASH_SIZE = 4 * 1024 * 1024
OTA_0, OTA_1, OTADATA = 0x20000, 0x1B0000, 0xF000


# Tests whose behaviour is the same on every chip run on each profile (targets/).
CHIP_PROFILES = pytest.mark.parametrize("chip", [ESP32, ESP8266], ids=lambda c: c.name)
WHEN = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


@functools.cache
def bootloader_image(chip: ChipProfile = ESP32) -> bytes:
    """The second-stage bootloader every test flash carries (0x1000 on ESP32, 0x0 ESP8266)."""
    return bootloader_build(when=WHEN, chip=chip)


@functools.cache
def app_image(name: str, chip: ChipProfile = ESP32) -> bytes:
    return build_app_image(APPS / name, chip=chip)


def outlet_table(chip: ChipProfile = ESP32) -> PartitionTable:
    return PartitionTable.from_csv(OUTLET_LAYOUTS[chip.name], flash_size=chip.flash_size)


def partition_offset(label: str, chip: ChipProfile = ESP32) -> int:
    """Where the chip's outlet layout puts a partition (ota_0, ota_1, otadata...)."""
    return next(p.offset for p in outlet_table(chip).partitions if p.name == label)


def outlet_flash(chip: ChipProfile = ESP32, **images: bytes) -> MemoryFlash:
    """Flash with the chip's outlet partition table and ``ota_0=...``/``ota_1=...`` images."""
    flash = MemoryFlash(chip.flash_size)
    flash.write(chip.bootloader_offset, bootloader_image(chip))
    flash.write(0x8000, outlet_table(chip).to_binary())
    for label, image in images.items():
        flash.write(partition_offset(label, chip), image)
    return flash


def make_device(
    flash: MemoryFlash, name: str = "dev", chip: ChipProfile = ESP32
) -> tuple[Device, list[str]]:
    lines: list[str] = []
    efuse = VirtualEfuse(random_mac())
    return Device(name, flash, efuse, console=lines.append, chip=chip), lines
