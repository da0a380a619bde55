"""The NVS (nvs_flash) on-flash format, version 2, as plain values and pure functions.

Layout facts come from ESP-IDF's ``components/nvs_flash`` (``nvs_page.hpp``, ``nvs_types.hpp``,
``private_include/nvs_constants.h``, ``nvs_encrypted_partition.cpp``); the figures are collected
in spec ``flash-formats.md`` section 1. A partition is a run of 4 KiB pages; each page is a
32-byte header, a 32-byte entry-state bitmap and 126 entries of 32 bytes. An *item* is one
entry header plus, for strings and blob chunks, ``span - 1`` payload entries.

Everything here is I/O free: the generator (``jumpstart.host.nvs_gen``), the parser
(``jumpstart.host.nvs_parse``) and the runtime library (``jumpstart.idf.nvs``) share it.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from jumpstart.errors import InputError
from jumpstart.formats.crc import crc32_le

__all__ = [
    "BITMAP_OFFSET",
    "BLOB_IDX_MAX_SIZE",
    "CHUNK_ANY",
    "CHUNK_MAX_SIZE",
    "ENTRY_COUNT",
    "ENTRY_SIZE",
    "FIRST_ENTRY_OFFSET",
    "KEY_MAX_LENGTH",
    "NS_ANY",
    "NS_INDEX",
    "PAGE_SIZE",
    "BlobVersion",
    "EntryCipher",
    "EntryState",
    "FormatVersion",
    "Item",
    "ItemType",
    "NvsKeys",
    "NvsKeysError",
    "PageHeader",
    "PageState",
    "bitmap_set",
    "decrypt_image",
    "entry_offset",
    "entry_state",
    "entry_states",
    "entry_tweak",
    "pack_integer",
    "span_for",
    "unpack_integer",
]

# nvs_constants.h / nvs_page.hpp
PAGE_SIZE = 4096  # one flash sector
HEADER_SIZE = 32
BITMAP_OFFSET = 32  # 2 bits an entry, 32 bytes
BITMAP_SIZE = 32
FIRST_ENTRY_OFFSET = 64
ENTRY_SIZE = 32
ENTRY_COUNT = 126  # 64 + 126 * 32 == 4096
CHUNK_MAX_SIZE = ENTRY_SIZE * (ENTRY_COUNT - 1)  # 4000: longest string or blob chunk
KEY_MAX_LENGTH = 15  # NVS_KEY_NAME_MAX_SIZE - 1 (the key field is 16 bytes incl. NUL)
KEY_FIELD_SIZE = 16
NS_INDEX = 0  # namespace table
NS_ANY = 255
NS_MAX = 254  # user namespaces are 1..254
CHUNK_ANY = 0xFF
# Item::checkHeaderConsistency: a BLOB_IDX may describe at most 127 chunks of 125 entries.
BLOB_IDX_MAX_SIZE = 127 * (ENTRY_COUNT - 1) * ENTRY_SIZE
# nvs_types.hpp: ``data`` union of the entry, bytes 24..31
DATA_OFFSET = 24
ERASED_BYTE = 0xFF


class PageState(IntEnum):
    """Page state word at offset 0; every transition only clears bits (nvs_page.hpp)."""

    UNINITIALIZED = 0xFFFFFFFF
    ACTIVE = 0xFFFFFFFE
    FULL = 0xFFFFFFFC
    FREEING = 0xFFFFFFF8
    CORRUPT = 0xFFFFFFF0
    INVALID = 0


class EntryState(IntEnum):
    """Two bits an entry in the bitmap: EMPTY -> WRITTEN -> ERASED by clearing bits."""

    EMPTY = 0b11
    WRITTEN = 0b10
    ERASED = 0b00
    ILLEGAL = 0b01  # only through a torn bitmap write


class FormatVersion(IntEnum):
    """Page header byte 8: the format is upgraded by decrementing it (NVS_VERSION)."""

    V1 = 0xFF  # single-page blobs only
    V2 = 0xFE  # multi-page blobs (BLOB_DATA + BLOB_IDX)


class ItemType(IntEnum):
    """``ItemType`` of nvs_types.hpp; for integers the low nibble is the size, 0x10 = signed."""

    U8 = 0x01
    I8 = 0x11
    U16 = 0x02
    I16 = 0x12
    U32 = 0x04
    I32 = 0x14
    U64 = 0x08
    I64 = 0x18
    SZ = 0x21
    BLOB = 0x41  # v1 single-page blob: read and rewritten as v2, never created
    BLOB_DATA = 0x42
    BLOB_IDX = 0x48
    ANY = 0xFF

    @property
    def is_integer(self) -> bool:
        return self in INTEGER_STRUCTS

    @property
    def is_variable_length(self) -> bool:
        return self in (ItemType.SZ, ItemType.BLOB, ItemType.BLOB_DATA)


# The little-endian layout of each integer type in an item's data field.
INTEGER_STRUCTS: dict[ItemType, struct.Struct] = {
    ItemType.U8: struct.Struct("<B"),
    ItemType.I8: struct.Struct("<b"),
    ItemType.U16: struct.Struct("<H"),
    ItemType.I16: struct.Struct("<h"),
    ItemType.U32: struct.Struct("<I"),
    ItemType.I32: struct.Struct("<i"),
    ItemType.U64: struct.Struct("<Q"),
    ItemType.I64: struct.Struct("<q"),
}
_KNOWN_TYPES = {t.value for t in ItemType if t is not ItemType.ANY}


def pack_integer(type: ItemType, value: int) -> bytes:
    """The 8-byte data field of an integer item: the value little-endian, unused bytes 0xFF."""
    try:
        packed = INTEGER_STRUCTS[type].pack(value)
    except struct.error:
        raise InputError(f"value {value} does not fit type {type.name.lower()}") from None
    return packed.ljust(8, b"\xff")


def unpack_integer(type: ItemType, data: bytes) -> int:
    """The value held in the data field of an integer item of ``type``."""
    value: int = INTEGER_STRUCTS[type].unpack_from(data)[0]
    return value


class BlobVersion(IntEnum):
    """``chunkStart`` of a BLOB_IDX: each rewrite toggles it so old and new chunks differ."""

    VER_0 = 0x00
    VER_1 = 0x80

    def toggled(self) -> BlobVersion:
        return BlobVersion.VER_1 if self is BlobVersion.VER_0 else BlobVersion.VER_0


def span_for(data_size: int) -> int:
    """Entries taken by a variable-length item: its header plus the payload rounded up."""
    return 1 + (data_size + ENTRY_SIZE - 1) // ENTRY_SIZE


def entry_offset(index: int) -> int:
    """Offset of entry ``index`` inside its page."""
    return FIRST_ENTRY_OFFSET + ENTRY_SIZE * index


# -- page header -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageHeader:
    """The 32-byte page header (never encrypted). ``crc`` covers bytes 4..27."""

    state: int
    seq: int
    version: int = FormatVersion.V2
    crc: int | None = None  # None: compute on to_bytes
    reserved: bytes = b"\xff" * 19

    SIZE = HEADER_SIZE

    @staticmethod
    def crc_of(raw: bytes) -> int:
        return crc32_le(raw[4:28])

    def to_bytes(self) -> bytes:
        body = struct.pack("<IB", self.seq, self.version) + self.reserved
        crc = crc32_le(body) if self.crc is None else self.crc
        return struct.pack("<I", self.state) + body + struct.pack("<I", crc)

    @classmethod
    def from_bytes(cls, raw: bytes) -> PageHeader:
        if len(raw) < HEADER_SIZE:
            raise InputError(f"page header needs {HEADER_SIZE} bytes, got {len(raw)}")
        state, seq, version = struct.unpack_from("<IIB", raw)
        (crc,) = struct.unpack_from("<I", raw, 28)
        return cls(state, seq, version, crc, bytes(raw[9:28]))

    @property
    def crc_ok(self) -> bool:
        return self.crc is not None and self.crc == crc32_le(self.to_bytes()[4:28])

    @classmethod
    def state_only(cls, state: PageState) -> bytes:
        """The 4-byte state word as ``Page::alterPageState`` writes it."""
        return struct.pack("<I", state)


# -- entry state bitmap ----------------------------------------------------------------------


_STATE_OF_BITS = tuple(EntryState(bits) for bits in range(4))  # no Enum lookup per entry
_STATES_OF_BYTE = tuple(
    tuple(_STATE_OF_BITS[(byte >> shift) & 0b11] for shift in (0, 2, 4, 6)) for byte in range(256)
)


def entry_state(bitmap: bytes | bytearray, index: int) -> EntryState:
    """State of entry ``index`` in a 32-byte bitmap."""
    return _STATE_OF_BITS[(bitmap[index >> 2] >> ((index & 3) << 1)) & 0b11]


def entry_states(bitmap: bytes | bytearray, count: int) -> list[EntryState]:
    """States of entries ``0 .. count-1``, four to a bitmap byte (what a page load scans)."""
    states = [state for byte in bitmap[: (count + 3) // 4] for state in _STATES_OF_BYTE[byte]]
    return states[:count]


def bitmap_set(bitmap: bytearray, index: int, state: EntryState) -> None:
    """Set the two bits of entry ``index`` (AND semantics: bits only ever clear)."""
    shift = 2 * (index % 4)
    bitmap[index // 4] &= ~(0b11 << shift) | (state << shift)


def bitmap_word_offset(index: int) -> int:
    """Page offset of the 4-byte bitmap word holding entry ``index`` (``alterEntryState``)."""
    return BITMAP_OFFSET + 4 * (index // 16)


# -- items --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One 32-byte entry header (``nvs::Item``).

    ``data`` is the raw 8-byte union; the properties read it according to ``type``.
    ``crc`` is the stored CRC when parsed, or None to compute it on :meth:`to_bytes`.
    """

    ns_index: int
    type: int
    span: int
    chunk_index: int
    key: bytes  # the 16-byte key field, NUL padded
    data: bytes
    crc: int | None = None

    # -- constructors --------------------------------------------------------------
    @staticmethod
    def key_field(key: str) -> bytes:
        raw = key.encode("utf-8")
        if not raw or len(raw) > KEY_MAX_LENGTH:
            raise InputError(f"NVS key {key!r} must be 1 to {KEY_MAX_LENGTH} bytes long")
        return raw.ljust(KEY_FIELD_SIZE, b"\x00")

    @classmethod
    def integer(cls, ns_index: int, type: ItemType, key: str, value: int) -> Item:
        """A U8..I64 item; unused data bytes stay 0xFF."""
        try:
            data = pack_integer(type, value)
        except InputError as err:
            raise InputError(f"key {key!r}: {err}") from None
        return cls(ns_index, type, 1, CHUNK_ANY, cls.key_field(key), data)

    @classmethod
    def variable(
        cls,
        ns_index: int,
        type: ItemType,
        key: str,
        payload: bytes,
        chunk_index: int = CHUNK_ANY,
    ) -> Item:
        """The header of a SZ, BLOB or BLOB_DATA item carrying ``payload``."""
        data = struct.pack("<HHI", len(payload), 0xFFFF, crc32_le(payload))
        return cls(ns_index, type, span_for(len(payload)), chunk_index, cls.key_field(key), data)

    @classmethod
    def blob_index(
        cls, ns_index: int, key: str, size: int, chunk_count: int, chunk_start: int
    ) -> Item:
        """The BLOB_IDX that closes a multi-page blob."""
        data = struct.pack("<IBBH", size, chunk_count, chunk_start, 0xFFFF)
        return cls(ns_index, ItemType.BLOB_IDX, 1, CHUNK_ANY, cls.key_field(key), data)

    # -- bytes ----------------------------------------------------------------------
    @staticmethod
    def crc_of(raw: bytes) -> int:
        """``Item::calculateCrc32``: everything but the CRC field itself."""
        return crc32_le(bytes(raw[0:4]) + bytes(raw[8:32]))

    def to_bytes(self) -> bytes:
        head = bytes((self.ns_index, self.type, self.span, self.chunk_index))
        tail = self.key + self.data
        crc = crc32_le(head + tail) if self.crc is None else self.crc
        return head + struct.pack("<I", crc) + tail

    @classmethod
    def from_bytes(cls, raw: bytes) -> Item:
        if len(raw) != ENTRY_SIZE:
            raise InputError(f"an NVS entry is {ENTRY_SIZE} bytes, got {len(raw)}")
        (crc,) = struct.unpack_from("<I", raw, 4)
        return cls(raw[0], raw[1], raw[2], raw[3], bytes(raw[8:24]), bytes(raw[24:32]), crc)

    # -- reading --------------------------------------------------------------------
    @property
    def key_name(self) -> str:
        """The key as text (bytes up to the first NUL; undecodable bytes escaped)."""
        return self.key.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")

    @property
    def item_type(self) -> ItemType | None:
        return ItemType(self.type) if self.type in _KNOWN_TYPES else None

    @property
    def crc_ok(self) -> bool:
        return self.crc is None or self.crc == self.crc_of(self.to_bytes())

    @property
    def integer_value(self) -> int:
        item_type = self.item_type
        if item_type is None or not item_type.is_integer:
            raise InputError(f"item {self.key_name!r} of type 0x{self.type:02x} is no integer")
        return unpack_integer(item_type, self.data)

    @property
    def data_size(self) -> int:
        """Payload size of a variable-length item, or total size of a BLOB_IDX."""
        if self.type == ItemType.BLOB_IDX:
            return int.from_bytes(self.data[0:4], "little")
        return int.from_bytes(self.data[0:2], "little")

    @property
    def data_crc(self) -> int:
        return int.from_bytes(self.data[4:8], "little")

    @property
    def chunk_count(self) -> int:
        return self.data[4]

    @property
    def chunk_start(self) -> int:
        return self.data[5]

    def is_consistent(self, index: int) -> bool:
        """``Item::checkHeaderConsistency`` for an item found at entry ``index``."""
        if not self.crc_ok:
            return False
        item_type = self.item_type
        if item_type is None or item_type is ItemType.ANY:
            return False
        if item_type.is_integer:
            return self.span == 1
        if item_type is ItemType.BLOB_IDX:
            return (
                self.span == 1
                and self.chunk_index == CHUNK_ANY
                and self.data_size <= BLOB_IDX_MAX_SIZE
            )
        if item_type is ItemType.BLOB_DATA and self.chunk_index == CHUNK_ANY:
            return False
        size = self.data_size
        return (
            size <= (ENTRY_COUNT - index - 1) * ENTRY_SIZE
            and self.span <= ENTRY_COUNT - index
            and self.span == span_for(size)
        )

    def identity(self) -> tuple[int, int, bytes, int]:
        """What makes two items duplicates of each other: namespace, type, key, chunk."""
        return (self.ns_index, self.type, self.key, self.chunk_index)


def payload_entries(payload: bytes) -> bytes:
    """Payload laid out in whole entries, the tail padded with 0xFF."""
    padded = -len(payload) % ENTRY_SIZE
    return payload + b"\xff" * padded


# -- encryption ---------------------------------------------------------------------------


def entry_tweak(relative_address: int) -> bytes:
    """XTS tweak of the entry at ``relative_address`` in the partition (LE u32, zero padded).

    nvs_encrypted_partition.cpp uses the partition-relative address so host-built images work
    at any flash offset.
    """
    return relative_address.to_bytes(16, "little")


class EntryCipher:
    """XTS-AES-256 on whole entries: each 32-byte entry is one data unit with its own tweak."""

    __slots__ = ("_algorithm",)

    def __init__(self, keys: NvsKeys) -> None:
        if keys.eky == keys.tky:
            raise InputError("the NVS data key and tweak key must differ (XTS)")
        self._algorithm = algorithms.AES(keys.eky + keys.tky)

    def encrypt(self, relative_address: int, data: bytes) -> bytes:
        return self._apply(relative_address, data, encrypt=True)

    def decrypt(self, relative_address: int, data: bytes) -> bytes:
        return self._apply(relative_address, data, encrypt=False)

    def _apply(self, relative_address: int, data: bytes, *, encrypt: bool) -> bytes:
        if len(data) % ENTRY_SIZE:
            raise InputError(f"encrypted NVS access must be whole entries, got {len(data)} bytes")
        out = bytearray()
        for pos in range(0, len(data), ENTRY_SIZE):
            cipher = Cipher(self._algorithm, modes.XTS(entry_tweak(relative_address + pos)))
            ctx = cipher.encryptor() if encrypt else cipher.decryptor()
            out += ctx.update(data[pos : pos + ENTRY_SIZE]) + ctx.finalize()
        return bytes(out)


class NvsKeysError(InputError):
    """The nvs_keys partition or key file is blank or fails its CRC."""

    def __init__(self, message: str, *, blank: bool = False) -> None:
        super().__init__(message)
        self.blank = blank


# nvs_flash.h nvs_sec_cfg_t, nvs_flash_read_security_cfg: eky, tky, then the CRC of both.
KEY_SIZE = 32
KEYS_CRC_OFFSET = 2 * KEY_SIZE
KEYS_PARTITION_SIZE = 0x1000
# components/nvs_sec_provider: XTS keys are HMAC-SHA256(hmac_key, seed) where each seed is a
# little-endian u32 repeated 8 times (EKEY_SEED 0xAEBE5A5A, TKEY_SEED 0xCEDEA5A5).
HMAC_EKEY_SEED = struct.pack("<I", 0xAEBE5A5A) * 8
HMAC_TKEY_SEED = struct.pack("<I", 0xCEDEA5A5) * 8


@dataclass(frozen=True, slots=True)
class NvsKeys:
    """The XTS data key and tweak key of an encrypted NVS partition (``nvs_sec_cfg_t``)."""

    eky: bytes
    tky: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.eky) != KEY_SIZE or len(self.tky) != KEY_SIZE:
            raise InputError("NVS keys are two 32-byte keys")

    def __repr__(self) -> str:  # never print key material
        return f"NvsKeys(eky=<{KEY_SIZE} bytes>, tky=<{KEY_SIZE} bytes>)"

    @property
    def crc(self) -> int:
        return crc32_le(self.eky + self.tky)

    def to_bytes(self) -> bytes:
        """The 4 KiB nvs_keys partition / generator key file."""
        head = self.eky + self.tky + struct.pack("<I", self.crc)
        return head.ljust(KEYS_PARTITION_SIZE, b"\xff")

    @classmethod
    def from_bytes(cls, raw: bytes) -> NvsKeys:
        """Read an nvs_keys partition or key file; blank or bad CRC raise :class:`NvsKeysError`."""
        if len(raw) < KEYS_CRC_OFFSET + 4:
            raise NvsKeysError(f"an NVS key file has at least 68 bytes, got {len(raw)}")
        head = bytes(raw[: KEYS_CRC_OFFSET + 4])
        if head == b"\xff" * len(head):
            raise NvsKeysError("the NVS key partition is blank (no keys generated yet)", blank=True)
        (crc,) = struct.unpack_from("<I", raw, KEYS_CRC_OFFSET)
        keys = cls(head[:KEY_SIZE], head[KEY_SIZE:KEYS_CRC_OFFSET])
        if crc != keys.crc:
            raise NvsKeysError(
                f"NVS key CRC mismatch (stored 0x{crc:08x}, computed 0x{keys.crc:08x}): "
                "the key partition is corrupt (ESP_ERR_NVS_CORRUPT_KEY_PART)"
            )
        return keys

    @classmethod
    def from_hmac(cls, hmac_key: bytes) -> NvsKeys:
        """Keys of the HMAC scheme, derived from the eFuse HMAC key (nvs_sec_provider)."""
        if len(hmac_key) != KEY_SIZE:
            raise InputError(f"an HMAC key is {KEY_SIZE} bytes, got {len(hmac_key)}")
        return cls(
            hmac.new(hmac_key, HMAC_EKEY_SEED, hashlib.sha256).digest(),
            hmac.new(hmac_key, HMAC_TKEY_SEED, hashlib.sha256).digest(),
        )


def decrypt_image(image: bytes, keys: NvsKeys) -> bytes:
    """Decrypt every written entry of an encrypted partition; headers and bitmaps stay as is.

    An entry that reads as all 0xFF was never written and is left alone, as the library's blank
    probe does. Unlike the generator's ``decrypt``, the tweak is always the entry's own address,
    so images with erased or skipped entries decrypt correctly too.
    """
    if len(image) % PAGE_SIZE:
        raise InputError(f"an NVS image is whole 4096-byte pages, got {len(image)} bytes")
    cipher = EntryCipher(keys)
    out = bytearray(image)
    blank = b"\xff" * ENTRY_SIZE
    for page in range(0, len(image), PAGE_SIZE):
        for index in range(ENTRY_COUNT):
            at = page + entry_offset(index)
            raw = image[at : at + ENTRY_SIZE]
            if raw != blank:
                out[at : at + ENTRY_SIZE] = cipher.decrypt(at, raw)
    return bytes(out)
