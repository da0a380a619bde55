"""NVS partition images from CSV, byte-identical to ``esp-idf-nvs-partition-gen`` 0.3.0.

The placement rules are the generator's, not the runtime library's (spec flash-formats.md 2.6):
a variable-length item that would exactly fill a page goes to the next page, and the first
chunk of a multi-page blob always takes the remaining tailroom, even when that is zero bytes.
Every page but the last written one is FULL, the last one ACTIVE; a read/write partition keeps
its last page blank in reserve and is padded to its size with blank pages, while a read-only
one (under 0x3000 bytes) holds only the pages written.

Deliberate differences from the generator, all on input it mishandles:

* bad input (key too long, value out of range, bad hex, a partition too small, a string the
  generator cannot place) is an :class:`~jumpstart.errors.InputError` with the CSV line, and the
  CLI never leaves a partial output file;
* keys named ``sta.ssid``/``sta.pswd``/``ap.*`` are written as given: the generator's extra
  Wi-Fi blobs (spec 2.2, "WiFi config write" quirk) are not added;
* data rows before the first namespace row and more than 254 namespaces are refused.
"""

from __future__ import annotations

import binascii
import csv
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from jumpstart.errors import InputError
from jumpstart.formats.nvs import (
    BITMAP_OFFSET,
    CHUNK_MAX_SIZE,
    ENTRY_COUNT,
    ENTRY_SIZE,
    KEY_MAX_LENGTH,
    NS_INDEX,
    NS_MAX,
    PAGE_SIZE,
    EntryCipher,
    FormatVersion,
    Item,
    ItemType,
    NvsKeys,
    PageHeader,
    PageState,
    entry_offset,
    payload_entries,
)

__all__ = [
    "CSV_FIELDS",
    "V1_MAX_VARIABLE_SIZE",
    "NvsImageBuilder",
    "NvsSize",
    "decode_value",
    "generate_partition",
    "parse_nvs_size",
]

CSV_FIELDS = ("key", "type", "encoding", "value")
# nvs_partition_gen Page.PAGE_PARAMS['max_blob_size']: v1 keeps every variable-length value in
# one page and limits it to 1984 bytes; v2 limits strings to CHUNK_MAX_SIZE.
V1_MAX_VARIABLE_SIZE = 1984
MIN_READ_WRITE_SIZE = 3 * PAGE_SIZE  # one page is kept in reserve for garbage collection

INTEGER_ENCODINGS: dict[str, ItemType] = {
    "u8": ItemType.U8,
    "i8": ItemType.I8,
    "u16": ItemType.U16,
    "i16": ItemType.I16,
    "u32": ItemType.U32,
    "i32": ItemType.I32,
    "u64": ItemType.U64,
    "i64": ItemType.I64,
}
BINARY_ENCODINGS = ("hex2bin", "base64", "binary")
_FILL_ENCODING = re.compile(r"(blob_fill|blob_sz_fill)\((\d+);(0x[0-9a-fA-F]{2})\)")


@dataclass(frozen=True, slots=True)
class NvsSize:
    """A partition size as the generator reads it."""

    size: int
    read_only: bool

    @property
    def usable(self) -> int:
        """Bytes of pages data may go to (a read/write partition keeps one page in reserve)."""
        return self.size if self.read_only else self.size - PAGE_SIZE


def parse_nvs_size(text: str | int) -> NvsSize:
    """Check a partition size: a multiple of 4096, at least 0x1000; below 0x3000 is read-only."""
    if isinstance(text, int):
        size = text
    else:
        try:
            size = int(text, 0)
        except ValueError:
            raise InputError(f"partition size {text!r} is not a number (use 0x6000)") from None
    if size % PAGE_SIZE:
        raise InputError(f"partition size 0x{size:x} must be a multiple of 4096")
    if size < PAGE_SIZE:
        raise InputError(
            "partition size must be at least 0x3000 bytes for read/write NVS "
            "and 0x1000 bytes for read-only NVS"
        )
    return NvsSize(size, read_only=size < MIN_READ_WRITE_SIZE)


class NvsImageBuilder:
    """Writes items the way nvs_partition_gen lays them out, in memory."""

    __slots__ = (
        "_bitmaps",
        "_budget",
        "_cipher",
        "_entry",
        "_namespaces",
        "_pages",
        "_placements",
        "size",
        "version",
    )

    def __init__(
        self,
        size: NvsSize,
        version: FormatVersion = FormatVersion.V2,
        keys: NvsKeys | None = None,
    ) -> None:
        self.size = size
        self.version = version
        self._cipher = EntryCipher(keys) if keys is not None else None
        self._pages: list[bytearray] = []
        # The state bitmap of each page as one 256-bit integer, all ones when blank; a WRITTEN
        # entry has the low bit of its pair cleared. Put into the page bytes in to_bytes().
        self._bitmaps: list[int] = []
        self._budget = size.usable
        self._entry = 0
        self._namespaces: dict[str, int] = {}
        # (partition offset, byte count) of every _put, when a template is being recorded.
        self._placements: list[tuple[int, int]] | None = None
        self._new_page()

    # -- pages ---------------------------------------------------------------------------
    def _new_page(self) -> None:
        if self._pages:
            current = self._pages[-1]
            if struct.unpack_from("<I", current)[0] == PageState.ACTIVE:
                current[0:4] = PageHeader.state_only(PageState.FULL)
        if self._budget == 0:
            raise InputError(
                f"the data does not fit in a 0x{self.size.size:x}-byte partition; increase the size"
            )
        self._budget -= PAGE_SIZE
        page = bytearray(b"\xff" * PAGE_SIZE)
        page[0:32] = PageHeader(PageState.ACTIVE, len(self._pages), self.version).to_bytes()
        self._pages.append(page)
        self._bitmaps.append((1 << 256) - 1)
        self._entry = 0

    def _put(self, raw: bytes, entries: int) -> None:
        """Place ``entries`` entries of ``raw`` at the next free entry and mark them written."""
        page = self._pages[-1]
        start = entry_offset(self._entry)
        if self._placements is not None:
            self._placements.append(((len(self._pages) - 1) * PAGE_SIZE + start, len(raw)))
        if self._cipher is not None and raw:
            relative = (len(self._pages) - 1) * PAGE_SIZE + start
            raw = self._cipher.encrypt(relative, payload_entries(raw))
        page[start : start + len(raw)] = raw
        # ((4**n - 1) // 3) is n pairs of 0b01: the WRITTEN bit of n consecutive entries.
        written = ((1 << (2 * entries)) - 1) // 3 << (2 * self._entry)
        self._bitmaps[-1] &= ~written
        self._entry += entries

    # -- items ---------------------------------------------------------------------------
    def namespace(self, name: str) -> int:
        """Select namespace ``name``, writing its entry on first use; returns its index."""
        index = self._namespaces.get(name)
        if index is None:
            index = len(self._namespaces) + 1
            if index > NS_MAX:
                raise InputError(f"too many namespaces: at most {NS_MAX}")
            item = Item.integer(NS_INDEX, ItemType.U8, name, index)
            if self._entry >= ENTRY_COUNT:
                self._new_page()
            self._put(item.to_bytes(), 1)
            self._namespaces[name] = index
        return index

    def integer(self, ns_index: int, key: str, type: ItemType, value: int) -> None:
        item = Item.integer(ns_index, type, key, value)
        if self._entry >= ENTRY_COUNT:
            self._new_page()
        self._put(item.to_bytes(), 1)

    def string(self, ns_index: int, key: str, text: str) -> None:
        payload = text.encode("utf-8") + b"\x00"
        limit = CHUNK_MAX_SIZE if self.version is FormatVersion.V2 else V1_MAX_VARIABLE_SIZE
        if len(payload) > limit:
            raise InputError(
                f"string of key {key!r} is {len(payload)} bytes with its NUL; the limit is {limit}"
            )
        self._single_page(Item.variable(ns_index, ItemType.SZ, key, payload), payload)

    def blob(self, ns_index: int, key: str, data: bytes) -> None:
        if self.version is FormatVersion.V1:
            if len(data) > V1_MAX_VARIABLE_SIZE:
                raise InputError(
                    f"blob of key {key!r} is {len(data)} bytes; version 1 allows "
                    f"{V1_MAX_VARIABLE_SIZE} (use version 2 for multi-page blobs)"
                )
            self._single_page(Item.variable(ns_index, ItemType.BLOB, key, data), data)
        else:
            self._multi_page_blob(ns_index, key, data)

    def _single_page(self, header: Item, payload: bytes) -> None:
        # The generator moves an item that would end exactly at the last entry to a new page.
        if self._entry + header.span >= ENTRY_COUNT:
            self._new_page()
            if header.span >= ENTRY_COUNT:
                raise InputError(
                    f"value of key {header.key_name!r} ({len(payload)} bytes) needs "
                    f"{header.span} entries; the generator places at most "
                    f"{(ENTRY_COUNT - 2) * ENTRY_SIZE} bytes in one page"
                )
        self._put(header.to_bytes(), 1)
        self._put(payload, header.span - 1)

    def _multi_page_blob(self, ns_index: int, key: str, data: bytes) -> None:
        if self._entry >= ENTRY_COUNT:
            self._new_page()
        offset = 0
        chunk_count = 0
        while True:
            tailroom = (ENTRY_COUNT - self._entry - 1) * ENTRY_SIZE
            chunk = data[offset : offset + tailroom]
            header = Item.variable(ns_index, ItemType.BLOB_DATA, key, chunk, chunk_count)
            self._put(header.to_bytes(), 1)
            self._put(chunk, header.span - 1)
            chunk_count += 1
            offset += len(chunk)
            remaining = len(data) - offset
            if remaining or tailroom - len(chunk) < ENTRY_SIZE:
                self._new_page()
            if not remaining:
                break
        self._put(Item.blob_index(ns_index, key, len(data), chunk_count, 0).to_bytes(), 1)

    def record_placements(self) -> list[tuple[int, int]]:
        """Start logging where each later write lands: ``(partition offset, bytes)`` in order."""
        self._placements = []
        return self._placements

    # -- result --------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The image: written pages, then (read/write) blank pages up to the partition size."""
        for page, bitmap in zip(self._pages, self._bitmaps, strict=True):
            page[BITMAP_OFFSET : BITMAP_OFFSET + 32] = bitmap.to_bytes(32, "little")
        pages = b"".join(self._pages)
        if self.size.read_only:
            return pages
        return pages.ljust(self.size.size, b"\xff")


def _csv_rows(text: str, source: str) -> Iterable[tuple[int, dict[str, str | None]]]:
    # The generator drops every physical line whose first character is '#', then reads the
    # rest with csv.DictReader; the first remaining line is the header.
    kept = [
        (n, line) for n, line in enumerate(text.splitlines(keepends=True), 1) if line[:1] != "#"
    ]
    line_numbers = [n for n, _ in kept]
    reader = csv.DictReader((line for _, line in kept), delimiter=",")
    fields = tuple(reader.fieldnames or ())
    if fields[:4] != CSV_FIELDS:
        raise InputError(
            f"{source}: the first line must be the header {','.join(CSV_FIELDS)}, "
            f"got {','.join(fields) or 'nothing'}"
        )
    for row in reader:
        yield line_numbers[reader.line_num - 1], dict(row)


def _decode_binary(key: str, encoding: str, value: str | bytes) -> bytes:
    if encoding == "hex2bin":
        text = value.strip()
        if len(text) % 2:
            raise InputError(f"{key}: hex2bin value must have an even number of digits")
        try:
            return binascii.a2b_hex(text)
        except (binascii.Error, ValueError):
            raise InputError(f"{key}: hex2bin value is not hexadecimal") from None
    if encoding == "base64":
        try:
            return binascii.a2b_base64(value)
        except (binascii.Error, ValueError) as err:
            raise InputError(f"{key}: base64 value is invalid ({err})") from None
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise InputError(
            f"{key}: inline 'binary' data must be ASCII; use hex2bin, base64 or a file"
        ) from None


def _fill_value(key: str, encoding: str, value: str) -> str:
    """The generator's ``blob_fill(N;0xPP)`` / ``blob_sz_fill(N;0xPP)`` as hex text."""
    match = _FILL_ENCODING.fullmatch(encoding)
    if match is None:
        raise InputError(f"{key}: invalid encoding {encoding!r} (blob_fill(N;0xPP))")
    kind, length, pad = match.group(1), int(match.group(2)), int(match.group(3), 16)
    raw = value.encode("utf-8")
    if len(raw) > length:
        raise InputError(f"{key}: value is longer than the {length} bytes of {kind}")
    body = raw + bytes([pad]) * (length - len(raw))
    if kind == "blob_sz_fill":
        body = struct.pack("<I", len(raw)) + body
    return body.hex()


def _write_row(
    builder: NvsImageBuilder, row: dict[str, str | None], ns_index: int | None, base_dir: Path
) -> int | None:
    """Apply one CSV row; returns the namespace index in force afterwards."""
    key, kind = row.get("key"), row.get("type")
    encoding, value = row.get("encoding"), row.get("value")
    if not key:
        raise InputError("empty key")
    if len(key) > KEY_MAX_LENGTH:
        raise InputError(f"key {key!r} is longer than {KEY_MAX_LENGTH} characters")
    if not key.isascii():
        raise InputError(f"key {key!r} must be ASCII")
    if kind == "namespace":
        return builder.namespace(key)
    if kind not in ("data", "file"):
        raise InputError(f"{key}: type must be namespace, data or file, got {kind!r}")
    if encoding is None or value is None:
        raise InputError(f"{key}: a data row needs an encoding and a value")
    if ns_index is None:
        raise InputError(f"{key}: data before the first namespace row")
    item_type, decoded = decode_value(key, kind, encoding, value, base_dir)
    if isinstance(decoded, int):
        builder.integer(ns_index, key, item_type, decoded)
    elif isinstance(decoded, str):
        builder.string(ns_index, key, decoded)
    else:
        builder.blob(ns_index, key, decoded)
    return ns_index


def decode_value(
    key: str, kind: str, encoding: str, value: str, base_dir: Path
) -> tuple[ItemType, int | str | bytes]:
    """A data or file row's value as the generator stores it: an integer of its type, text
    (``SZ``) or bytes (``BLOB``). ``file`` values are read relative to ``base_dir``."""
    if encoding.startswith(("blob_fill", "blob_sz_fill")):
        value, encoding = _fill_value(key, encoding, value), "hex2bin"
    content: str | bytes = value
    if kind == "file":
        path = Path(value) if Path(value).is_absolute() else base_dir / value
        try:
            content = path.read_bytes()
        except OSError as err:
            raise InputError(f"{key}: cannot read file {value!r}: {err.strerror}") from None
    if encoding in INTEGER_ENCODINGS:
        try:
            return INTEGER_ENCODINGS[encoding], int(content)
        except ValueError:
            raise InputError(f"{key}: {value!r} is not an integer") from None
    if encoding == "string":
        try:
            text = content.decode("utf-8") if isinstance(content, bytes) else content
        except UnicodeDecodeError:
            raise InputError(f"{key}: file {value!r} is not UTF-8 text") from None
        return ItemType.SZ, text
    if encoding in BINARY_ENCODINGS:
        return ItemType.BLOB, _decode_binary(key, encoding, content)
    raise InputError(f"{key}: unsupported encoding {encoding!r}")


def generate_partition(
    sources: Iterable[tuple[str, str]],
    size: NvsSize,
    *,
    version: FormatVersion = FormatVersion.V2,
    keys: NvsKeys | None = None,
    base_dir: Path | None = None,
) -> bytes:
    """Build an NVS image from ``(name, csv_text)`` sources, read in order.

    ``file`` rows are read relative to ``base_dir`` (the current directory by default), as the
    generator does. Errors name the source and line.
    """
    builder = NvsImageBuilder(size, version, keys)
    folder = base_dir if base_dir is not None else Path.cwd()
    ns_index: int | None = None
    for name, text in sources:
        for line, row in _csv_rows(text, name):
            try:
                ns_index = _write_row(builder, row, ns_index, folder)
            except InputError as err:
                raise InputError(f"{name}:{line}: {err}") from None
    return builder.to_bytes()
