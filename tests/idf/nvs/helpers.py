"""A device-sized flash with one NVS partition, for the nvs tests."""

from __future__ import annotations

from jumpstart.formats.nvs import NvsKeys
from jumpstart.formats.partition_table import PartitionTable
from jumpstart.idf.flash import MemoryFlash
from jumpstart.idf.nvs import NvsFlash
from jumpstart.idf.partition import PartitionMap

NVS_OFFSET = 0x10000
FLASH_SIZE = 0x100000


def flash_with_nvs(size: int = 0x6000, image: bytes | None = None) -> MemoryFlash:
    """A flash whose partition table holds ``nvs`` at 0x10000 (read-only below 0x3000)."""
    flags = "readonly" if size < 0x3000 else ""
    table = PartitionTable.from_csv(f"nvs,data,nvs,{NVS_OFFSET:#x},{size:#x},{flags}\n")
    flash = MemoryFlash(FLASH_SIZE)
    flash.write(0x8000, table.to_binary())
    if image is not None:
        flash.write(NVS_OFFSET, image)
    return flash


def boot(flash: MemoryFlash, keys: NvsKeys | None = None) -> NvsFlash:
    """What a reboot does: a fresh library instance over the same flash."""
    nvs = NvsFlash(PartitionMap.load(flash))
    nvs.init(keys=keys)
    return nvs


def partition_bytes(flash: MemoryFlash, size: int = 0x6000) -> bytes:
    return flash.read(NVS_OFFSET, size)
