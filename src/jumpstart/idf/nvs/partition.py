"""The NVS view of a partition: entry I/O, encrypted or not (``nvs_partition.cpp``,
``nvs_encrypted_partition.cpp``).

Page headers and state bitmaps always go through ``read_raw``/``write_raw``; entries go through
``read``/``write``, which an encrypted partition runs through XTS-AES with the entry's
partition-relative address as tweak.
"""

from __future__ import annotations

from jumpstart.errors import InputError
from jumpstart.formats.nvs import EntryCipher, NvsKeys
from jumpstart.idf.esp_err import EspErr
from jumpstart.idf.nvs.errors import NvsError
from jumpstart.idf.partition import EspPartition

__all__ = ["EncryptedNvsPartition", "NvsPartition"]


class NvsPartition:
    """Plain NVS partition: every access is a raw flash access."""

    __slots__ = ("partition",)

    def __init__(self, partition: EspPartition) -> None:
        self.partition = partition

    @property
    def label(self) -> str:
        return self.partition.label

    @property
    def size(self) -> int:
        return self.partition.size

    @property
    def readonly(self) -> bool:
        return self.partition.readonly

    def read_raw(self, offset: int, length: int) -> bytes:
        return self.partition.read(offset, length)

    def write_raw(self, offset: int, data: bytes) -> None:
        self.partition.write(offset, data)

    def read(self, offset: int, length: int) -> bytes:
        return self.partition.read(offset, length)

    def write(self, offset: int, data: bytes) -> None:
        self.partition.write(offset, data)

    def erase_range(self, offset: int, length: int) -> None:
        self.partition.erase_range(offset, length)


class EncryptedNvsPartition(NvsPartition):
    """NVS partition whose entries are XTS-AES-256 encrypted (NVS encryption)."""

    __slots__ = ("_cipher",)

    def __init__(self, partition: EspPartition, keys: NvsKeys) -> None:
        super().__init__(partition)
        try:
            self._cipher = EntryCipher(keys)
        except InputError as err:
            raise NvsError(EspErr.ESP_ERR_NVS_XTS_CFG_FAILED, str(err)) from err

    def read(self, offset: int, length: int) -> bytes:
        return self._cipher.decrypt(offset, self.partition.read(offset, length))

    def write(self, offset: int, data: bytes) -> None:
        self.partition.write(offset, self._cipher.encrypt(offset, data))
