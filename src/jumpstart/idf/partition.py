"""``esp_partition``: find partitions in the table at 0x8000 and access them by offset."""

from __future__ import annotations

from dataclasses import dataclass

from jumpstart.formats.partition_table import (
    DEFAULT_TABLE_OFFSET,
    MAX_TABLE_LENGTH,
    SUBTYPE_DATA_NVS_KEYS,
    SUBTYPE_DATA_OTA,
    SUBTYPE_DATA_TEE_OTA,
    Partition,
    PartitionTable,
    PartitionTableError,
    PartitionType,
)
from jumpstart.idf.esp_err import EspErr, EspError
from jumpstart.idf.flash import SECTOR_SIZE, Flash

__all__ = ["EspPartition", "PartitionMap", "is_partition_encrypted"]

# What the flash encryption always covers, flagged or not (partition.c is_partition_encrypted,
# and what the bootloader encrypts on first boot).
_ALWAYS_ENCRYPTED_DATA = (SUBTYPE_DATA_OTA, SUBTYPE_DATA_TEE_OTA, SUBTYPE_DATA_NVS_KEYS)


def is_partition_encrypted(entry: Partition) -> bool:
    """Once flash encryption is on: apps, bootloaders, partition tables, otadata and
    nvs_keys are always read and written through it, other partitions when flagged
    ``encrypted`` (never ``nvs``: NVS has its own encryption)."""
    if entry.type in (PartitionType.APP, PartitionType.BOOTLOADER, PartitionType.PARTITION_TABLE):
        return True
    if entry.type == PartitionType.DATA and entry.subtype in _ALWAYS_ENCRYPTED_DATA:
        return True
    return entry.encrypted


@dataclass(frozen=True, slots=True)
class EspPartition:
    """One partition on one flash (``esp_partition_t``); offsets are partition-relative."""

    flash: Flash
    entry: Partition

    @property
    def label(self) -> str:
        return self.entry.name

    @property
    def address(self) -> int:
        return self.entry.offset

    @property
    def size(self) -> int:
        return self.entry.size

    @property
    def type(self) -> int:
        return self.entry.type

    @property
    def subtype(self) -> int:
        return self.entry.subtype

    @property
    def readonly(self) -> bool:
        return self.entry.readonly

    @property
    def encrypted(self) -> bool:
        """Accessed through flash encryption (``esp_partition_t.encrypted``): only while the
        chip has it on."""
        return self.flash.crypt is not None and is_partition_encrypted(self.entry)

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0:
            raise EspError(EspErr.ESP_ERR_INVALID_ARG, "negative offset or length")
        if offset + length > self.size:
            raise EspError(
                EspErr.ESP_ERR_INVALID_SIZE,
                f"0x{offset:x}+0x{length:x} is past the end of '{self.label}' (0x{self.size:x})",
            )

    def _check_writable(self) -> None:
        if self.readonly:
            raise EspError(EspErr.ESP_ERR_NOT_ALLOWED, f"partition '{self.label}' is read-only")

    def read(self, offset: int, length: int) -> bytes:
        """``esp_partition_read``."""
        self._check(offset, length)
        if self.encrypted:
            return self.flash.read_encrypted(self.address + offset, length)
        return self.flash.read(self.address + offset, length)

    def read_raw(self, offset: int, length: int) -> bytes:
        """``esp_partition_read_raw``: the bytes in flash, never decrypted."""
        self._check(offset, length)
        return self.flash.read(self.address + offset, length)

    def write(self, offset: int, data: bytes) -> None:
        """``esp_partition_write``: programs (bit-AND) the bytes."""
        self._check_writable()
        self._check(offset, len(data))
        if self.encrypted:
            self.flash.write_encrypted(self.address + offset, data)
        else:
            self.flash.write(self.address + offset, data)

    def write_raw(self, offset: int, data: bytes) -> None:
        """``esp_partition_write_raw``: program the bytes as they are."""
        self._check_writable()
        self._check(offset, len(data))
        self.flash.write(self.address + offset, data)

    def erase_range(self, offset: int, length: int) -> None:
        """``esp_partition_erase_range``: sector-aligned offset and length."""
        self._check_writable()
        self._check(offset, length)
        if offset % SECTOR_SIZE or length % SECTOR_SIZE:
            raise EspError(
                EspErr.ESP_ERR_INVALID_ARG,
                f"erase of 0x{offset:x}+0x{length:x} in '{self.label}' is not sector aligned",
            )
        self.flash.erase_range(self.address + offset, length)

    def erase(self) -> None:
        """Erase the whole partition."""
        self.erase_range(0, self.size)


@dataclass(frozen=True, slots=True)
class PartitionMap:
    """The partition table read from a flash, with ``esp_partition_find``."""

    flash: Flash
    table: PartitionTable
    table_offset: int = DEFAULT_TABLE_OFFSET

    @classmethod
    def load(cls, flash: Flash, table_offset: int = DEFAULT_TABLE_OFFSET) -> PartitionMap:
        """Read and check the table; a missing or corrupt one raises ESP_ERR_NOT_FOUND.
        With flash encryption on, the table is read through it."""
        if flash.crypt is not None:
            raw = flash.read_encrypted(table_offset, MAX_TABLE_LENGTH)
        else:
            raw = flash.read(table_offset, MAX_TABLE_LENGTH)
        if raw == b"\xff" * MAX_TABLE_LENGTH:
            raise EspError(
                EspErr.ESP_ERR_NOT_FOUND,
                f"no partition table at 0x{table_offset:x} (the flash is erased there)",
            )
        try:
            table = PartitionTable.from_binary(raw)
            table.verify(flash_size=flash.size)
        except PartitionTableError as err:
            raise EspError(
                EspErr.ESP_ERR_NOT_FOUND, f"invalid partition table at 0x{table_offset:x}: {err}"
            ) from err
        return cls(flash, table, table_offset)

    def find(
        self, type: int | None = None, subtype: int | None = None, label: str | None = None
    ) -> list[EspPartition]:
        """Every partition matching the given type, subtype and label (None = any)."""
        return [EspPartition(self.flash, p) for p in self.table.find(type, subtype, label)]

    def find_first(
        self, type: int | None = None, subtype: int | None = None, label: str | None = None
    ) -> EspPartition:
        """The first match; ESP_ERR_NOT_FOUND if there is none."""
        found = self.find(type, subtype, label)
        if not found:
            raise EspError(
                EspErr.ESP_ERR_NOT_FOUND,
                f"no partition with type={type} subtype={subtype} label={label!r}",
            )
        return found[0]
