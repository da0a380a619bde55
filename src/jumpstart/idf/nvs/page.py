"""One NVS page on flash: loading with repair, item writes, lookups and erases (``nvs_page.cpp``).

Page states only move forward by clearing bits::

    UNINITIALIZED --first write--> ACTIVE --markFull--> FULL --markFreeing--> FREEING
          ^                           |                                       |
          +------------------------ erase (sector) <--------------------------+

A header that fails its CRC, or a blank state word over a non-blank sector, makes the page
CORRUPT: it is kept as it is and erased only when it is next activated.

Write order (spec 1.8), which is what a power cut can interrupt: the header entry, then its
bitmap bits; the full payload entries in one write, then their bits (highest word first); then
the 0xFF-padded tail entry and its bits. Loading repairs each step (spec 1.10): bytes written
after the first EMPTY entry are marked ERASED, items whose span is not fully WRITTEN are erased,
inconsistent headers are erased, and of two items with the same namespace, key and chunk on one
page the older is erased.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from jumpstart.formats.crc import crc32_le
from jumpstart.formats.nvs import (
    BITMAP_OFFSET,
    BITMAP_SIZE,
    CHUNK_ANY,
    CHUNK_MAX_SIZE,
    ENTRY_COUNT,
    ENTRY_SIZE,
    HEADER_SIZE,
    NS_ANY,
    PAGE_SIZE,
    EntryState,
    FormatVersion,
    Item,
    ItemType,
    PageHeader,
    PageState,
    bitmap_word_offset,
    entry_offset,
    entry_state,
    entry_states,
    payload_entries,
    span_for,
)
from jumpstart.formats.nvs import (
    bitmap_set as _bitmap_set,
)
from jumpstart.idf.esp_err import EspErr
from jumpstart.idf.nvs.errors import NvsError
from jumpstart.idf.nvs.partition import NvsPartition

__all__ = ["VER_ANY", "NvsPage"]

VER_ANY = 0xFF  # VerOffset::VER_ANY: a BLOB_IDX of either version
_BLANK_WORD = b"\xff\xff\xff\xff"
_VARIABLE = (ItemType.SZ, ItemType.BLOB, ItemType.BLOB_DATA)


class NvsPage:
    """A 4 KiB page of an NVS partition, with its entry table cached in memory."""

    __slots__ = (
        "_bitmap",
        "base",
        "erased_count",
        "items",
        "next_free",
        "partition",
        "sector",
        "seq",
        "state",
        "used_count",
        "version",
    )

    def __init__(self, partition: NvsPartition, sector: int) -> None:
        self.partition = partition
        self.sector = sector
        self.base = sector * PAGE_SIZE
        self.state = PageState.INVALID
        self.seq = 0
        self.version: int = FormatVersion.V2
        self._reset()

    def _reset(self) -> None:
        self._bitmap = bytearray(b"\xff" * BITMAP_SIZE)
        self.items: dict[int, Item] = {}  # header entry index -> item, in index order
        self.next_free = 0
        self.used_count = 0
        self.erased_count = 0

    def __repr__(self) -> str:
        return f"NvsPage(sector={self.sector}, {self.state.name}, seq={self.seq})"

    # -- loading ---------------------------------------------------------------------------
    def load(self, *, repair: bool = True) -> None:
        """``Page::load``; ``repair=False`` reads without writing (read-only partitions)."""
        self._reset()
        raw = self.partition.read_raw(self.base, HEADER_SIZE)
        (state,) = struct.unpack_from("<I", raw)
        if state == PageState.UNINITIALIZED:
            blank = self.partition.read_raw(self.base, PAGE_SIZE) == b"\xff" * PAGE_SIZE
            self.state = PageState.UNINITIALIZED if blank else PageState.CORRUPT
            return
        header = PageHeader.from_bytes(raw)
        if not header.crc_ok:
            self.state = PageState.CORRUPT
            return
        if header.version < FormatVersion.V2:
            raise NvsError(
                EspErr.ESP_ERR_NVS_NEW_VERSION_FOUND,
                f"page {self.sector} of '{self.partition.label}' has format version "
                f"0x{header.version:02x}, newer than 0xfe: erase the partition to use it",
            )
        self.seq = header.seq
        self.version = header.version
        if state not in (PageState.ACTIVE, PageState.FULL, PageState.FREEING):
            self.state = PageState.CORRUPT
            return
        self.state = PageState(state)
        self._load_entry_table(repair)

    def _load_entry_table(self, repair: bool) -> None:
        self._bitmap = bytearray(self.partition.read_raw(self.base + BITMAP_OFFSET, BITMAP_SIZE))
        end = ENTRY_COUNT
        if self.state is PageState.ACTIVE:
            states = entry_states(self._bitmap, ENTRY_COUNT)
            self.next_free = (
                states.index(EntryState.EMPTY) if EntryState.EMPTY in states else ENTRY_COUNT
            )
            # An entry written just before power was lost has no bitmap bits yet.
            while self.next_free < ENTRY_COUNT:
                at = self.base + entry_offset(self.next_free)
                if self.partition.read_raw(at, 4) == _BLANK_WORD:
                    break
                if repair:
                    self._alter_state(self.next_free, EntryState.ERASED)
                self.next_free += 1
            end = self.next_free
        else:
            self.next_free = ENTRY_COUNT
        index = 0
        while index < end:
            state = self.entry_state(index)
            if state is EntryState.ILLEGAL and repair:
                self._alter_state(index, EntryState.ERASED)
            if state is not EntryState.WRITTEN:
                index += 1
                continue
            item = self._read_item(index)
            if not item.is_consistent(index):
                if repair:
                    self._alter_state(index, EntryState.ERASED)
                index += 1
                continue
            span = item.span
            if any(
                self.entry_state(j) is not EntryState.WRITTEN for j in range(index, index + span)
            ):
                if repair:
                    self._alter_range(index, index + span, EntryState.ERASED)
                # the span may reach past the first EMPTY entry (an unwritten tail entry)
                self.next_free = max(self.next_free, min(index + span, ENTRY_COUNT))
                index += span
                continue
            duplicate = self._find_identity(item)
            self.items[index] = item
            if duplicate is not None and repair:
                self.erase_entry_and_span(duplicate)
            index += span
        self._count()

    def _count(self) -> None:
        states = entry_states(self._bitmap, ENTRY_COUNT)
        self.used_count = states.count(EntryState.WRITTEN)
        self.erased_count = states.count(EntryState.ERASED) + states.count(EntryState.ILLEGAL)

    def _find_identity(self, item: Item) -> int | None:
        for index, other in self.items.items():
            if (
                other.ns_index == item.ns_index
                and other.key == item.key
                and other.chunk_index == item.chunk_index
            ):
                return index
        return None

    # -- raw entry access ------------------------------------------------------------------
    def entry_state(self, index: int) -> EntryState:
        return entry_state(self._bitmap, index)

    def _read_item(self, index: int) -> Item:
        return Item.from_bytes(self.partition.read(self.base + entry_offset(index), ENTRY_SIZE))

    def _alter_state(self, index: int, state: EntryState) -> None:
        _bitmap_set(self._bitmap, index, state)
        word = bitmap_word_offset(index)
        self.partition.write_raw(self.base + word, bytes(self._bitmap[word - 32 : word - 28]))

    def _alter_range(self, begin: int, end: int, state: EntryState) -> None:
        # Page::alterEntryRangeState: highest entry first, one 4-byte write per bitmap word.
        for index in range(end - 1, begin - 1, -1):
            _bitmap_set(self._bitmap, index, state)
            if index == begin or (index - 1) // 16 != index // 16:
                word = bitmap_word_offset(index)
                self.partition.write_raw(
                    self.base + word, bytes(self._bitmap[word - 32 : word - 28])
                )

    def _write_entry(self, raw: bytes) -> None:
        self.partition.write(self.base + entry_offset(self.next_free), raw)
        self._alter_state(self.next_free, EntryState.WRITTEN)
        self.used_count += 1
        self.next_free += 1

    def _write_entries(self, raw: bytes) -> None:
        count = len(raw) // ENTRY_SIZE
        self.partition.write(self.base + entry_offset(self.next_free), raw)
        self._alter_range(self.next_free, self.next_free + count, EntryState.WRITTEN)
        self.used_count += count
        self.next_free += count

    # -- state changes ---------------------------------------------------------------------
    def _alter_page_state(self, state: PageState) -> None:
        self.partition.write_raw(self.base, PageHeader.state_only(state))
        self.state = state

    def initialize(self) -> None:
        """Write the header of a blank page: it becomes ACTIVE."""
        header = PageHeader(PageState.ACTIVE, self.seq, FormatVersion.V2)
        self.partition.write_raw(self.base, header.to_bytes())
        self.version = FormatVersion.V2
        self.state = PageState.ACTIVE

    def mark_full(self) -> None:
        if self.state is not PageState.ACTIVE:
            raise NvsError(EspErr.ESP_ERR_NVS_INVALID_STATE, f"{self!r} cannot become FULL")
        self._alter_page_state(PageState.FULL)

    def mark_freeing(self) -> None:
        if self.state not in (PageState.ACTIVE, PageState.FULL):
            raise NvsError(EspErr.ESP_ERR_NVS_INVALID_STATE, f"{self!r} cannot become FREEING")
        self._alter_page_state(PageState.FREEING)

    def erase(self) -> None:
        """Erase the sector; the page is blank (UNINITIALIZED) again."""
        self.partition.erase_range(self.base, PAGE_SIZE)
        self.state = PageState.UNINITIALIZED
        self._reset()

    # -- items -----------------------------------------------------------------------------
    @property
    def var_data_tailroom(self) -> int:
        """Payload bytes a variable-length item could still take on this page."""
        if self.state is PageState.FULL or self.next_free >= ENTRY_COUNT - 1:
            return 0
        return (ENTRY_COUNT - self.next_free - 1) * ENTRY_SIZE

    def write_item(
        self, ns_index: int, type: ItemType, key: str, data: bytes, chunk_index: int = CHUNK_ANY
    ) -> None:
        """``Page::writeItem``: ``data`` is the 8-byte union or a variable-length payload."""
        if self.state is PageState.INVALID:
            raise NvsError(EspErr.ESP_ERR_NVS_INVALID_STATE, f"{self!r} is not loaded")
        if self.state is PageState.UNINITIALIZED:
            self.initialize()
        if self.state is PageState.FULL:
            raise NvsError(EspErr.ESP_ERR_NVS_PAGE_FULL)
        variable = type in _VARIABLE
        if variable and len(data) > CHUNK_MAX_SIZE:
            raise NvsError(
                EspErr.ESP_ERR_NVS_VALUE_TOO_LONG,
                f"{len(data)} bytes for {key!r}; one item holds at most {CHUNK_MAX_SIZE}",
            )
        span = span_for(len(data)) if variable else 1
        if self.next_free + span > ENTRY_COUNT:
            raise NvsError(EspErr.ESP_ERR_NVS_PAGE_FULL)
        if variable:
            item = Item.variable(ns_index, type, key, data, chunk_index)
        else:
            item = Item(ns_index, type, 1, chunk_index, Item.key_field(key), data)
        item = Item.from_bytes(item.to_bytes())  # freeze the CRC as stored
        index = self.next_free
        self._write_entry(item.to_bytes())
        self.items[index] = item
        if variable:
            whole = len(data) // ENTRY_SIZE * ENTRY_SIZE
            if whole:
                self._write_entries(data[:whole])
            if len(data) > whole:
                self._write_entry(payload_entries(data[whole:]))

    def copy_items(self, other: NvsPage) -> None:
        """Copy every written item to ``other`` entry by entry (garbage collection).

        As ``Page::copyItems``: a page with no live entry copies nothing and writes nothing,
        not even ``other``'s header (it is written on ``other``'s first write)."""
        if not self.items:
            return
        if other.state is PageState.UNINITIALIZED:
            other.initialize()
        for index, item in list(self.items.items()):
            other.items[other.next_free] = item
            for j in range(index, index + item.span):
                raw = self.partition.read(self.base + entry_offset(j), ENTRY_SIZE)
                other._write_entry(raw)

    def matching(
        self,
        ns_index: int,
        type: ItemType,
        key: bytes | None,
        chunk_index: int = CHUNK_ANY,
        chunk_start: int = VER_ANY,
    ) -> Iterator[tuple[int, Item]]:
        """Written items that match, in entry order; NS_ANY, ANY, None, CHUNK_ANY match all."""
        for index, item in self.items.items():
            if ns_index not in (NS_ANY, item.ns_index):
                continue
            if type is not ItemType.ANY and item.type != type:
                continue
            if key is not None and item.key != key:
                continue
            if chunk_index not in (CHUNK_ANY, item.chunk_index):
                continue
            if type is ItemType.BLOB_IDX and chunk_start not in (VER_ANY, item.chunk_start):
                continue
            yield index, item

    def find_item(
        self,
        ns_index: int,
        type: ItemType,
        key: bytes | None,
        chunk_index: int = CHUNK_ANY,
        chunk_start: int = VER_ANY,
    ) -> tuple[int, Item] | None:
        """The first written item that matches; None if there is none."""
        return next(self.matching(ns_index, type, key, chunk_index, chunk_start), None)

    def read_payload(self, index: int, item: Item) -> bytes:
        """The payload of a variable-length item; a CRC mismatch erases it (NOT_FOUND)."""
        raw = self.partition.read(self.base + entry_offset(index + 1), (item.span - 1) * ENTRY_SIZE)
        payload = raw[: item.data_size]
        if crc32_le(payload) != item.data_crc:
            self.erase_entry_and_span(index)
            raise NvsError(
                EspErr.ESP_ERR_NVS_NOT_FOUND, f"payload of {item.key_name!r} fails its CRC"
            )
        return payload

    def erase_entry_and_span(self, index: int) -> None:
        """Mark an item and its payload entries ERASED."""
        span = 1
        if self.entry_state(index) is EntryState.WRITTEN:
            item = self.items.pop(index, None)
            if item is not None:
                span = item.span
        for j in range(index, index + span):
            if self.entry_state(j) is EntryState.WRITTEN:
                self.used_count -= 1
            if self.entry_state(j) is not EntryState.ERASED:
                self.erased_count += 1
        if span == 1:
            self._alter_state(index, EntryState.ERASED)
        else:
            self._alter_range(index, index + span, EntryState.ERASED)
        self.next_free = max(self.next_free, index + span)

    def erase_item(
        self,
        ns_index: int,
        type: ItemType,
        key: bytes | None,
        chunk_index: int = CHUNK_ANY,
        chunk_start: int = VER_ANY,
    ) -> bool:
        """Erase the first matching item; False if there was none."""
        found = self.find_item(ns_index, type, key, chunk_index, chunk_start)
        if found is None:
            return False
        self.erase_entry_and_span(found[0])
        return True
