"""ESP-IDF partition table: CSV <-> entries <-> the 0xC00-byte binary at 0x8000.

Behaviour follows ``gen_esp32part.py`` v1.5 (ESP-IDF v5.5/v6.0), spec section 3:

* CSV columns ``Name, Type, SubType, Offset, Size, Flags``; ``#`` comments; fields stripped;
  missing trailing fields allowed; ``$VAR`` expanded from a caller-supplied environment.
* Numbers are ``int(x, 0)`` with ``K``/``M`` suffixes; types and subtypes by name or number.
* An empty offset places the partition at the end of the previous one, rounded up to the type's
  alignment (app 0x10000, others 0x1000). A negative size ``-X`` means "end at address X".
* Binary: 32-byte records ``<2sBBLL16sL`` (magic AA 50), an MD5 record (EB EB, 14 x FF, MD5 of the
  records before it), 0xFF up to 0xC00 bytes; the end marker is the first all-0xFF record.

Every error raised for a CSV names the line it comes from.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from jumpstart.errors import InputError

__all__ = [
    "DEFAULT_TABLE_OFFSET",
    "MAX_TABLE_LENGTH",
    "Partition",
    "PartitionTable",
    "PartitionTableError",
    "PartitionType",
    "subtype_name",
    "type_name",
]

# CONFIG_PARTITION_TABLE_OFFSET default; the table occupies one 4 KiB sector.
DEFAULT_TABLE_OFFSET = 0x8000
TABLE_SECTOR_SIZE = 0x1000
# Table data is limited to 0xC00 bytes (96 records incl. MD5 and end marker): the last 1 KiB of
# the sector is kept free for a Secure Boot V1 signature (esp_flash_partitions.h).
MAX_TABLE_LENGTH = 0xC00
RECORD_SIZE = 32
RECORD_FORMAT = struct.Struct("<2sBBLL16sL")
RECORD_MAGIC = b"\xaa\x50"
MD5_RECORD_PREFIX = b"\xeb\xeb" + b"\xff" * 14
END_MARKER = b"\xff" * RECORD_SIZE
NAME_SIZE = 16
FLAG_ENCRYPTED = 0x1
FLAG_READONLY = 0x2

# Read/write NVS needs at least 3 pages; smaller NVS partitions must be read-only.
NVS_RW_MIN_SIZE = 0x3000
# The otadata partition holds two 4 KiB select entries and must be exactly this size.
OTADATA_SIZE = 0x2000


class PartitionType(IntEnum):
    """Partition types (``esp_partition_type_t``); 0x40..0xFE are free for custom types."""

    APP = 0x00
    DATA = 0x01
    BOOTLOADER = 0x02  # since v5.4
    PARTITION_TABLE = 0x03  # since v5.4


TYPE_NAMES: dict[str, int] = {
    "app": PartitionType.APP,
    "data": PartitionType.DATA,
    "bootloader": PartitionType.BOOTLOADER,
    "partition_table": PartitionType.PARTITION_TABLE,
}

# esp_partition_subtype_t, per type (spec 3.2).
SUBTYPE_NAMES: dict[int, dict[str, int]] = {
    PartitionType.APP: {
        "factory": 0x00,
        **{f"ota_{i}": 0x10 + i for i in range(16)},
        "test": 0x20,
        "tee_0": 0x30,
        "tee_1": 0x31,
    },
    PartitionType.DATA: {
        "ota": 0x00,
        "phy": 0x01,
        "nvs": 0x02,
        "coredump": 0x03,
        "nvs_keys": 0x04,
        "efuse": 0x05,
        "undefined": 0x06,
        "esphttpd": 0x80,
        "fat": 0x81,
        "spiffs": 0x82,
        "littlefs": 0x83,
        "tee_ota": 0x90,
    },
    PartitionType.BOOTLOADER: {"primary": 0x00, "ota": 0x01, "recovery": 0x02},
    PartitionType.PARTITION_TABLE: {"primary": 0x00, "ota": 0x01},
}
SUBTYPE_DATA_OTA = 0x00
SUBTYPE_DATA_NVS = 0x02
SUBTYPE_DATA_NVS_KEYS = 0x04
SUBTYPE_DATA_COREDUMP = 0x03
SUBTYPE_DATA_UNDEFINED = 0x06
SUBTYPE_DATA_TEE_OTA = 0x90
SUBTYPE_APP_FACTORY = 0x00
SUBTYPE_APP_OTA_MIN = 0x10
SUBTYPE_APP_OTA_MAX = 0x1F
SUBTYPE_APP_TEST = 0x20

# Offset alignment: app partitions are mapped through 64 KiB MMU pages, the rest by sector.
APP_OFFSET_ALIGNMENT = 0x10000
DATA_OFFSET_ALIGNMENT = 0x1000
# App sizes are erased in whole sectors (64 KiB when Secure Boot V1 signs each 64 KiB block).
APP_SIZE_ALIGNMENT = 0x1000
APP_SIZE_ALIGNMENT_SECURE_V1 = 0x10000

_SIZE_SUFFIXES = (("k", 1024), ("m", 1024 * 1024))
_VAR_RE = re.compile(r"(?<!\\)\$(\{)?([A-Za-z_][A-Za-z0-9_]*)(?(1)\})")
_MAX_U8_TYPE = 0xFE  # 0xFF is the end marker
_MAX_U32 = 0xFFFFFFFF


class PartitionTableError(InputError):
    """A partition table (CSV or binary) is malformed or breaks a layout rule."""


def type_name(ptype: int) -> str:
    """The CSV keyword for a partition type, or its number in hex."""
    for name, value in TYPE_NAMES.items():
        if value == ptype:
            return name
    return f"0x{ptype:02x}"


def subtype_name(ptype: int, subtype: int) -> str:
    """The CSV keyword for a subtype of ``ptype``, or its number in hex."""
    for name, value in SUBTYPE_NAMES.get(ptype, {}).items():
        if value == subtype:
            return name
    return f"0x{subtype:02x}"


def offset_alignment(ptype: int) -> int:
    """Required alignment of a partition's offset."""
    return APP_OFFSET_ALIGNMENT if ptype == PartitionType.APP else DATA_OFFSET_ALIGNMENT


def _where(line: int | None, name: str) -> str:
    return f"line {line}" if line is not None else f"partition '{name}'"


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition table record."""

    name: str
    type: int
    subtype: int
    offset: int
    size: int
    encrypted: bool = False
    readonly: bool = False
    line: int | None = field(default=None, compare=False)
    """CSV line this record came from (for messages only)."""

    @property
    def end(self) -> int:
        """First address after the partition."""
        return self.offset + self.size

    @property
    def is_app(self) -> bool:
        return self.type == PartitionType.APP

    @property
    def ota_slot(self) -> int | None:
        """0..15 for an ``ota_N`` app partition, else None."""
        if self.is_app and SUBTYPE_APP_OTA_MIN <= self.subtype <= SUBTYPE_APP_OTA_MAX:
            return self.subtype - SUBTYPE_APP_OTA_MIN
        return None

    @property
    def flags(self) -> int:
        return (FLAG_ENCRYPTED if self.encrypted else 0) | (FLAG_READONLY if self.readonly else 0)

    def flag_names(self) -> list[str]:
        return [n for n, on in (("encrypted", self.encrypted), ("readonly", self.readonly)) if on]

    def to_binary(self) -> bytes:
        """The 32-byte record. Names longer than 16 bytes are cut, as gen_esp32part does."""
        return RECORD_FORMAT.pack(
            RECORD_MAGIC,
            self.type,
            self.subtype,
            self.offset,
            self.size,
            self.name.encode()[:NAME_SIZE],
            self.flags,
        )

    @classmethod
    def from_binary(cls, record: bytes, index: int = 0) -> Partition:
        """Parse one 32-byte record; ``index`` is used in messages."""
        if len(record) != RECORD_SIZE:
            raise PartitionTableError(
                f"record {index}: expected {RECORD_SIZE} bytes, got {len(record)}"
            )
        magic, ptype, subtype, offset, size, raw_name, flags = RECORD_FORMAT.unpack(record)
        if magic != RECORD_MAGIC:
            raise PartitionTableError(
                f"record {index}: bad magic {magic.hex()} (expected {RECORD_MAGIC.hex()})"
            )
        raw_name = raw_name.split(b"\x00", 1)[0]
        try:
            name = raw_name.decode()
        except UnicodeDecodeError as err:
            raise PartitionTableError(f"record {index}: label is not UTF-8 ({err})") from None
        return cls(
            name=name,
            type=ptype,
            subtype=subtype,
            offset=offset,
            size=size,
            encrypted=bool(flags & FLAG_ENCRYPTED),
            readonly=bool(flags & FLAG_READONLY),
        )

    def to_csv_row(self) -> str:
        return ",".join(
            [
                self.name,
                type_name(self.type),
                subtype_name(self.type, self.subtype),
                f"0x{self.offset:x}",
                _size_text(self.size),
                ":".join(self.flag_names()),
            ]
        )

    def verify(self, *, secure_v1: bool = False) -> None:
        """The per-record rules of gen_esp32part's ``PartitionDefinition.verify``."""
        where = _where(self.line, self.name)
        if not 0 <= self.type <= _MAX_U8_TYPE or not 0 <= self.subtype <= _MAX_U8_TYPE:
            raise PartitionTableError(f"{where}: type and subtype must be 0..0xfe")
        if self.offset < 0 or self.size <= 0 or self.offset + self.size > _MAX_U32 + 1:
            raise PartitionTableError(
                f"{where}: partition '{self.name}' has offset 0x{self.offset:x} and size "
                f"0x{self.size:x}; the size must be positive and the end within 4 GiB"
            )
        align = offset_alignment(self.type)
        if self.offset % align:
            raise PartitionTableError(
                f"{where}: partition '{self.name}' offset 0x{self.offset:x} is not aligned to "
                f"0x{align:x}"
            )
        if self.is_app:
            size_align = APP_SIZE_ALIGNMENT_SECURE_V1 if secure_v1 else APP_SIZE_ALIGNMENT
            if self.size % size_align:
                raise PartitionTableError(
                    f"{where}: app partition '{self.name}' size 0x{self.size:x} is not a "
                    f"multiple of 0x{size_align:x}"
                )
        if (
            self.type == PartitionType.DATA
            and self.subtype in (SUBTYPE_DATA_OTA, SUBTYPE_DATA_COREDUMP)
            and self.readonly
        ):
            raise PartitionTableError(
                f"{where}: '{self.name}' ({subtype_name(self.type, self.subtype)}) is always "
                "read-write and cannot be flagged readonly"
            )
        if (
            self.type == PartitionType.DATA
            and self.subtype == SUBTYPE_DATA_NVS
            and self.size < NVS_RW_MIN_SIZE
            and not self.readonly
        ):
            raise PartitionTableError(
                f"{where}: nvs partition '{self.name}' of size 0x{self.size:x} must be flagged "
                f"readonly (read/write NVS needs at least 0x{NVS_RW_MIN_SIZE:x})"
            )


def _size_text(size: int) -> str:
    for unit, suffix in ((0x100000, "M"), (0x400, "K")):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return f"0x{size:x}"


def _parse_int(text: str, keywords: Mapping[str, int] | None = None) -> int:
    """``int(x, 0)`` with K/M suffixes, or a keyword (gen_esp32part's ``parse_int``)."""
    lowered = text.lower()
    for suffix, multiplier in _SIZE_SUFFIXES:
        if lowered.endswith(suffix) and len(text) > 1:
            try:
                return int(text[:-1], 0) * multiplier
            except ValueError:
                break
    try:
        return int(text, 0)
    except ValueError:
        pass
    if keywords:
        if lowered in keywords:
            return keywords[lowered]
        raise PartitionTableError(
            f"value '{text}' is not valid; known keywords: {', '.join(keywords)}"
        ) from None
    raise PartitionTableError(f"invalid number '{text}' (use 0x.., decimal, or a K/M suffix)")


def _expand_vars(line: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in env:
            raise PartitionTableError(f"unknown variable '${name}'")
        return env[name]

    return _VAR_RE.sub(substitute, line)


@dataclass(slots=True)
class _CsvRow:
    line: int
    name: str
    type: int
    subtype: int
    offset: int | None
    size: int | None  # None: fixed later; negative: "end at -size"
    encrypted: bool
    readonly: bool


def _parse_csv_line(
    text: str,
    line: int,
    table_offset: int,
    bootloader_offset: int | None,
    recovery_bootloader_offset: int | None,
) -> _CsvRow:
    fields = [f.strip() for f in (text + ",,,,,").split(",")]
    name, type_text, subtype_text, offset_text, size_text, flags_text = fields[:6]
    if type_text == "":
        raise PartitionTableError("field 'type' can't be left empty")
    ptype = _parse_int(type_text, TYPE_NAMES)
    subtypes = SUBTYPE_NAMES.get(ptype, {})
    if subtype_text == "":
        if ptype == PartitionType.APP:
            raise PartitionTableError("app partition cannot have an empty subtype")
        subtype = SUBTYPE_DATA_UNDEFINED
    else:
        subtype = _parse_int(subtype_text, subtypes)

    offset: int | None
    size: int | None
    primary = subtypes.get("primary")
    if ptype == PartitionType.BOOTLOADER and subtype in (primary, subtypes["recovery"]):
        wanted = bootloader_offset if subtype == primary else recovery_bootloader_offset
        if wanted is None:
            raise PartitionTableError(
                f"{subtype_name(ptype, subtype)} bootloader offset is not provided"
            )
        offset = wanted
    elif ptype == PartitionType.PARTITION_TABLE and subtype == primary:
        offset = table_offset
    else:
        offset = _parse_int(offset_text) if offset_text else None

    if ptype == PartitionType.BOOTLOADER:
        if bootloader_offset is None:
            raise PartitionTableError("primary bootloader offset is not provided")
        size = table_offset - bootloader_offset
    elif ptype == PartitionType.PARTITION_TABLE:
        size = TABLE_SECTOR_SIZE
    elif size_text == "":
        raise PartitionTableError("size field can't be empty")
    else:
        size = _parse_int(size_text)

    encrypted = readonly = False
    for raw_flag in flags_text.split(":"):
        flag = raw_flag.strip()
        if flag == "encrypted":
            encrypted = True
        elif flag == "readonly":
            readonly = True
        elif flag:
            raise PartitionTableError(f"unknown flag '{flag}' (known flags: encrypted, readonly)")
    if not 0 <= ptype <= _MAX_U8_TYPE or not 0 <= subtype <= _MAX_U8_TYPE:
        raise PartitionTableError(f"type 0x{ptype:x} / subtype 0x{subtype:x} out of range 0..0xfe")
    return _CsvRow(line, name, ptype, subtype, offset, size, encrypted, readonly)


def _is_primary_fixed(ptype: int, subtype: int) -> bool:
    """Primary bootloader and primary table have fixed places and skip auto-placement."""
    return ptype in (PartitionType.BOOTLOADER, PartitionType.PARTITION_TABLE) and subtype == 0


def decode_table_text(data: bytes) -> str:
    """Decode a CSV file's bytes, honouring a UTF-8/16/32 byte order mark."""
    boms = (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    )
    encoding = next((name for bom, name in boms if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise PartitionTableError(f"partition table CSV is not valid {encoding}: {err}") from None


@dataclass(frozen=True, slots=True)
class PartitionTable:
    """An ordered, verified list of partitions."""

    partitions: tuple[Partition, ...]
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __iter__(self) -> Iterator[Partition]:
        return iter(self.partitions)

    def __len__(self) -> int:
        return len(self.partitions)

    def __getitem__(self, name: str) -> Partition:
        for part in self.partitions:
            if part.name == name:
                return part
        raise KeyError(name)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_csv(
        cls,
        text: str,
        *,
        table_offset: int = DEFAULT_TABLE_OFFSET,
        env: Mapping[str, str] | None = None,
        bootloader_offset: int | None = None,
        recovery_bootloader_offset: int | None = None,
        flash_size: int | None = None,
        secure_v1: bool = False,
    ) -> PartitionTable:
        """Parse, place and verify a CSV table (what ``gen_esp32part.py`` does)."""
        env = env or {}
        rows: list[_CsvRow] = []
        for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
            try:
                line = _expand_vars(raw, env).strip()
                if not line or line.startswith("#"):
                    continue
                rows.append(
                    _parse_csv_line(
                        line, number, table_offset, bootloader_offset, recovery_bootloader_offset
                    )
                )
            except PartitionTableError as err:
                raise PartitionTableError(f"line {number}: {err}") from None

        # Place partitions with empty offsets and resolve negative sizes.
        partitions: list[Partition] = []
        warnings: list[str] = []
        last_end = table_offset + TABLE_SECTOR_SIZE
        for row in rows:
            offset, size = row.offset, row.size
            assert size is not None
            if not _is_primary_fixed(row.type, row.subtype):
                if offset is not None and offset < last_end:
                    if not partitions:
                        raise PartitionTableError(
                            f"line {row.line}: partitions overlap: '{row.name}' sets offset "
                            f"0x{offset:x} but the partition table occupies the sector at "
                            f"0x{table_offset:x}; use 0x{last_end:x} or higher"
                        )
                    raise PartitionTableError(
                        f"line {row.line}: partitions overlap: '{row.name}' sets offset "
                        f"0x{offset:x} but the previous partition ends at 0x{last_end:x}"
                    )
                if offset is None:
                    align = offset_alignment(row.type)
                    offset = -(-last_end // align) * align
                if size < 0:
                    size = -size - offset
                last_end = offset + size
            elif offset is None:  # pragma: no cover - fixed rows always get an offset
                raise PartitionTableError(f"line {row.line}: offset missing")
            name = row.name
            if len(name.encode()) > NAME_SIZE:
                cut = name.encode()[:NAME_SIZE].decode(errors="ignore")
                warnings.append(
                    f"line {row.line}: label '{name}' is longer than {NAME_SIZE} bytes; "
                    f"stored as '{cut}'"
                )
                name = cut
            partitions.append(
                Partition(
                    name,
                    row.type,
                    row.subtype,
                    offset,
                    size,
                    row.encrypted,
                    row.readonly,
                    line=row.line,
                )
            )
        table = cls(tuple(partitions), tuple(warnings))
        table.verify(table_offset=table_offset, flash_size=flash_size, secure_v1=secure_v1)
        return cls(tuple(partitions), tuple(warnings) + table._name_warnings())

    @classmethod
    def from_binary(cls, data: bytes, *, md5: bool = True) -> PartitionTable:
        """Parse a binary table (0xC00 bytes, or the whole 4 KiB sector read from flash)."""
        data = bytes(data[:MAX_TABLE_LENGTH])
        digest = hashlib.md5(usedforsecurity=False)
        partitions: list[Partition] = []
        md5_seen = False
        for index, pos in enumerate(range(0, len(data), RECORD_SIZE)):
            record = data[pos : pos + RECORD_SIZE]
            if len(record) != RECORD_SIZE:
                break
            if record == END_MARKER:
                if md5 and not md5_seen and partitions:
                    raise PartitionTableError(
                        "partition table has no MD5 record (write it with MD5, or parse with "
                        "md5=False)"
                    )
                return cls(tuple(partitions))
            if record[:2] == MD5_RECORD_PREFIX[:2]:
                if record[:16] != MD5_RECORD_PREFIX:
                    raise PartitionTableError(
                        f"record {index}: malformed MD5 record (expected EB EB and 14 x FF)"
                    )
                if md5_seen:
                    raise PartitionTableError(f"record {index}: a second MD5 record")
                md5_seen = True
                if md5 and record[16:] != digest.digest():
                    raise PartitionTableError(
                        f"record {index}: MD5 mismatch (stored {record[16:].hex()}, computed "
                        f"{digest.hexdigest()})"
                    )
                continue
            if md5_seen:
                raise PartitionTableError(f"record {index}: partition record after the MD5 record")
            digest.update(record)
            partitions.append(Partition.from_binary(record, index))
        raise PartitionTableError(
            f"partition table has no end marker within 0x{MAX_TABLE_LENGTH:x} bytes "
            f"({len(data)} bytes given)"
        )

    # -- output -------------------------------------------------------------------------
    def to_binary(self, *, md5: bool = True) -> bytes:
        """The 0xC00-byte image written at the table offset."""
        body = b"".join(part.to_binary() for part in self.partitions)
        if md5:
            body += MD5_RECORD_PREFIX + hashlib.md5(body, usedforsecurity=False).digest()
        if len(body) >= MAX_TABLE_LENGTH:
            raise PartitionTableError(
                f"binary partition table is {len(body)} bytes; the limit is "
                f"{MAX_TABLE_LENGTH - 1} ({len(self.partitions)} partitions is too many)"
            )
        return body + b"\xff" * (MAX_TABLE_LENGTH - len(body))

    def to_csv(self) -> str:
        rows = ["# ESP-IDF Partition Table", "# Name, Type, SubType, Offset, Size, Flags"]
        rows += [part.to_csv_row() for part in self.partitions]
        return "\n".join(rows) + "\n"

    # -- queries ------------------------------------------------------------------------
    def find(
        self, ptype: int | None = None, subtype: int | None = None, label: str | None = None
    ) -> list[Partition]:
        """Partitions matching every given criterion, in table order (esp_partition_find)."""
        return [
            p
            for p in self.partitions
            if (ptype is None or p.type == ptype)
            and (subtype is None or p.subtype == subtype)
            and (label is None or p.name == label)
        ]

    @property
    def ota_apps(self) -> list[Partition]:
        """``ota_N`` app partitions ordered by slot number."""
        return sorted(
            (p for p in self.partitions if p.ota_slot is not None), key=lambda p: p.subtype
        )

    @property
    def flash_end(self) -> int:
        """The address the highest partition ends at."""
        return max((p.end for p in self.partitions), default=0)

    # -- rules --------------------------------------------------------------------------
    def verify(
        self,
        *,
        table_offset: int | None = None,
        flash_size: int | None = None,
        secure_v1: bool = False,
    ) -> None:
        """Table-wide rules of gen_esp32part's ``PartitionTable.verify``, plus flash fit."""
        for part in self.partitions:
            part.verify(secure_v1=secure_v1)

        seen: dict[str, Partition] = {}
        for part in self.partitions:
            if part.name in seen:
                first = seen[part.name]
                raise PartitionTableError(
                    f"{_where(part.line, part.name)}: partition name '{part.name}' is already "
                    f"used"
                    + (f" at line {first.line}" if first.line is not None else "")
                    + "; names must be unique"
                )
            seen[part.name] = part

        previous: Partition | None = None
        for part in sorted(self.partitions, key=lambda p: p.offset):
            fixed = _is_primary_fixed(part.type, part.subtype)
            if (
                table_offset is not None
                and not fixed
                and part.offset < (table_offset + TABLE_SECTOR_SIZE)
            ):
                raise PartitionTableError(
                    f"{_where(part.line, part.name)}: partition '{part.name}' offset "
                    f"0x{part.offset:x} is below 0x{table_offset + TABLE_SECTOR_SIZE:x}, the end "
                    "of the partition table sector"
                )
            if previous is not None and part.offset < previous.end:
                raise PartitionTableError(
                    f"{_where(part.line, part.name)}: partition '{part.name}' at "
                    f"0x{part.offset:x} overlaps '{previous.name}' "
                    f"(0x{previous.offset:x}-0x{previous.end - 1:x})"
                )
            previous = part

        for subtype, label in (
            (SUBTYPE_DATA_OTA, "otadata"),
            (SUBTYPE_DATA_TEE_OTA, "TEE otadata"),
        ):
            found = self.find(PartitionType.DATA, subtype)
            if len(found) > 1:
                raise PartitionTableError(
                    f"{_where(found[1].line, found[1].name)}: a second {label} partition "
                    f"('{found[1].name}'); only one data/{subtype_name(1, subtype)} partition "
                    "is allowed"
                )
            if found and found[0].size != OTADATA_SIZE:
                raise PartitionTableError(
                    f"{_where(found[0].line, found[0].name)}: {label} partition must have size "
                    f"0x{OTADATA_SIZE:x}, not 0x{found[0].size:x}"
                )

        if flash_size is not None and self.flash_end > flash_size:
            raise PartitionTableError(
                f"partitions end at 0x{self.flash_end:x}, beyond the flash size "
                f"0x{flash_size:x} ({flash_size // 0x100000} MB)"
            )

    def _name_warnings(self) -> tuple[str, ...]:
        """gen_esp32part warns when a label is a type/subtype keyword of another kind."""
        out = []
        all_subtypes = {n for names in SUBTYPE_NAMES.values() for n in names}
        for p in self.partitions:
            if p.name in TYPE_NAMES and TYPE_NAMES[p.name] != p.type:
                out.append(
                    f"{_where(p.line, p.name)}: label '{p.name}' is the name of another "
                    "partition type"
                )
            elif p.name in all_subtypes and SUBTYPE_NAMES.get(p.type, {}).get(p.name) != (
                p.subtype
            ):
                out.append(
                    f"{_where(p.line, p.name)}: label '{p.name}' is the name of another subtype"
                )
        return tuple(out)
