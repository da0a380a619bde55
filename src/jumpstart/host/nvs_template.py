"""Factory NVS images in bulk: the layout is computed once, each device only pours in values.

A manufacturing run writes thousands of images that share one list of keys and differ only in
their values (serial numbers, certificates, PoPs). Where every item lands depends on the keys,
the types and the payload *lengths*, never on the payload bytes, so one image built by
:class:`~jumpstart.host.nvs_gen.NvsImageBuilder` serves as a template: for the next device only
the value bytes, their data CRCs and the entry CRCs change. Images are byte-identical to what the
builder (and so ``nvs_partition_gen``) writes for the same values; a value whose length differs
gets a template of its own.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jumpstart.errors import InputError
from jumpstart.formats.nvs import ENTRY_SIZE, INTEGER_STRUCTS, FormatVersion, ItemType
from jumpstart.host.nvs_gen import NvsImageBuilder, NvsSize

__all__ = ["FactoryField", "FactoryValue", "NvsImageBatch", "NvsImageTemplate"]

FactoryValue = int | str | bytes

# Item layout (spec 1.4): CRC32 at 4..8 covers bytes 0..4 and 8..32; a variable item's data field
# holds size u16, reserved u16, then the payload CRC32 at 28.
_ITEM_CRC = 4
_ITEM_AFTER_CRC = 8
_ITEM_DATA = 24
_ITEM_DATA_CRC = 28
_CRC_SEED = 0xFFFFFFFF  # crc32_le, see jumpstart.formats.crc

_pack_u32 = struct.Struct("<I").pack
_crc32 = zlib.crc32


@dataclass(frozen=True)
class FactoryField:
    """One key of a factory image: an integer type, ``SZ`` (text) or ``BLOB`` (bytes)."""

    namespace: str
    key: str
    type: ItemType

    def __post_init__(self) -> None:
        if self.type not in INTEGER_STRUCTS and self.type not in (ItemType.SZ, ItemType.BLOB):
            raise InputError(f"{self.key}: a factory field is an integer, SZ or BLOB type")


def _text(field: FactoryField, value: FactoryValue) -> str:
    if not isinstance(value, str):
        raise InputError(f"{field.key}: expected text, got {type(value).__name__}")
    return value


def _bytes(field: FactoryField, value: FactoryValue) -> bytes:
    if not isinstance(value, bytes):
        raise InputError(f"{field.key}: expected bytes, got {type(value).__name__}")
    return value


class LayoutChangedError(Exception):
    """A value's length differs from the template's, so items would land elsewhere."""


def _fixed_crc(image: bytes, at: int, upto: int) -> int:
    """The CRC state after the entry bytes that do not change between devices.

    The entry CRC runs over bytes 0..4 and then 8..32; everything before ``upto`` (namespace,
    type, span, chunk index, key, and for payload headers the size) is fixed by the layout, so
    the CRC is resumed from here for each device instead of recomputed.
    """
    head = _crc32(image[at : at + _ITEM_CRC], _CRC_SEED)
    return _crc32(image[at + _ITEM_AFTER_CRC : at + upto], head)


# A filler appends one field's bytes to the image being assembled: the parts of its entries that
# vary (CRCs, data fields, payloads) interleaved with the fixed bytes up to the next field.
_Filler = Callable[[list[bytes], FactoryValue], None]


def _integer_filler(field: FactoryField, image: bytes, at: int, end: int) -> _Filler:
    """Fill the entry at ``at`` from its CRC field on; the fixed bytes after it run up to
    ``end``, which is the next field's first CRC field."""
    pack = INTEGER_STRUCTS[field.type].pack
    # Unused bytes of the 8-byte data field stay 0xFF (pack_integer).
    padding = b"\xff" * (8 - INTEGER_STRUCTS[field.type].size)
    fixed = _fixed_crc(image, at, _ITEM_DATA)
    key = image[at + _ITEM_AFTER_CRC : at + _ITEM_DATA]
    after = image[at + ENTRY_SIZE : end]

    def fill(parts: list[bytes], value: FactoryValue) -> None:
        try:
            data = pack(value) + padding
        except struct.error:
            raise InputError(
                f"{field.key}: {value!r} does not fit type {field.type.name.lower()}"
            ) from None
        parts += (_pack_u32(_crc32(data, fixed)), key, data, after)

    return fill


def _payload_filler(
    field: FactoryField, image: bytes, chunks: list[tuple[int, int, int]], end: int
) -> _Filler:
    """``chunks``: (header offset, start in payload, length) of each data chunk, whose bytes
    follow its header entry; the fixed bytes after the last one run up to ``end``."""
    # Each chunk is emitted from its header's CRC field to the next chunk's: the entry's first
    # four bytes (namespace, type, span, chunk index) are fixed and ride with the bytes before.
    total = sum(length for *_, length in chunks)
    text = field.type is ItemType.SZ
    plan = []
    for n, (header, start, length) in enumerate(chunks):
        data_end = header + ENTRY_SIZE + length
        until = chunks[n + 1][0] + _ITEM_CRC if n + 1 < len(chunks) else end
        plan.append(
            (
                _fixed_crc(image, header, _ITEM_DATA_CRC),
                image[header + _ITEM_AFTER_CRC : header + _ITEM_DATA_CRC],
                start,
                start + length,
                image[data_end:until],
            )
        )

    def fill(parts: list[bytes], value: FactoryValue) -> None:
        payload = _text(field, value).encode("utf-8") + b"\x00" if text else _bytes(field, value)
        if len(payload) != total:
            raise LayoutChangedError(field.key)
        for fixed, middle, start, stop, after in plan:
            chunk = payload[start:stop]
            data_crc = _pack_u32(_crc32(chunk, _CRC_SEED))
            parts += (_pack_u32(_crc32(data_crc, fixed)), middle, data_crc, chunk, after)

    return fill


class NvsImageTemplate:
    """A plain (unencrypted) image layout compiled from one set of sample values."""

    __slots__ = ("_fillers", "_head", "fields")

    def __init__(self, head: bytes, fields: Sequence[FactoryField], fillers: list[_Filler]):
        self._head = head
        self._fillers = fillers
        self.fields = tuple(fields)

    @classmethod
    def compile(
        cls,
        size: NvsSize,
        version: FormatVersion,
        fields: Sequence[FactoryField],
        sample: Sequence[FactoryValue],
    ) -> NvsImageTemplate:
        """Build the image for ``sample`` and remember where each value's bytes went."""
        if len(sample) != len(fields):
            raise InputError(f"{len(fields)} fields but {len(sample)} values")
        builder = NvsImageBuilder(size, version)
        # Per field, the offsets of its entries' CRC fields: one integer entry, or the
        # (header offset, start in payload, length) of each chunk of a string or blob.
        places: list[int | list[tuple[int, int, int]]] = []
        namespaces: dict[str, int] = {}
        for field, value in zip(fields, sample, strict=True):
            if field.namespace not in namespaces:
                namespaces[field.namespace] = builder.namespace(field.namespace)
            ns = namespaces[field.namespace]
            placements = builder.record_placements()
            if field.type is ItemType.SZ:
                builder.string(ns, field.key, _text(field, value))
            elif field.type is ItemType.BLOB:
                builder.blob(ns, field.key, _bytes(field, value))
            else:
                if not isinstance(value, int):
                    raise InputError(f"{field.key}: expected an integer, got {value!r}")
                builder.integer(ns, field.key, field.type, value)
                places.append(placements[0][0])
                continue
            # Strings and blobs are written as (header, payload) pairs, one per chunk; a v2 blob
            # ends with its BLOB_IDX, which depends only on the total length.
            chunks: list[tuple[int, int, int]] = []
            start = 0
            for (header, _), (_, length) in zip(placements[0::2], placements[1::2], strict=False):
                chunks.append((header, start, length))
                start += length
            places.append(chunks)
        image = builder.to_bytes()
        if not places:
            return cls(image, fields, [])
        firsts = [where if isinstance(where, int) else where[0][0] for where in places]
        ends = [*(first + _ITEM_CRC for first in firsts[1:]), len(image)]
        fillers = [
            _integer_filler(field, image, where, end)
            if isinstance(where, int)
            else _payload_filler(field, image, where, end)
            for field, where, end in zip(fields, places, ends, strict=True)
        ]
        # Everything before the first field's first CRC field is fixed.
        return cls(image[: firsts[0] + _ITEM_CRC], fields, fillers)

    def render(self, values: Sequence[FactoryValue]) -> bytes:
        """The image for ``values``; raises LayoutChangedError if a length differs."""
        if len(values) != len(self._fillers):
            raise InputError(f"{len(self._fillers)} fields but {len(values)} values")
        parts = [self._head]
        for fill, value in zip(self._fillers, values, strict=True):
            fill(parts, value)
        return b"".join(parts)


class NvsImageBatch:
    """Renders many devices' images for one field list, one template per distinct layout."""

    def __init__(
        self,
        size: NvsSize,
        fields: Sequence[FactoryField],
        version: FormatVersion = FormatVersion.V2,
    ) -> None:
        self.size = size
        self.version = version
        self.fields = tuple(fields)
        self._templates: dict[tuple[int, ...], NvsImageTemplate] = {}
        self._last: NvsImageTemplate | None = None

    def render(self, values: Sequence[FactoryValue]) -> bytes:
        """One device's image, byte-identical to a full build of the same values."""
        if self._last is not None:
            try:
                return self._last.render(values)
            except LayoutChangedError:
                pass
        shape = tuple(
            len(v.encode("utf-8")) if isinstance(v, str) else len(v) if isinstance(v, bytes) else -1
            for v in values
        )
        template = self._templates.get(shape)
        if template is None:
            template = NvsImageTemplate.compile(self.size, self.version, self.fields, values)
            self._templates[shape] = template
        self._last = template
        return template.render(values)
