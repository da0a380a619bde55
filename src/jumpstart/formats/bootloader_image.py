"""The second-stage bootloader image: ESP-IDF's image format with ``esp_bootloader_desc_t``.

ESP32 puts it at flash offset 0x1000 (``ESP_PRIMARY_BOOTLOADER_OFFSET``); the ROM loads its
segments into internal RAM (the DRAM segment at 0x3FFF0000 first) and jumps to the entry.
Its DRAM segment begins with the 80-byte ``esp_bootloader_desc_t``
(``components/esp_bootloader_format/include/esp_bootloader_desc.h``), which ``esptool
image-info`` prints::

    0  u8 magic 0x50   1 reserved[2]   3 u8 secure_version   4 u32 version
    8  char idf_ver[32]   40 char date_time[24]   64 reserved2[16]

The bootloader's behaviour is this package's ``idf.bootloader``; the image carries its identity
and version, and is what the ROM checks (checksum, SHA-256 and, with secure boot, the
signature) before it runs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from jumpstart.formats.app_image import AppImage, ImageError, ImageHeader, Segment

__all__ = [
    "BOOTLOADER_DESC_MAGIC",
    "BOOTLOADER_OFFSET",
    "BootloaderDescription",
    "bootloader_description",
    "build_bootloader",
]

BOOTLOADER_OFFSET = 0x1000  # ESP_PRIMARY_BOOTLOADER_OFFSET on ESP32
BOOTLOADER_DESC_MAGIC = 0x50
DESC_FORMAT = struct.Struct("<BxxBI32s24s16x")
DRAM_LOAD_ADDR = 0x3FFF0030  # the bootloader's dram_seg, after the ROM's own use
IRAM_LOAD_ADDR = 0x40078000  # iram_loader_seg
ENTRY_ADDR = 0x40080400  # call_start_cpu0 in iram_seg
# What the IRAM segment holds: the bootloader's code is this package's idf.bootloader.
CODE_MARKER = b"jumpstart second stage bootloader: idf.bootloader (ESP-IDF v5.5 rules)\0"


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


@dataclass(frozen=True)
class BootloaderDescription:
    """``esp_bootloader_desc_t``."""

    version: int
    idf_ver: str
    date_time: str
    secure_version: int = 0

    def to_bytes(self) -> bytes:
        for text, size, what in ((self.idf_ver, 32, "idf_ver"), (self.date_time, 24, "date_time")):
            if len(text.encode()) >= size:
                raise ValueError(f"{what} {text!r} is longer than {size - 1} bytes")
        return DESC_FORMAT.pack(
            BOOTLOADER_DESC_MAGIC,
            self.secure_version,
            self.version,
            self.idf_ver.encode(),
            self.date_time.encode(),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> BootloaderDescription | None:
        if len(data) < DESC_FORMAT.size or data[0] != BOOTLOADER_DESC_MAGIC:
            return None
        _, secure_version, version, idf_ver, date_time = DESC_FORMAT.unpack_from(data)
        return cls(version, _cstr(idf_ver), _cstr(date_time), secure_version)


def build_bootloader(
    description: BootloaderDescription,
    *,
    header: ImageHeader | None = None,
    dram_addr: int = DRAM_LOAD_ADDR,
    iram_addr: int = IRAM_LOAD_ADDR,
) -> bytes:
    """A bootloader image: a DRAM segment starting with the description, an IRAM segment,
    checksum and appended SHA-256, as ``idf.py bootloader`` leaves ``bootloader.bin``
    (another ``header`` and addresses: ESP8266_RTOS_SDK's, with its 8-byte header)."""
    header = header or ImageHeader(segment_count=2, entry_addr=ENTRY_ADDR)
    segments = [
        Segment(dram_addr, description.to_bytes()),
        Segment(iram_addr, CODE_MARKER),
    ]
    return AppImage.build(segments, header=header).to_bytes()


def bootloader_description(image: AppImage) -> BootloaderDescription:
    """The description of a bootloader image (ImageError when it carries none)."""
    for segment in image.segments:
        if "DRAM" in segment.memory_types:
            found = BootloaderDescription.from_bytes(segment.data)
            if found is not None:
                return found
    raise ImageError("no bootloader description (esp_bootloader_desc_t) in a DRAM segment")
