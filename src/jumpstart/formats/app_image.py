"""ESP-IDF app images: header, extended header, segments, checksum, SHA-256, ``esp_app_desc_t``.

Spec section 5 (``esp_app_format.h``, ``esp_image_format.c``, esptool ``bin_image.py``)::

    0   esp_image_header_t (8 bytes): magic E9, segment_count, spi_mode, spi_speed|spi_size<<4,
        u32 entry_addr
    8   extended header (16 bytes): wp_pin, spi_pin_drv[3], u16 chip_id, min_chip_rev,
        u16 min_chip_rev_full, u16 max_chip_rev_full, reserved[4], hash_appended
    24  segments: {u32 load_addr, u32 data_len} + data, ``segment_count`` times
        zero padding so that the checksum byte ends a 16-byte block; the checksum is 0xEF
        XOR every byte of every segment's data
        [SHA-256 of everything from byte 0 through the checksum byte, if hash_appended]

An app's first segment is flash-mapped read-only data (DROM) that begins with the 256-byte
``esp_app_desc_t``; its data therefore starts at image offset 0x20.

ESP8266_RTOS_SDK v3 images (``esptool --chip esp8266 elf2image --version 3``) have the same
layout with the 8-byte header only: no extended header, flash segments first, checksum, and a
SHA-256 always appended; the app description then starts at image offset 0x10 (where the SDK's
``esp_ota_get_partition_description`` reads it). The header bytes cannot tell the two apart,
so the chip says which it is (``extended_header``).

Parsing is tolerant of a wrong checksum or hash (``image-info`` reports them);
:meth:`AppImage.verify` is what the bootloader does before it runs an image.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum

from jumpstart.errors import InputError

__all__ = [
    "APP_DESC_MAGIC",
    "APP_DESC_SIZE",
    "IMAGE_MAGIC",
    "AppDescription",
    "AppImage",
    "ChipId",
    "FlashMode",
    "ImageError",
    "ImageHeader",
    "Segment",
    "app_desc_offset",
    "image_span",
]

IMAGE_MAGIC = 0xE9
HEADER_FORMAT = struct.Struct("<BBBBI")  # esp_image_header_t, first 8 bytes
EXTENDED_HEADER_FORMAT = struct.Struct("<B3sHBHH4sB")  # the remaining 16 bytes
HEADER_SIZE = HEADER_FORMAT.size + EXTENDED_HEADER_FORMAT.size  # 24
SHORT_HEADER_SIZE = HEADER_FORMAT.size  # 8: ESP8266 V3, no extended header
SEGMENT_HEADER_FORMAT = struct.Struct("<II")
SEGMENT_HEADER_SIZE = SEGMENT_HEADER_FORMAT.size
# ESP_IMAGE_MAX_SEGMENTS
MAX_SEGMENTS = 16
CHECKSUM_SEED = 0xEF
# The checksum byte is the last byte of a 16-byte-aligned block.
CHECKSUM_ALIGN = 16
DIGEST_SIZE = 32
WP_PIN_DISABLED = 0xEE

APP_DESC_MAGIC = 0xABCD5432
APP_DESC_SIZE = 256
# esp_app_desc_t: magic, secure_version, reserv1[2], version[32], project_name[32], time[16],
# date[16], idf_ver[32], app_elf_sha256[32], min/max_efuse_blk_rev_full, mmu_page_size (log2,
# since v5.5), spi_flash_mode (v6.1), reserv3[2], reserv2[18 words]
APP_DESC_FORMAT = struct.Struct("<II8s32s32s16s16s32s32sHHBB2s72s")
# Offset of the app description in the image: header (24) + first segment header (8).
APP_DESC_OFFSET = HEADER_SIZE + SEGMENT_HEADER_SIZE


def app_desc_offset(extended_header: bool = True) -> int:
    """Where ``esp_app_desc_t`` starts in an image: 0x20 on ESP32, 0x10 on ESP8266."""
    return (HEADER_SIZE if extended_header else SHORT_HEADER_SIZE) + SEGMENT_HEADER_SIZE


# ESP32 address map of flash-mapped segments (esptool targets/esp32.py).
ESP32_DROM = (0x3F400000, 0x3F800000)
ESP32_IROM = (0x400D0000, 0x40400000)
MMU_PAGE_SIZE = 0x10000
APP_DESC_LOAD_ADDR = ESP32_DROM[0] + APP_DESC_OFFSET  # 0x3F400020
DEFAULT_ENTRY_ADDR = 0x40080000  # start of ESP32 IRAM


class ChipId(IntEnum):
    """``esp_chip_id_t`` in the extended header (ESP8266, which has none, gets a value of
    its own so the chip id still says which chip an image is for)."""

    ESP8266 = 0xFFFF  # no extended header: never stored
    ESP32 = 0x0000
    ESP32S2 = 0x0002
    ESP32C3 = 0x0005
    ESP32S3 = 0x0009
    ESP32C2 = 0x000C
    ESP32C6 = 0x000D
    ESP32H2 = 0x0010
    ESP32P4 = 0x0012
    ESP32C61 = 0x0014
    ESP32C5 = 0x0017


class FlashMode(IntEnum):
    """``esp_image_spi_mode_t``."""

    QIO = 0
    QOUT = 1
    DIO = 2
    DOUT = 3
    FAST_READ = 4
    SLOW_READ = 5


# spi_size nibble -> bytes (ESP_IMAGE_FLASH_SIZE_1MB = 0 ... 128MB = 7)
FLASH_SIZES = {n: (1 << n) * 0x100000 for n in range(8)}
# ESP32 spi_speed nibble -> label (esptool targets/esp32.py FLASH_FREQUENCY)
ESP32_FLASH_FREQS = {0x0: "40m", 0x1: "26m", 0x2: "20m", 0xF: "80m"}


class ImageError(InputError):
    """An app image is malformed or fails verification."""


def _cstr(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace")


def _fixed(text: str, size: int, what: str) -> bytes:
    raw = text.encode()
    if len(raw) >= size:
        raise ValueError(f"{what} '{text}' is {len(raw)} bytes; at most {size - 1} fit")
    return raw.ljust(size, b"\x00")


@dataclass(frozen=True, slots=True)
class AppDescription:
    """``esp_app_desc_t``: what ``esp_app_get_description()`` returns."""

    project_name: str
    version: str
    time: str = "00:00:00"
    date: str = "Jan  1 2026"
    idf_ver: str = "v5.5"
    secure_version: int = 0
    app_elf_sha256: bytes = bytes(32)
    min_efuse_blk_rev_full: int = 0
    max_efuse_blk_rev_full: int = 0xFFFF
    mmu_page_size_log2: int = 16

    def to_bytes(self) -> bytes:
        if len(self.app_elf_sha256) != DIGEST_SIZE:
            raise ValueError("app_elf_sha256 must be 32 bytes")
        return APP_DESC_FORMAT.pack(
            APP_DESC_MAGIC,
            self.secure_version,
            bytes(8),
            _fixed(self.version, 32, "version"),
            _fixed(self.project_name, 32, "project name"),
            _fixed(self.time, 16, "time"),
            _fixed(self.date, 16, "date"),
            _fixed(self.idf_ver, 32, "IDF version"),
            self.app_elf_sha256,
            self.min_efuse_blk_rev_full,
            self.max_efuse_blk_rev_full,
            self.mmu_page_size_log2,
            0,
            bytes(2),
            bytes(72),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AppDescription:
        if len(data) < APP_DESC_SIZE:
            raise ImageError(f"app description needs {APP_DESC_SIZE} bytes, got {len(data)}")
        (
            magic,
            secure_version,
            _r1,
            version,
            name,
            time,
            date,
            idf_ver,
            elf_sha,
            min_rev,
            max_rev,
            mmu_log2,
            _mode,
            _r3,
            _r2,
        ) = APP_DESC_FORMAT.unpack(data[:APP_DESC_SIZE])
        if magic != APP_DESC_MAGIC:
            raise ImageError(
                f"no app description: magic 0x{magic:08x}, expected 0x{APP_DESC_MAGIC:08x}"
            )
        return cls(
            project_name=_cstr(name),
            version=_cstr(version),
            time=_cstr(time),
            date=_cstr(date),
            idf_ver=_cstr(idf_ver),
            secure_version=secure_version,
            app_elf_sha256=elf_sha,
            min_efuse_blk_rev_full=min_rev,
            max_efuse_blk_rev_full=max_rev,
            mmu_page_size_log2=mmu_log2,
        )


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """``esp_image_header_t`` incl. the extended header (24 bytes); ``extended=False`` is the
    ESP8266's 8-byte header (its image always carries a SHA-256)."""

    segment_count: int
    flash_mode: int = FlashMode.DIO
    flash_speed: int = 0x0  # 40m on ESP32
    flash_size: int = 0x2  # 4MB
    entry_addr: int = DEFAULT_ENTRY_ADDR
    wp_pin: int = WP_PIN_DISABLED
    spi_pin_drv: bytes = bytes(3)
    chip_id: int = ChipId.ESP32
    min_chip_rev: int = 0
    min_chip_rev_full: int = 0
    max_chip_rev_full: int = 399  # v3.99: the ESP32 revisions an IDF v5 app accepts
    reserved: bytes = bytes(4)
    hash_appended: bool = True
    extended: bool = True

    @property
    def size(self) -> int:
        return HEADER_SIZE if self.extended else SHORT_HEADER_SIZE

    def to_bytes(self) -> bytes:
        common = HEADER_FORMAT.pack(
            IMAGE_MAGIC,
            self.segment_count,
            self.flash_mode,
            (self.flash_size << 4) | self.flash_speed,
            self.entry_addr,
        )
        if not self.extended:
            return common
        return HEADER_FORMAT.pack(
            IMAGE_MAGIC,
            self.segment_count,
            self.flash_mode,
            (self.flash_size << 4) | self.flash_speed,
            self.entry_addr,
        ) + EXTENDED_HEADER_FORMAT.pack(
            self.wp_pin,
            self.spi_pin_drv,
            self.chip_id,
            self.min_chip_rev,
            self.min_chip_rev_full,
            self.max_chip_rev_full,
            self.reserved,
            1 if self.hash_appended else 0,
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, extended: bool = True) -> ImageHeader:
        size = HEADER_SIZE if extended else SHORT_HEADER_SIZE
        if len(data) < size:
            raise ImageError(f"image is {len(data)} bytes, shorter than its {size}-byte header")
        magic, count, mode, size_speed, entry = HEADER_FORMAT.unpack(data[:8])
        if magic != IMAGE_MAGIC:
            raise ImageError(
                f"not an app image: invalid magic number 0x{magic:02x} "
                f"(expected 0x{IMAGE_MAGIC:02x})"
            )
        short = cls(
            segment_count=count,
            flash_mode=mode,
            flash_speed=size_speed & 0xF,
            flash_size=size_speed >> 4,
            entry_addr=entry,
            chip_id=ChipId.ESP8266,
            extended=False,
        )
        if not extended:
            return short
        wp, drv, chip, min_rev, min_full, max_full, reserved, hash_appended = (
            EXTENDED_HEADER_FORMAT.unpack(data[8:HEADER_SIZE])
        )
        if hash_appended not in (0, 1):
            raise ImageError(f"invalid hash_appended byte 0x{hash_appended:02x} (must be 0 or 1)")
        return replace(
            short,
            extended=True,
            wp_pin=wp,
            spi_pin_drv=drv,
            chip_id=chip,
            min_chip_rev=min_rev,
            min_chip_rev_full=min_full,
            max_chip_rev_full=max_full,
            reserved=reserved,
            hash_appended=bool(hash_appended),
        )


@dataclass(frozen=True, slots=True)
class Segment:
    """One loadable segment: where it goes and what it holds."""

    load_addr: int
    data: bytes

    @property
    def memory_types(self) -> list[str]:
        """Names of the ESP32 regions the load address falls in (as esptool prints them)."""
        regions = (
            ("DROM", ESP32_DROM),
            ("IROM", ESP32_IROM),
            ("DRAM", (0x3FFAE000, 0x40000000)),
            ("IRAM", (0x40070000, 0x400A0000)),
            ("RTC_IRAM", (0x400C0000, 0x400C2000)),
            ("RTC_DRAM", (0x3FF80000, 0x3FF82000)),
            ("RTC_DATA", (0x50000000, 0x50002000)),
        )
        return [name for name, (lo, hi) in regions if lo <= self.load_addr < hi]

    @property
    def flash_mapped(self) -> bool:
        return any(lo <= self.load_addr < hi for lo, hi in (ESP32_DROM, ESP32_IROM))


def image_checksum(segments: Sequence[Segment]) -> int:
    """0xEF XOR every byte of every segment's data."""
    value = CHECKSUM_SEED
    for segment in segments:
        data = segment.data
        # XOR of a byte string, 8 bytes at a time, folded to one byte at the end.
        whole = len(data) - len(data) % 8
        acc = 0
        for (word,) in struct.iter_unpack("<Q", data[:whole]):
            acc ^= word
        for byte in data[whole:]:
            value ^= byte
        while acc:
            value ^= acc & 0xFF
            acc >>= 8
    return value


def image_span(
    read: Callable[[int, int], bytes], limit: int, *, extended_header: bool = True
) -> int:
    """Bytes an image occupies (through checksum and digest), reading only its headers.

    ``read(offset, length)`` reads the medium (a partition); ``limit`` is its size. This is how
    the bootloader avoids reading a whole 1.6 MB slot to verify a small image.
    """
    size = HEADER_SIZE if extended_header else SHORT_HEADER_SIZE
    header = ImageHeader.from_bytes(read(0, size), extended=extended_header)
    if not 1 <= header.segment_count <= MAX_SEGMENTS:
        raise ImageError(f"segment count {header.segment_count} is outside 1..{MAX_SEGMENTS}")
    offset = size
    for index in range(header.segment_count):
        if offset + SEGMENT_HEADER_SIZE > limit:
            raise ImageError(f"segment {index} header lies beyond the end of the partition")
        _, length = SEGMENT_HEADER_FORMAT.unpack(read(offset, SEGMENT_HEADER_SIZE))
        offset += SEGMENT_HEADER_SIZE + length
    end = offset + (CHECKSUM_ALIGN - 1 - offset % CHECKSUM_ALIGN) + 1
    end += DIGEST_SIZE if header.hash_appended else 0
    if end > limit:
        raise ImageError(f"the image needs 0x{end:x} bytes; the partition holds 0x{limit:x}")
    return end


@dataclass(frozen=True, slots=True)
class AppImage:
    """A parsed (or built) app image; stored checksum and digest are kept as found."""

    header: ImageHeader
    segments: tuple[Segment, ...]
    checksum: int
    digest: bytes | None
    segment_offsets: tuple[int, ...] = field(default=(), compare=False)
    """File offset of each segment header (as image-info prints it)."""
    length: int = field(default=0, compare=False)
    """Bytes from the start of the image through the checksum and appended hash."""
    raw: bytes = field(default=b"", compare=False, repr=False)
    """The image bytes as parsed, through the checksum byte (what the digest covers)."""

    # -- build --------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        segments: Sequence[Segment],
        *,
        header: ImageHeader | None = None,
    ) -> AppImage:
        """An image with a correct checksum and (if the header asks) digest."""
        if not 1 <= len(segments) <= MAX_SEGMENTS:
            raise ValueError(f"an image has 1..{MAX_SEGMENTS} segments, not {len(segments)}")
        padded = tuple(Segment(s.load_addr, s.data + bytes(-len(s.data) % 4)) for s in segments)
        head = ImageHeader(segment_count=len(padded)) if header is None else header
        if head.segment_count != len(padded):
            head = replace(head, segment_count=len(padded))
        image = cls(head, padded, image_checksum(padded), None)
        raw = image._body()
        digest = hashlib.sha256(raw).digest() if head.hash_appended else None
        return cls.parse(raw + (digest or b""), extended_header=head.extended)

    @classmethod
    def build_app(
        cls,
        description: AppDescription,
        payload: bytes,
        *,
        header: ImageHeader | None = None,
        load_addr: int = APP_DESC_LOAD_ADDR,
    ) -> AppImage:
        """An app image whose single flash-mapped segment (DROM on ESP32) is the app
        description and the payload."""
        return cls.build([Segment(load_addr, description.to_bytes() + payload)], header=header)

    def _body(self) -> bytes:
        """Header, segments, padding and checksum byte (what the digest covers)."""
        parts = [self.header.to_bytes()]
        for segment in self.segments:
            parts.append(SEGMENT_HEADER_FORMAT.pack(segment.load_addr, len(segment.data)))
            parts.append(segment.data)
        size = sum(len(p) for p in parts)
        parts.append(bytes(CHECKSUM_ALIGN - 1 - size % CHECKSUM_ALIGN))
        parts.append(bytes([self.checksum]))
        return b"".join(parts)

    def to_bytes(self) -> bytes:
        """The image as stored (digest appended when the header says so)."""
        return (self.raw or self._body()) + (self.digest or b"")

    # -- parse --------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes, *, extended_header: bool = True) -> AppImage:
        """Parse the image at the start of ``data`` (trailing bytes are ignored);
        ``extended_header=False`` for an ESP8266 image."""
        data = bytes(data)
        header = ImageHeader.from_bytes(data, extended=extended_header)
        if header.segment_count > MAX_SEGMENTS:
            raise ImageError(
                f"image header claims {header.segment_count} segments; at most {MAX_SEGMENTS}"
            )
        pos = header.size
        segments: list[Segment] = []
        offsets: list[int] = []
        for index in range(header.segment_count):
            if pos + SEGMENT_HEADER_SIZE > len(data):
                raise ImageError(
                    f"image truncated: segment {index} header at 0x{pos:x} is past the end "
                    f"(0x{len(data):x} bytes)"
                )
            load_addr, length = SEGMENT_HEADER_FORMAT.unpack_from(data, pos)
            if pos + SEGMENT_HEADER_SIZE + length > len(data):
                raise ImageError(
                    f"image truncated: segment {index} at 0x{pos:x} claims 0x{length:x} bytes but "
                    f"only 0x{len(data) - pos - SEGMENT_HEADER_SIZE:x} follow"
                )
            offsets.append(pos)
            pos += SEGMENT_HEADER_SIZE
            segments.append(Segment(load_addr, data[pos : pos + length]))
            pos += length
        checksum_pos = pos + CHECKSUM_ALIGN - 1 - pos % CHECKSUM_ALIGN
        if checksum_pos >= len(data):
            raise ImageError(f"image truncated: no checksum byte at 0x{checksum_pos:x}")
        end = checksum_pos + 1
        digest: bytes | None = None
        if header.hash_appended:
            if end + DIGEST_SIZE > len(data):
                raise ImageError(f"image truncated: no SHA-256 digest at 0x{end:x}")
            digest = data[end : end + DIGEST_SIZE]
            end += DIGEST_SIZE
        return cls(
            header,
            tuple(segments),
            data[checksum_pos],
            digest,
            tuple(offsets),
            end,
            data[: checksum_pos + 1],
        )

    # -- checks -------------------------------------------------------------------------
    @property
    def calculated_checksum(self) -> int:
        return image_checksum(self.segments)

    @property
    def checksum_valid(self) -> bool:
        return self.checksum == self.calculated_checksum

    @property
    def calculated_digest(self) -> bytes:
        """SHA-256 of the bytes as stored (padding included), or as built."""
        return hashlib.sha256(self.raw or self._body()).digest()

    @property
    def digest_valid(self) -> bool | None:
        """None when the image carries no digest."""
        if self.digest is None:
            return None
        return self.digest == self.calculated_digest

    @property
    def app_description(self) -> AppDescription | None:
        """The ``esp_app_desc_t`` at the start of the first segment, if there is one."""
        if not self.segments or len(self.segments[0].data) < APP_DESC_SIZE:
            return None
        try:
            return AppDescription.from_bytes(self.segments[0].data)
        except ImageError:
            return None

    @property
    def payload(self) -> bytes:
        """The first segment's bytes after the app description (what ``build_app`` stored)."""
        return self.segments[0].data[APP_DESC_SIZE:] if self.segments else b""

    def verify(self, *, chip_id: int = ChipId.ESP32, require_app: bool = True) -> None:
        """The bootloader's checks (``esp_image_verify``); raise :class:`ImageError` on failure."""
        if self.header.chip_id != chip_id:
            raise ImageError(
                f"image is for chip id 0x{self.header.chip_id:04x}, this device is 0x{chip_id:04x}"
            )
        for index, (segment, offset) in enumerate(
            zip(self.segments, self.segment_offsets, strict=True)
        ):
            if len(segment.data) % 4:
                raise ImageError(
                    f"segment {index} length 0x{len(segment.data):x} is not a multiple of 4"
                )
            data_offset = offset + SEGMENT_HEADER_SIZE
            # ESP32's cache maps 64 KiB pages; ESP8266's maps the app's whole 1 MB window.
            mapped = segment.flash_mapped and self.header.extended
            if mapped and (data_offset % MMU_PAGE_SIZE) != (segment.load_addr % MMU_PAGE_SIZE):
                raise ImageError(
                    f"segment {index} at 0x{segment.load_addr:08x} is flash-mapped but its data "
                    f"at file offset 0x{data_offset:x} is not aligned to the 64 KiB MMU page"
                )
        if not self.checksum_valid:
            raise ImageError(
                f"checksum mismatch: stored 0x{self.checksum:02x}, calculated "
                f"0x{self.calculated_checksum:02x}"
            )
        if self.digest is not None and not self.digest_valid:
            raise ImageError(
                f"SHA-256 mismatch: stored {self.digest.hex()}, calculated "
                f"{self.calculated_digest.hex()}"
            )
        if require_app and self.app_description is None:
            raise ImageError(
                "no app description (esp_app_desc_t) at the start of the first segment"
            )
