"""The nvs_flash API (``nvs_flash.h``, ``nvs.h``) for one device.

ESP-IDF keeps initialised partitions in a global list; here an :class:`NvsFlash` object per
device holds them, so many devices can run in one process. Every set and erase reaches the
flash before it returns (``nvs_commit`` is a no-op in ESP-IDF too).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import IntEnum
from types import TracebackType

from jumpstart.errors import InputError
from jumpstart.formats.nvs import (
    KEY_MAX_LENGTH,
    NS_ANY,
    BlobVersion,
    ItemType,
    NvsKeys,
    NvsKeysError,
    pack_integer,
    unpack_integer,
)
from jumpstart.formats.partition_table import PartitionType
from jumpstart.idf.esp_err import EspErr
from jumpstart.idf.log import EspLog
from jumpstart.idf.nvs.errors import NvsError
from jumpstart.idf.nvs.partition import EncryptedNvsPartition, NvsPartition
from jumpstart.idf.nvs.storage import Storage, StorageStats
from jumpstart.idf.partition import EspPartition, PartitionMap

__all__ = [
    "NVS_DEFAULT_PART_NAME",
    "EntryInfo",
    "NvsFlash",
    "NvsHandle",
    "NvsType",
    "OpenMode",
    "generate_keys",
    "read_security_cfg",
]

NVS_DEFAULT_PART_NAME = "nvs"
NVS_KEYS_SUBTYPE = 0x04  # data/nvs_keys


class OpenMode(IntEnum):
    """``nvs_open_mode_t``."""

    READONLY = 0
    READWRITE = 1


# The chunk index of a multi-page blob's first data chunk, for each of its two versions.
FIRST_CHUNKS = frozenset(version.value for version in BlobVersion)


class NvsType(IntEnum):
    """``nvs_type_t`` as the iterator reports it (blobs are 0x42)."""

    U8 = 0x01
    I8 = 0x11
    U16 = 0x02
    I16 = 0x12
    U32 = 0x04
    I32 = 0x14
    U64 = 0x08
    I64 = 0x18
    STR = 0x21
    BLOB = 0x42
    ANY = 0xFF


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """``nvs_entry_info_t``."""

    namespace_name: str
    key: str
    type: NvsType


# nvs_set_u8 ... nvs_get_i64 by their suffix
_INT_TYPES: dict[str, ItemType] = {t.name.lower(): t for t in ItemType if t.is_integer}


def _check_key(key: str) -> None:
    raw = key.encode("utf-8")
    if not raw:
        raise NvsError(EspErr.ESP_ERR_NVS_INVALID_NAME, "empty key")
    if len(raw) > KEY_MAX_LENGTH:
        raise NvsError(
            EspErr.ESP_ERR_NVS_KEY_TOO_LONG, f"{key!r} is longer than {KEY_MAX_LENGTH} bytes"
        )


def read_security_cfg(keys_partition: EspPartition) -> NvsKeys:
    """``nvs_flash_read_security_cfg``: the XTS keys stored in an nvs_keys partition."""
    try:
        return NvsKeys.from_bytes(keys_partition.read(0, 68))
    except NvsKeysError as err:
        code = (
            EspErr.ESP_ERR_NVS_KEYS_NOT_INITIALIZED
            if err.blank
            else EspErr.ESP_ERR_NVS_CORRUPT_KEY_PART
        )
        raise NvsError(code, str(err)) from None


def generate_keys(keys_partition: EspPartition) -> NvsKeys:
    """``nvs_flash_generate_keys``: new random keys, written to the nvs_keys partition."""
    keys = NvsKeys(secrets.token_bytes(32), secrets.token_bytes(32))
    keys_partition.erase_range(0, keys_partition.size)
    keys_partition.write(0, keys.to_bytes()[:80])
    return keys


class NvsHandle:
    """An open namespace (``nvs_handle_t``). Usable as a context manager."""

    __slots__ = ("_open", "_storage", "mode", "namespace", "ns_index")

    def __init__(self, storage: Storage, namespace: str, ns_index: int, mode: OpenMode) -> None:
        self._storage = storage
        self.namespace = namespace
        self.ns_index = ns_index
        self.mode = mode
        self._open = True

    def __enter__(self) -> NvsHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """``nvs_close``."""
        self._open = False

    def _usable(self, *, write: bool) -> Storage:
        if not self._open:
            raise NvsError(EspErr.ESP_ERR_NVS_INVALID_HANDLE, "the handle is closed")
        if write and self.mode is OpenMode.READONLY:
            raise NvsError(
                EspErr.ESP_ERR_NVS_READ_ONLY, f"namespace {self.namespace!r} was opened read-only"
            )
        return self._storage

    # -- integers ----------------------------------------------------------------------------
    def _set_int(self, kind: str, key: str, value: int) -> None:
        storage = self._usable(write=True)
        _check_key(key)
        item_type = _INT_TYPES[kind]
        try:
            data = pack_integer(item_type, value)
        except InputError:
            raise NvsError(
                EspErr.ESP_ERR_INVALID_ARG, f"{value} does not fit nvs_set_{kind}"
            ) from None
        storage.write_item(self.ns_index, item_type, key, data)

    def _get_int(self, kind: str, key: str) -> int:
        storage = self._usable(write=False)
        _check_key(key)
        item_type = _INT_TYPES[kind]
        return unpack_integer(item_type, storage.read_item(self.ns_index, item_type, key))

    def set_u8(self, key: str, value: int) -> None:
        self._set_int("u8", key, value)

    def set_i8(self, key: str, value: int) -> None:
        self._set_int("i8", key, value)

    def set_u16(self, key: str, value: int) -> None:
        self._set_int("u16", key, value)

    def set_i16(self, key: str, value: int) -> None:
        self._set_int("i16", key, value)

    def set_u32(self, key: str, value: int) -> None:
        self._set_int("u32", key, value)

    def set_i32(self, key: str, value: int) -> None:
        self._set_int("i32", key, value)

    def set_u64(self, key: str, value: int) -> None:
        self._set_int("u64", key, value)

    def set_i64(self, key: str, value: int) -> None:
        self._set_int("i64", key, value)

    def get_u8(self, key: str) -> int:
        return self._get_int("u8", key)

    def get_i8(self, key: str) -> int:
        return self._get_int("i8", key)

    def get_u16(self, key: str) -> int:
        return self._get_int("u16", key)

    def get_i16(self, key: str) -> int:
        return self._get_int("i16", key)

    def get_u32(self, key: str) -> int:
        return self._get_int("u32", key)

    def get_i32(self, key: str) -> int:
        return self._get_int("i32", key)

    def get_u64(self, key: str) -> int:
        return self._get_int("u64", key)

    def get_i64(self, key: str) -> int:
        return self._get_int("i64", key)

    # -- strings and blobs -------------------------------------------------------------------
    def set_str(self, key: str, value: str) -> None:
        """``nvs_set_str``: UTF-8 plus NUL, at most 4000 bytes, in one page."""
        storage = self._usable(write=True)
        _check_key(key)
        raw = value.encode("utf-8")
        if b"\x00" in raw:
            raise NvsError(EspErr.ESP_ERR_INVALID_ARG, "an NVS string cannot contain NUL")
        storage.write_item(self.ns_index, ItemType.SZ, key, raw + b"\x00")

    def get_str(self, key: str, length: int | None = None) -> str:
        """``nvs_get_str``; ``length`` (with NUL) too small -> ESP_ERR_NVS_INVALID_LENGTH."""
        storage = self._usable(write=False)
        _check_key(key)
        raw = storage.read_item(self.ns_index, ItemType.SZ, key)
        if length is not None and length < len(raw):
            raise NvsError(
                EspErr.ESP_ERR_NVS_INVALID_LENGTH, f"{key!r} needs {len(raw)} bytes, not {length}"
            )
        return raw[:-1].decode("utf-8", "replace")

    def set_blob(self, key: str, value: bytes) -> None:
        """``nvs_set_blob``: stored as a multi-page blob (BLOB_DATA chunks + BLOB_IDX)."""
        storage = self._usable(write=True)
        _check_key(key)
        storage.write_item(self.ns_index, ItemType.BLOB, key, bytes(value))

    def get_blob(self, key: str, length: int | None = None) -> bytes:
        """``nvs_get_blob``; ``length`` too small -> ESP_ERR_NVS_INVALID_LENGTH."""
        storage = self._usable(write=False)
        _check_key(key)
        raw = storage.read_item(self.ns_index, ItemType.BLOB, key)
        if length is not None and length < len(raw):
            raise NvsError(
                EspErr.ESP_ERR_NVS_INVALID_LENGTH, f"{key!r} needs {len(raw)} bytes, not {length}"
            )
        return raw

    # -- the rest ------------------------------------------------------------------------------
    def find_key(self, key: str) -> NvsType:
        """``nvs_find_key``: the type stored under ``key``."""
        storage = self._usable(write=False)
        _check_key(key)
        found = storage.find_key(self.ns_index, key)
        if found in (ItemType.BLOB_DATA, ItemType.BLOB_IDX, ItemType.BLOB):
            return NvsType.BLOB
        return NvsType(found)

    def erase_key(self, key: str) -> None:
        """``nvs_erase_key``."""
        storage = self._usable(write=True)
        _check_key(key)
        storage.erase_item(self.ns_index, ItemType.ANY, key)

    def erase_all(self) -> None:
        """``nvs_erase_all``: every key of this namespace."""
        self._usable(write=True).erase_namespace(self.ns_index)

    def commit(self) -> None:
        """``nvs_commit``: writes are already on flash; checks the handle like ESP-IDF."""
        self._usable(write=True)

    def get_used_entry_count(self) -> int:
        """``nvs_get_used_entry_count``: entries taken by this namespace's items."""
        return self._usable(write=False).used_entries_in(self.ns_index)


class NvsFlash:
    """The initialised NVS partitions of one device (``nvs_flash_init`` and friends).

    ``encryption`` is ``CONFIG_NVS_ENCRYPTION`` with the flash-encryption scheme: the default
    partition is then initialised with the keys of the nvs_keys partition (made on first use),
    as ``nvs_flash_init`` does in such a build.
    """

    __slots__ = ("_partitions", "_storages", "encryption", "log")

    def __init__(
        self, partitions: PartitionMap, *, encryption: bool = False, log: EspLog | None = None
    ) -> None:
        self._partitions = partitions
        self._storages: dict[str, Storage] = {}
        self.encryption = encryption
        self.log = log

    def security_cfg(self) -> NvsKeys | None:
        """The keys in the nvs_keys partition, or None (no partition, or blank/corrupt)."""
        found = self._partitions.find(type=PartitionType.DATA, subtype=NVS_KEYS_SUBTYPE)
        if not found:
            return None
        try:
            return read_security_cfg(found[0])
        except NvsError:
            return None

    def _partition(self, label: str) -> EspPartition:
        found = self._partitions.find(type=PartitionType.DATA, label=label)
        if not found:
            raise NvsError(
                EspErr.ESP_ERR_NVS_PART_NOT_FOUND, f"no data partition labelled {label!r}"
            )
        return found[0]

    def init(
        self,
        label: str = NVS_DEFAULT_PART_NAME,
        *,
        keys: NvsKeys | None = None,
        read_only: bool = False,
    ) -> None:
        """``nvs_flash_init_partition`` (``keys``: ``nvs_flash_secure_init_partition``;
        ``read_only``: as for a partition flagged ``readonly``, nothing is ever written, not
        even a repair). The default partition of an NVS-encryption build is encrypted."""
        if label in self._storages:
            return
        if self.encryption and label == NVS_DEFAULT_PART_NAME and keys is None:
            self.secure_init(label)
            if self.log is not None:
                self.log.i("nvs", f'NVS partition "{label}" is encrypted.')
            return
        partition = self._partition(label)
        if read_only and not partition.readonly:
            partition = EspPartition(partition.flash, replace(partition.entry, readonly=True))
        if partition.encrypted:
            raise NvsError(
                EspErr.ESP_ERR_NVS_WRONG_ENCRYPTION,
                f"partition {label!r} carries the 'encrypted' flag; NVS encrypts its entries "
                "itself: remove the flag and use NVS encryption",
            )
        view = NvsPartition(partition) if keys is None else EncryptedNvsPartition(partition, keys)
        storage = Storage(view)
        storage.init()
        self._storages[label] = storage

    def secure_init(
        self, label: str = NVS_DEFAULT_PART_NAME, keys_label: str | None = None
    ) -> None:
        """``nvs_flash_init`` with NVS encryption: keys from the nvs_keys partition.

        A blank key partition gets new keys, as on a device's first boot.
        """
        if keys_label is None:
            found = self._partitions.find(type=PartitionType.DATA, subtype=NVS_KEYS_SUBTYPE)
            if not found:
                raise NvsError(EspErr.ESP_ERR_NVS_XTS_CFG_NOT_FOUND, "no nvs_keys partition")
            keys_partition = found[0]
        else:
            keys_partition = self._partition(keys_label)
        try:
            keys = read_security_cfg(keys_partition)
        except NvsError as err:
            if err.code is not EspErr.ESP_ERR_NVS_KEYS_NOT_INITIALIZED:
                raise
            if self.log is not None:
                self.log.w(
                    "nvs",
                    f"Failed to read NVS security cfg: [0x{err.code.value:02X}] ({err.code.name})",
                )
                self.log.i("nvs", "Generating NVS encr-keys...")
            keys = generate_keys(keys_partition)
        self.init(label, keys=keys)

    def deinit(self, label: str = NVS_DEFAULT_PART_NAME) -> None:
        """``nvs_flash_deinit_partition``."""
        if self._storages.pop(label, None) is None:
            raise NvsError(EspErr.ESP_ERR_NVS_NOT_INITIALIZED, f"{label!r} is not initialised")

    def erase(self, label: str = NVS_DEFAULT_PART_NAME) -> None:
        """``nvs_flash_erase_partition``: deinit if needed, then erase every sector."""
        partition = self._partition(label)
        self._storages.pop(label, None)
        partition.erase()

    def storage(self, label: str = NVS_DEFAULT_PART_NAME) -> Storage:
        storage = self._storages.get(label)
        if storage is None:
            raise NvsError(
                EspErr.ESP_ERR_NVS_NOT_INITIALIZED,
                f"NVS partition {label!r} is not initialised: call init() first",
            )
        return storage

    def open(
        self,
        namespace: str,
        mode: OpenMode = OpenMode.READWRITE,
        partition: str = NVS_DEFAULT_PART_NAME,
    ) -> NvsHandle:
        """``nvs_open_from_partition``; READWRITE creates the namespace if needed."""
        storage = self.storage(partition)
        _check_key(namespace)
        if mode is OpenMode.READWRITE and storage.readonly:
            raise NvsError(
                EspErr.ESP_ERR_NOT_ALLOWED, f"partition {partition!r} is read-only: open READONLY"
            )
        index = storage.namespace_index(namespace, create=mode is OpenMode.READWRITE)
        return NvsHandle(storage, namespace, index, mode)

    def get_stats(self, partition: str = NVS_DEFAULT_PART_NAME) -> StorageStats:
        """``nvs_get_stats``."""
        return self.storage(partition).stats()

    def entries(
        self,
        partition: str = NVS_DEFAULT_PART_NAME,
        namespace: str | None = None,
        type: NvsType = NvsType.ANY,
    ) -> Iterator[EntryInfo]:
        """``nvs_entry_find`` / ``nvs_entry_next`` / ``nvs_entry_info``.

        As ``Storage::nextEntry`` (``isIterableItem``, ``isMultipageBlob``): old-format BLOB
        and BLOB_IDX items are not listed; a multi-page blob is listed once, through its
        first data chunk (chunk index 0x00 or 0x80), as NVS_TYPE_BLOB."""
        storage = self.storage(partition)
        names = {index: key for key, index in storage.namespaces.items()}
        wanted = NS_ANY
        if namespace is not None:
            try:
                wanted = storage.namespace_index(namespace, create=False)
            except NvsError:
                return
        for item in storage.items():
            if item.ns_index == 0 or item.type in (ItemType.BLOB, ItemType.BLOB_IDX):
                continue
            if item.type == ItemType.BLOB_DATA and item.chunk_index not in FIRST_CHUNKS:
                continue
            if wanted not in (NS_ANY, item.ns_index):
                continue
            kind = NvsType(item.type)  # BLOB_DATA is NVS_TYPE_BLOB (0x42)
            if type is not NvsType.ANY and kind is not type:
                continue
            ns_name = names.get(item.ns_index, b"").split(b"\x00", 1)[0].decode("utf-8", "replace")
            yield EntryInfo(ns_name, item.key_name, kind)
