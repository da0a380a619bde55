"""The ``esp_secure_cert`` partition in its TLV format (espressif/esp_secure_cert_mgr,
``cust_flash_tlv``): where Espressif's current products (RainMaker, Matter) keep a device's
certificate, key and CA.

Each entry, little-endian, 16-byte aligned, back to back from offset 0::

    magic u32 0xBA5EBA11 | flags u8 | reserved 3 x 00 | type u8 | subtype u8 | length u16
    value (length bytes) | 00 padding to a multiple of 16 | crc u32

The CRC covers header, value and padding: ``zlib.crc32(data, 0xFFFFFFFF)`` (the component's
``esp_crc32_le(UINT32_MAX, ...)``; not the standard CRC-32). The list ends at the first word
that is not the magic (erased flash). PEM values are stored with their NUL, so a reader hands
``(value, length)`` to mbedTLS as is. The current tool appends an INTEGRITY entry: the SHA-256
of every byte before it.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from jumpstart.errors import InputError

__all__ = [
    "PARTITION_LABEL",
    "PARTITION_SIZE",
    "PARTITION_TYPE",
    "SecureCertEntry",
    "TlvType",
    "build_partition",
    "find_entry",
    "parse_partition",
]

MAGIC = 0xBA5EBA11
PARTITION_LABEL = "esp_secure_cert"
PARTITION_TYPE = 0x3F  # a custom type; the component finds it by label, any subtype
PARTITION_SIZE = 0x2000  # "TLV format uses compact data representation": 8 KiB
ALIGNMENT = 16
_HEADER = struct.Struct("<IB3sBBH")
_FOOTER = struct.Struct("<I")
_CRC_SEED = 0xFFFFFFFF
INTEGRITY_LENGTH = 32  # SHA-256


class TlvType(IntEnum):
    """``esp_secure_cert_tlv_type_t``."""

    CA_CERT = 0
    DEV_CERT = 1
    PRIV_KEY = 2
    DS_DATA = 3
    DS_CONTEXT = 4
    HMAC_ECDSA_KEY_SALT = 5
    SEC_CFG = 6
    TEE_SEC_STORAGE_KEY = 7
    SIGNATURE_BLOCK = 8
    INTEGRITY = 9
    USER_DATA_1 = 51
    USER_DATA_2 = 52
    USER_DATA_3 = 53
    USER_DATA_4 = 54
    USER_DATA_5 = 55


@dataclass(frozen=True, slots=True)
class SecureCertEntry:
    type: int
    value: bytes
    subtype: int = 0
    flags: int = 0  # 0: a plain value (no HMAC encryption, no key in eFuse)


def _crc(data: bytes) -> int:
    return zlib.crc32(data, _CRC_SEED) & 0xFFFFFFFF


def encode_entry(entry: SecureCertEntry) -> bytes:
    if len(entry.value) > 0xFFFF:
        raise InputError(f"TLV type {entry.type}: {len(entry.value)} bytes, at most 65535")
    header = _HEADER.pack(
        MAGIC, entry.flags, b"\x00" * 3, entry.type, entry.subtype, len(entry.value)
    )
    body = header + entry.value + b"\x00" * (-len(entry.value) % ALIGNMENT)
    return body + _FOOTER.pack(_crc(body))


def build_partition(
    entries: list[SecureCertEntry], *, integrity: bool = True, size: int = PARTITION_SIZE
) -> bytes:
    """The partition's used bytes, as configure_esp_secure_cert.py writes them (erased flash
    after them ends the list); with ``integrity`` the SHA-256 entry last."""
    data = b"".join(encode_entry(entry) for entry in entries)
    if integrity:
        data += encode_entry(SecureCertEntry(TlvType.INTEGRITY, hashlib.sha256(data).digest()))
    if len(data) > size:
        raise InputError(f"esp_secure_cert: {len(data)} bytes do not fit the {size}-byte partition")
    return data


def parse_partition(data: bytes) -> list[SecureCertEntry]:
    """Every entry up to the first word that is not the magic; a bad CRC, a truncated entry
    or an INTEGRITY entry that does not match is an InputError."""
    entries = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        magic, flags, _reserved, kind, subtype, length = _HEADER.unpack_from(data, offset)
        if magic != MAGIC:
            break
        padded = length + (-length % ALIGNMENT)
        end = offset + _HEADER.size + padded
        if end + _FOOTER.size > len(data):
            raise InputError(f"esp_secure_cert: the entry at 0x{offset:x} runs past the end")
        (crc,) = _FOOTER.unpack_from(data, end)
        if crc != _crc(data[offset:end]):
            raise InputError(f"esp_secure_cert: CRC mismatch in the entry at 0x{offset:x}")
        value = data[offset + _HEADER.size : offset + _HEADER.size + length]
        if kind == TlvType.INTEGRITY and (
            length != INTEGRITY_LENGTH or value != hashlib.sha256(data[:offset]).digest()
        ):
            raise InputError(f"esp_secure_cert: the integrity entry at 0x{offset:x} fails")
        entries.append(SecureCertEntry(kind, value, subtype, flags))
        offset = end + _FOOTER.size
    return entries


def find_entry(entries: list[SecureCertEntry], kind: int, subtype: int = 0) -> bytes | None:
    """``esp_secure_cert_tlv_get_addr``: the first entry of that type and subtype."""
    for entry in entries:
        if entry.type == kind and entry.subtype == subtype:
            return entry.value
    return None
