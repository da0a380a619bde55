"""Namespaces, typed values and multi-page blobs over the pages (``nvs_storage.cpp``).

A value is replaced by writing the new item completely and only then erasing the old one, so
a power cut leaves the old value, or both (resolved on the next load). A blob is written as
BLOB_DATA chunks under a toggled ``chunkStart`` and closed by its BLOB_IDX; on load, indexes
whose chunks do not add up and chunks without an index are erased.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from jumpstart.formats.nvs import (
    CHUNK_ANY,
    CHUNK_MAX_SIZE,
    ENTRY_COUNT,
    ENTRY_SIZE,
    NS_ANY,
    NS_INDEX,
    NS_MAX,
    BlobVersion,
    Item,
    ItemType,
    PageState,
)
from jumpstart.idf.esp_err import EspErr
from jumpstart.idf.nvs.errors import NvsError
from jumpstart.idf.nvs.page import VER_ANY, NvsPage
from jumpstart.idf.nvs.page_manager import PageManager
from jumpstart.idf.nvs.partition import NvsPartition

__all__ = ["Storage", "StorageStats"]

# Storage::writeItem looks for an old value of another type in this order.
_OTHER_TYPES = (
    ItemType.U8,
    ItemType.U16,
    ItemType.U32,
    ItemType.U64,
    ItemType.I8,
    ItemType.I16,
    ItemType.I32,
    ItemType.I64,
    ItemType.SZ,
    ItemType.BLOB_IDX,
    ItemType.BLOB,
)
# writeMultiPageBlob: a first chunk smaller than a tenth of a page starts on a new page.
_MIN_FIRST_CHUNK = CHUNK_MAX_SIZE // 10
_MAX_BLOB_PAGES = (CHUNK_ANY - 1) // 2  # 127 chunks per blob version


def _chunk_range(chunk_start: int) -> range:
    if chunk_start == BlobVersion.VER_0:
        return range(BlobVersion.VER_0, BlobVersion.VER_1)
    if chunk_start == BlobVersion.VER_1:
        return range(BlobVersion.VER_1, VER_ANY)
    return range(0, VER_ANY)


@dataclass(frozen=True, slots=True)
class StorageStats:
    """``nvs_stats_t``."""

    used_entries: int
    free_entries: int
    available_entries: int
    total_entries: int
    namespace_count: int


@dataclass(frozen=True, slots=True)
class Found:
    page: NvsPage
    index: int
    item: Item


class Storage:
    """One initialised NVS partition."""

    __slots__ = ("_ns_used", "manager", "namespaces", "partition")

    def __init__(self, partition: NvsPartition) -> None:
        self.partition = partition
        self.manager = PageManager(partition)
        self.namespaces: dict[bytes, int] = {}
        self._ns_used: set[int] = set()

    @property
    def readonly(self) -> bool:
        return self.partition.readonly

    # -- init ------------------------------------------------------------------------------
    def init(self) -> None:
        """``Storage::init``: load pages, namespaces, and tidy up half-written blobs."""
        self.manager.load()
        self.namespaces = {}
        self._ns_used = {0, NS_ANY}
        for page in self.manager.pages:
            for item in page.items.values():
                if item.ns_index == NS_INDEX and item.type == ItemType.U8:
                    self.namespaces[item.key] = item.data[0]
                    self._ns_used.add(item.data[0])
        if not self.readonly:
            self._erase_broken_blobs()

    def _erase_broken_blobs(self) -> None:
        indexes = list(self._all(NS_ANY, ItemType.BLOB_IDX, None))
        chunks = list(self._all(NS_ANY, ItemType.BLOB_DATA, None))
        valid: list[Item] = []
        for found in indexes:
            idx = found.item
            family = _chunk_range(idx.chunk_start)
            mine = [
                c.item
                for c in chunks
                if c.item.key == idx.key
                and c.item.ns_index == idx.ns_index
                and c.item.chunk_index in family
            ]
            if sum(c.data_size for c in mine) != idx.data_size or len(mine) != idx.chunk_count:
                for page in self.manager.pages:
                    if page.erase_item(
                        idx.ns_index, ItemType.BLOB_IDX, idx.key, CHUNK_ANY, idx.chunk_start
                    ):
                        break
            else:
                valid.append(idx)
        for found in chunks:
            chunk = found.item
            owned = any(
                idx.key == chunk.key
                and idx.ns_index == chunk.ns_index
                and idx.chunk_start <= chunk.chunk_index < idx.chunk_start + idx.chunk_count
                for idx in valid
            )
            if not owned and found.page.items.get(found.index) is chunk:
                found.page.erase_entry_and_span(found.index)

    # -- lookups ---------------------------------------------------------------------------
    def _all(self, ns_index: int, type: ItemType, key: bytes | None) -> Iterator[Found]:
        # Listed first: callers erase what they are given while iterating.
        for page in list(self.manager.pages):
            for index, item in list(page.matching(ns_index, type, key)):
                yield Found(page, index, item)

    def find(
        self,
        ns_index: int,
        type: ItemType,
        key: bytes | None,
        chunk_index: int = CHUNK_ANY,
        chunk_start: int = VER_ANY,
    ) -> Found | None:
        """``Storage::findItem``: the first match, oldest page first."""
        for page in self.manager.pages:
            hit = page.find_item(ns_index, type, key, chunk_index, chunk_start)
            if hit is not None:
                return Found(page, hit[0], hit[1])
        return None

    def _require_writable(self) -> None:
        if self.readonly:
            raise NvsError(
                EspErr.ESP_ERR_NVS_READ_ONLY, f"partition '{self.partition.label}' is read-only"
            )

    # -- namespaces ------------------------------------------------------------------------
    def namespace_index(self, name: str, *, create: bool) -> int:
        """``createOrOpenNamespace``: the index of ``name``, created (lowest free) if asked."""
        key = Item.key_field(name)
        index = self.namespaces.get(key)
        if index is not None:
            return index
        if not create:
            raise NvsError(EspErr.ESP_ERR_NVS_NOT_FOUND, f"namespace {name!r} does not exist")
        free = next((n for n in range(1, NS_MAX + 1) if n not in self._ns_used), None)
        if free is None:
            raise NvsError(EspErr.ESP_ERR_NVS_NOT_ENOUGH_SPACE, "all 254 namespaces are in use")
        self.write_item(NS_INDEX, ItemType.U8, name, bytes([free]) + b"\xff" * 7)
        self.namespaces[key] = free
        self._ns_used.add(free)
        return free

    # -- writes ----------------------------------------------------------------------------
    def write_item(self, ns_index: int, type: ItemType, key: str, data: bytes) -> None:
        """``Storage::writeItem``: ``type`` BLOB means a multi-page blob."""
        self._require_writable()
        key_field = Item.key_field(key)
        matched = True
        lookup = ItemType.BLOB_IDX if type is ItemType.BLOB else type
        old = self.find(ns_index, lookup, key_field)
        if old is None:
            matched = False
            for other in _OTHER_TYPES:
                if other is lookup:
                    continue
                old = self.find(ns_index, other, key_field)
                if old is not None:
                    break
        if type is ItemType.BLOB:
            start = BlobVersion.VER_0
            if matched and old is not None:
                if self._blob_equals(ns_index, key_field, data):
                    return
                start = BlobVersion(old.item.chunk_start).toggled()
            self._write_multi_page_blob(ns_index, key, data, start)
        else:
            if matched and old is not None and self._item_equals(old, data):
                return
            page = self.manager.current
            try:
                page.write_item(ns_index, type, key, data)
            except NvsError as err:
                if err.code is not EspErr.ESP_ERR_NVS_PAGE_FULL:
                    raise
                if page.state is not PageState.FULL:
                    page.mark_full()
                self.manager.request_new_page()
                try:
                    self.manager.current.write_item(ns_index, type, key, data)
                except NvsError as again:
                    if again.code is EspErr.ESP_ERR_NVS_PAGE_FULL:
                        raise NvsError(
                            EspErr.ESP_ERR_NVS_NOT_ENOUGH_SPACE, f"no room for {key!r}"
                        ) from None
                    raise
        if old is None:
            return
        if old.item.type == ItemType.BLOB_IDX:
            self.erase_multi_page_blob(ns_index, key_field, old.item.chunk_start)
            return
        # The old page may have been collected meanwhile: find the old value again.
        stale = self.find(ns_index, ItemType(old.item.type), key_field)
        if stale is not None:
            stale.page.erase_entry_and_span(stale.index)

    def _item_equals(self, found: Found, data: bytes) -> bool:
        item = found.item
        if item.type in (ItemType.SZ, ItemType.BLOB):
            if item.data_size != len(data):
                return False
            try:
                return found.page.read_payload(found.index, item) == data
            except NvsError:
                return False
        return item.data == data

    def _blob_equals(self, ns_index: int, key: bytes, data: bytes) -> bool:
        index = self.find(ns_index, ItemType.BLOB_IDX, key)
        if index is None or index.item.data_size != len(data):
            return False
        offset = 0
        for n in range(index.item.chunk_count):
            chunk = self.find(ns_index, ItemType.BLOB_DATA, key, index.item.chunk_start + n)
            if chunk is None:
                return False
            size = chunk.item.data_size
            try:
                if chunk.page.read_payload(chunk.index, chunk.item) != data[offset : offset + size]:
                    return False
            except NvsError:
                return False
            offset += size
        return offset == len(data)

    def _write_multi_page_blob(
        self, ns_index: int, key: str, data: bytes, chunk_start: BlobVersion
    ) -> None:
        max_pages = min(self.manager.page_count - 1, _MAX_BLOB_PAGES)
        if len(data) > max_pages * CHUNK_MAX_SIZE:
            raise NvsError(
                EspErr.ESP_ERR_NVS_VALUE_TOO_LONG,
                f"blob {key!r} of {len(data)} bytes; this partition holds at most "
                f"{max_pages * CHUNK_MAX_SIZE}",
            )
        chunk_count, offset = 0, 0
        try:
            while True:
                page = self.manager.current
                tailroom = page.var_data_tailroom
                if (
                    chunk_count == 0
                    and (tailroom < len(data) or (tailroom == 0 and not data))
                    and tailroom < _MIN_FIRST_CHUNK
                ):
                    if page.state is not PageState.FULL:
                        page.mark_full()
                    self.manager.request_new_page()
                    if self.manager.current.var_data_tailroom == tailroom:
                        raise NvsError(EspErr.ESP_ERR_NVS_NOT_ENOUGH_SPACE, f"no room for {key!r}")
                    continue
                if not tailroom:
                    raise NvsError(EspErr.ESP_ERR_NVS_NOT_ENOUGH_SPACE, f"no room for {key!r}")
                chunk = data[offset : offset + tailroom]
                page.write_item(ns_index, ItemType.BLOB_DATA, key, chunk, chunk_start + chunk_count)
                chunk_count += 1
                offset += len(chunk)
                remaining = len(data) - offset
                if remaining or tailroom - len(chunk) < ENTRY_SIZE:
                    if page.state is not PageState.FULL:
                        page.mark_full()
                    self.manager.request_new_page()
                if not remaining:
                    index = Item.blob_index(ns_index, key, len(data), chunk_count, chunk_start)
                    self.manager.current.write_item(ns_index, ItemType.BLOB_IDX, key, index.data)
                    return
        except NvsError:
            key_field = Item.key_field(key)
            for n in range(chunk_count):
                found = self.find(ns_index, ItemType.BLOB_DATA, key_field, chunk_start + n)
                if found is not None:
                    found.page.erase_entry_and_span(found.index)
            raise

    # -- reads -----------------------------------------------------------------------------
    def read_item(self, ns_index: int, type: ItemType, key: str) -> bytes:
        """The stored 8-byte union, string payload or blob bytes; NOT_FOUND if absent."""
        key_field = Item.key_field(key)
        if type is ItemType.BLOB:
            blob = self._read_multi_page_blob(ns_index, key_field)
            if blob is not None:
                return blob
        found = self.find(ns_index, type, key_field)
        if found is None:
            raise NvsError(EspErr.ESP_ERR_NVS_NOT_FOUND, f"key {key!r} not found")
        if type in (ItemType.SZ, ItemType.BLOB):
            return found.page.read_payload(found.index, found.item)
        return found.item.data

    def _read_multi_page_blob(self, ns_index: int, key: bytes) -> bytes | None:
        index = self.find(ns_index, ItemType.BLOB_IDX, key)
        if index is None:
            return None
        size = index.item.data_size
        parts: list[bytes] = []
        got = 0
        broken = False
        for n in range(index.item.chunk_count):
            chunk = self.find(ns_index, ItemType.BLOB_DATA, key, index.item.chunk_start + n)
            if chunk is None or chunk.item.data_size > size - got:
                broken = True
                break
            part = chunk.page.read_payload(chunk.index, chunk.item)
            parts.append(part)
            got += len(part)
        if broken or got != size:
            if not self.readonly:
                self.erase_multi_page_blob(ns_index, key)
            return None
        return b"".join(parts)

    def data_size(self, ns_index: int, type: ItemType, key: str) -> int:
        """``getItemDataSize``."""
        key_field = Item.key_field(key)
        if type is ItemType.BLOB:
            index = self.find(ns_index, ItemType.BLOB_IDX, key_field)
            if index is not None:
                return index.item.data_size
        found = self.find(ns_index, type, key_field)
        if found is None:
            raise NvsError(EspErr.ESP_ERR_NVS_NOT_FOUND, f"key {key!r} not found")
        return found.item.data_size

    def find_key(self, ns_index: int, key: str) -> ItemType:
        """``nvs_find_key``: the type of the first item under ``key``."""
        found = self.find(ns_index, ItemType.ANY, Item.key_field(key))
        if found is None:
            raise NvsError(EspErr.ESP_ERR_NVS_NOT_FOUND, f"key {key!r} not found")
        return ItemType(found.item.type)

    # -- erases ----------------------------------------------------------------------------
    def erase_multi_page_blob(self, ns_index: int, key: bytes, chunk_start: int = VER_ANY) -> None:
        self._require_writable()
        index = self.find(ns_index, ItemType.BLOB_IDX, key, CHUNK_ANY, chunk_start)
        if index is None:
            raise NvsError(EspErr.ESP_ERR_NVS_NOT_FOUND, "blob not found")
        index.page.erase_entry_and_span(index.index)
        if chunk_start == VER_ANY:
            second = self.find(ns_index, ItemType.BLOB_IDX, key, CHUNK_ANY, chunk_start)
            if second is not None:
                second.page.erase_entry_and_span(second.index)
        family = _chunk_range(chunk_start)
        for found in list(self._all(ns_index, ItemType.BLOB_DATA, key)):
            if found.item.chunk_index in family:
                found.page.erase_entry_and_span(found.index)

    def erase_item(self, ns_index: int, type: ItemType, key: str) -> None:
        """``Storage::eraseItem``; ``type`` ANY erases whatever the key holds."""
        self._require_writable()
        key_field = Item.key_field(key)
        if type is ItemType.BLOB:
            self.erase_multi_page_blob(ns_index, key_field)
            return
        found = self.find(ns_index, type, key_field)
        if found is None:
            raise NvsError(EspErr.ESP_ERR_NVS_NOT_FOUND, f"key {key!r} not found")
        if found.item.type in (ItemType.BLOB_DATA, ItemType.BLOB_IDX):
            self.erase_multi_page_blob(ns_index, key_field)
            return
        found.page.erase_entry_and_span(found.index)

    def erase_namespace(self, ns_index: int) -> None:
        self._require_writable()
        for found in list(self._all(ns_index, ItemType.ANY, None)):
            found.page.erase_entry_and_span(found.index)

    # -- statistics and iteration ------------------------------------------------------------
    def used_entries_in(self, ns_index: int) -> int:
        return sum(f.item.span for f in self._all(ns_index, ItemType.ANY, None))

    def stats(self) -> StorageStats:
        """``nvs_get_stats``: one free page is reserved, so it is not *available*."""
        used = sum(
            p.used_count for p in self.manager.pages if p.state is not PageState.UNINITIALIZED
        )
        total = self.manager.page_count * ENTRY_COUNT
        free = total - used
        return StorageStats(
            used_entries=used,
            free_entries=free,
            available_entries=max(0, free - ENTRY_COUNT),
            total_entries=total,
            namespace_count=len(self.namespaces),
        )

    def items(self) -> Iterator[Item]:
        """Every written item header, oldest page first."""
        for found in self._all(NS_ANY, ItemType.ANY, None):
            yield found.item
