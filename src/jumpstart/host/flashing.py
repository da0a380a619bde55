"""Where ``idf.py flash`` puts an app image, and how it makes that image boot next.

Shared by ``jumpstart idf flash`` and ``jumpstart run`` (which flashes a new outlet).
"""

from __future__ import annotations

from jumpstart.errors import InputError
from jumpstart.formats.partition_table import (
    DEFAULT_TABLE_OFFSET,
    MAX_TABLE_LENGTH,
    PartitionTable,
    PartitionType,
)
from jumpstart.host.image_tools import bootloader_build
from jumpstart.idf.flash import Flash
from jumpstart.targets import ESP32, ChipProfile

__all__ = ["boot_app_offset", "ensure_bootloader", "erase_otadata", "flash_app_image", "table_of"]

OTADATA_SUBTYPE = 0x00
FACTORY_SUBTYPE = 0x00


def table_of(flash: Flash) -> PartitionTable:
    """The partition table at 0x8000 (InputError if there is none); read through flash
    encryption when the flash has it on."""
    read = flash.read_encrypted if flash.crypt is not None else flash.read
    return PartitionTable.from_binary(read(DEFAULT_TABLE_OFFSET, MAX_TABLE_LENGTH))


def boot_app_offset(table: PartitionTable) -> int:
    """Where idf.py flash puts the app: the factory app, else ota_0, else the first app."""
    apps = [p for p in table.partitions if p.type == PartitionType.APP]
    factory = [p for p in apps if p.subtype == FACTORY_SUBTYPE]
    targets = factory or table.ota_apps or apps
    if not targets:
        raise InputError("the partition table has no app partition for IMAGE")
    return targets[0].offset


def erase_otadata(flash: Flash) -> list[int]:
    """Erase otadata (ota_data_initial.bin) so the flashed app boots; the offsets erased."""
    try:
        table = table_of(flash)  # read again: a write may have brought a new table
    except InputError:
        return []
    erased = []
    for p in table.partitions:
        if p.type == PartitionType.DATA and p.subtype == OTADATA_SUBTYPE:
            flash.erase_range(p.offset, p.size)
            erased.append(p.offset)
    return erased


def ensure_bootloader(flash: Flash, chip: ChipProfile = ESP32) -> bool:
    """Write a bootloader (at 0x1000 on ESP32, 0x0 on ESP8266) when none is there (devices
    made before they had one, or erased): True when it wrote one. A bootloader that is
    there, signed or not, is kept."""
    offset = chip.bootloader_offset
    if flash.read(offset, 4) != b"\xff" * 4:
        return False
    image = bootloader_build(chip=chip)
    flash.erase_range(offset, len(image) + (-len(image) % flash.sector_size))
    flash.write(offset, image)
    return True


def flash_app_image(flash: Flash, image: bytes) -> int:
    """``idf.py flash`` of an app image alone: write it where it boots, erase otadata."""
    offset = boot_app_offset(table_of(flash))
    flash.erase_range(offset, len(image) + (-len(image) % flash.sector_size))
    flash.write(offset, image)
    erase_otadata(flash)
    return offset
