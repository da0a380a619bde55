"""ESP8266 with ESP8266_RTOS_SDK v3.4: the guide's "For ESP8266 users" chip.

Facts from the SDK: the bootloader at 0x0 (CONFIG_BOOTLOADER_STORE_OFFSET), ESP-IDF's
partition table at 0x8000, app images as ``elf2image --version 3`` writes them (8-byte header,
flash segments first, SHA-256 appended), the flash text/rodata window at 0x40200010 plus the
app's offset within its 1 MB window (``iram0_2_seg`` in ``esp8266.ld``), otadata entries
without an ota_state (no app rollback), no Bluetooth and no eFuse security.
"""

from __future__ import annotations

from jumpstart.formats.app_image import ChipId
from jumpstart.targets.base import ChipProfile

__all__ = ["ESP8266"]

ESP8266 = ChipProfile(
    name="esp8266",
    display_name="ESP8266",
    chip_id=ChipId.ESP8266,
    extended_header=False,
    flash_size=2 * 1024 * 1024,
    bootloader_offset=0x0,
    app_load_addr=0x40210010,  # 0x40200010 + (0x10000 & 0xFFFFF): ota_0 at 0x10000
    app_entry_addr=0x40100004,  # call_user_start in iram0_0_seg
    bootloader_dram_addr=0x3FFE8000,  # esp8266.bootloader.ld dram_seg
    bootloader_iram_addr=0x40100000,  # and iram_seg
    bootloader_entry_addr=0x40100004,
    flash_size_code=0x3,  # 2MB in esptool's ESP8266 table (512KB 0, 256KB 1, 1MB 2, 2MB 3)
    sdk="ESP8266_RTOS_SDK",
    sdk_version="v3.4",
    rom_banner=(" ets Jan  8 2013,rst cause:2, boot mode:(3,6)", ""),
    has_bluetooth=False,
    secure_boot=False,
    flash_encryption=False,
    app_rollback=False,
    no_bluetooth_reason="ESP8266 has no Bluetooth; use SoftAP (--transport softap)",
    no_security_reason=(
        "ESP8266 does not support it (guide 9.2.1: it cannot be secured from physical access)"
    ),
)
