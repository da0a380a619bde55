"""ESP32 (revision v3.0, ECO3): the guide's chip."""

from __future__ import annotations

from jumpstart.formats.app_image import APP_DESC_LOAD_ADDR, ChipId
from jumpstart.targets.base import ChipProfile

__all__ = ["ESP32"]

ESP32 = ChipProfile(
    name="esp32",
    display_name="ESP32",
    chip_id=ChipId.ESP32,
    extended_header=True,
    flash_size=4 * 1024 * 1024,
    bootloader_offset=0x1000,
    app_load_addr=APP_DESC_LOAD_ADDR,  # DROM 0x3F400020
    app_entry_addr=0x40080000,
    bootloader_dram_addr=0x3FFF0030,
    bootloader_iram_addr=0x40078000,
    bootloader_entry_addr=0x40080400,
    flash_size_code=0x2,  # 4MB
    sdk="ESP-IDF",
    sdk_version="v5.5",
    rom_banner=("ets Jul 29 2019 12:21:46", ""),
    has_bluetooth=True,
    secure_boot=True,
    flash_encryption=True,
    app_rollback=True,
)
