"""The two CRC-32 variants ESP-IDF uses, named once.

Both are the reflected CRC-32 with polynomial 0x04C11DB7. They differ in how the register is
seeded, which is why they give different values for the same bytes:

* ``crc32_le`` is ``esp_rom_crc32_le(0xFFFFFFFF, buf, len)``. The ROM helper inverts the value it
  is passed, so the register starts at 0; zlib inverts its ``value`` argument too, hence
  ``zlib.crc32(buf, 0xFFFFFFFF)``. Used by NVS (page headers, items, payloads), otadata and the
  nvs_keys partition. Check value: ``crc32_le(b"123456789") == 0xD202D277``.
* ``crc32`` is the standard CRC-32 (``zlib.crc32(buf)``, check value 0xCBF43926). Used by the
  Secure Boot V2 signature block.
"""

from __future__ import annotations

import zlib

__all__ = ["crc32", "crc32_le"]


def crc32_le(data: bytes) -> int:
    """ESP-IDF's ``esp_rom_crc32_le(0xFFFFFFFF, data, len)`` (NVS, otadata, nvs_keys)."""
    return zlib.crc32(data, 0xFFFFFFFF)


def crc32(data: bytes) -> int:
    """The standard CRC-32 (Secure Boot V2 signature block)."""
    return zlib.crc32(data)
