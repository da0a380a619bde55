"""Read an NVS image without the runtime: pages, entries, namespaces, values, integrity.

The host-side counterpart of ESP-IDF's ``nvs_tool.py`` (which is not published as a package).
It never repairs anything; it reports. Encrypted images are decrypted first
(:func:`jumpstart.formats.nvs.decrypt_image`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from jumpstart.errors import InputError
from jumpstart.formats.crc import crc32_le
from jumpstart.formats.nvs import (
    BITMAP_OFFSET,
    BITMAP_SIZE,
    CHUNK_ANY,
    ENTRY_COUNT,
    ENTRY_SIZE,
    NS_INDEX,
    PAGE_SIZE,
    EntryState,
    Item,
    ItemType,
    PageHeader,
    PageState,
    entry_offset,
    entry_state,
)

__all__ = ["ParsedItem", "ParsedNvs", "ParsedPage", "parse_image"]

Value = int | str | bytes
_Chunks = dict[tuple[int, bytes, int], bytes]  # (namespace, key, chunk index) -> payload


@dataclass(frozen=True, slots=True)
class ParsedItem:
    """A written item header and its payload (for variable-length items)."""

    sector: int
    index: int
    item: Item
    payload: bytes = b""

    @property
    def payload_ok(self) -> bool:
        return crc32_le(self.payload) == self.item.data_crc


@dataclass(frozen=True, slots=True)
class ParsedPage:
    sector: int
    state: str
    seq: int | None
    version: int | None
    header_crc_ok: bool
    states: tuple[EntryState, ...]
    items: tuple[ParsedItem, ...]

    @property
    def counts(self) -> dict[str, int]:
        return {s.name.lower(): self.states.count(s) for s in EntryState}


def _chunks(written: list[ParsedItem]) -> _Chunks:
    """Every BLOB_DATA payload by namespace, key and chunk index (later ones win)."""
    return {
        (c.item.ns_index, c.item.key, c.item.chunk_index): c.payload
        for c in written
        if c.item.type == ItemType.BLOB_DATA
    }


@dataclass(slots=True)
class ParsedNvs:
    """Everything read from an image, in page sequence order."""

    pages: list[ParsedPage]
    namespaces: dict[int, str] = field(default_factory=dict)

    def written(self) -> list[ParsedItem]:
        ordered = sorted(
            (p for p in self.pages if p.seq is not None), key=lambda p: (p.seq, p.sector)
        )
        return [item for page in ordered for item in page.items]

    def values(self) -> dict[tuple[str, str], Value]:
        """Current value of every key, later writes winning, blobs reassembled."""
        written = self.written()
        chunks = _chunks(written)
        result: dict[tuple[str, str], Value] = {}
        for parsed in written:
            item = parsed.item
            if item.ns_index == NS_INDEX or item.type == ItemType.BLOB_DATA:
                continue
            name = (self.namespaces.get(item.ns_index, f"#{item.ns_index}"), item.key_name)
            value = self._value_of(parsed, chunks)
            if value is not None:
                result[name] = value
        return result

    def _value_of(self, parsed: ParsedItem, chunks: _Chunks) -> Value | None:
        item = parsed.item
        kind = item.item_type
        if kind is None:
            return None
        if kind.is_integer:
            return item.integer_value
        if kind is ItemType.SZ:
            return parsed.payload[:-1].decode("utf-8", "replace")
        if kind is ItemType.BLOB:
            return parsed.payload
        if kind is ItemType.BLOB_IDX:
            first = item.chunk_start
            parts = [
                chunks.get((item.ns_index, item.key, first + n)) for n in range(item.chunk_count)
            ]
            if any(p is None for p in parts):
                return None
            return b"".join(p for p in parts if p is not None)
        return None

    def problems(self) -> list[str]:
        """The integrity check: what ESP-IDF would repair, reject or lose."""
        found: list[str] = []
        if len(self.pages) < 3:
            found.append(f"{len(self.pages)} pages: read/write NVS needs at least 3")
        if not any(p.state in ("UNINITIALIZED", "CORRUPT") for p in self.pages):
            found.append("no free page: nvs_flash_init fails with ESP_ERR_NVS_NO_FREE_PAGES")
        seen: dict[tuple[int, bytes, int], tuple[int, int]] = {}
        for page in self.pages:
            if not page.header_crc_ok:
                found.append(f"page {page.sector}: header CRC mismatch")
            if page.state == "CORRUPT":
                found.append(f"page {page.sector}: corrupt")
            for parsed in page.items:
                item, where = parsed.item, f"page {page.sector} entry {parsed.index}"
                if not item.is_consistent(parsed.index):
                    found.append(f"{where}: inconsistent item header {item.key_name!r}")
                    continue
                kind = item.item_type
                if kind is not None and kind.is_variable_length and not parsed.payload_ok:
                    found.append(f"{where}: data CRC mismatch for {item.key_name!r}")
                if item.ns_index != NS_INDEX and item.ns_index not in self.namespaces:
                    found.append(f"{where}: {item.key_name!r} in undefined namespace")
                identity = (item.ns_index, item.key, item.chunk_index)
                if identity in seen:
                    found.append(f"{where}: duplicate of {item.key_name!r} at {seen[identity]}")
                seen[identity] = (page.sector, parsed.index)
        written = self.written()
        chunks = _chunks(written)
        for parsed in written:
            item = parsed.item
            if item.type == ItemType.BLOB_IDX and self._value_of(parsed, chunks) is None:
                found.append(f"blob {item.key_name!r}: chunks missing")
        return found

    def to_json(self) -> dict[str, Any]:
        def jsonable(value: Value) -> Any:
            if isinstance(value, bytes):
                return {"base64": base64.b64encode(value).decode()}
            return value

        return {
            "pages": [
                {
                    "sector": p.sector,
                    "state": p.state,
                    "seq": p.seq,
                    "version": p.version,
                    "entries": p.counts,
                }
                for p in self.pages
            ],
            "namespaces": {str(k): v for k, v in sorted(self.namespaces.items())},
            "values": [
                {"namespace": ns, "key": key, "value": jsonable(value)}
                for (ns, key), value in self.values().items()
            ],
        }


def _parse_page(sector: int, raw: bytes) -> ParsedPage:
    header = PageHeader.from_bytes(raw)
    if header.state == PageState.UNINITIALIZED:
        state = "UNINITIALIZED" if raw == b"\xff" * PAGE_SIZE else "CORRUPT"
        blank = (EntryState.EMPTY,) * ENTRY_COUNT
        return ParsedPage(sector, state, None, None, True, blank, ())
    bitmap = raw[BITMAP_OFFSET : BITMAP_OFFSET + BITMAP_SIZE]
    states = tuple(entry_state(bitmap, i) for i in range(ENTRY_COUNT))
    known = {s.value: s.name for s in PageState}
    state = known.get(header.state, "CORRUPT")
    if not header.crc_ok:
        return ParsedPage(sector, "CORRUPT", None, header.version, False, states, ())
    items: list[ParsedItem] = []
    index = 0
    while index < ENTRY_COUNT:
        if states[index] is not EntryState.WRITTEN:
            index += 1
            continue
        at = entry_offset(index)
        item = Item.from_bytes(raw[at : at + ENTRY_SIZE])
        span = item.span if 1 <= item.span <= ENTRY_COUNT - index else 1
        payload = b""
        kind = item.item_type
        if kind is not None and kind.is_variable_length and span > 1:
            body = raw[at + ENTRY_SIZE : at + span * ENTRY_SIZE]
            payload = body[: item.data_size]
        items.append(ParsedItem(sector, index, item, payload))
        index += span
    return ParsedPage(sector, state, header.seq, header.version, True, states, tuple(items))


def parse_image(image: bytes) -> ParsedNvs:
    """Parse a plain (decrypted) NVS image of whole pages."""
    if not image or len(image) % PAGE_SIZE:
        raise InputError(f"an NVS image is whole 4096-byte pages, got {len(image)} bytes")
    pages = [
        _parse_page(n, image[n * PAGE_SIZE : (n + 1) * PAGE_SIZE])
        for n in range(len(image) // PAGE_SIZE)
    ]
    parsed = ParsedNvs(pages)
    for item in parsed.written():
        if (
            item.item.ns_index == NS_INDEX
            and item.item.type == ItemType.U8
            and item.item.chunk_index == CHUNK_ANY
        ):
            parsed.namespaces[item.item.data[0]] = item.item.key_name
    return parsed
