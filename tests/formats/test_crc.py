import struct

from jumpstart.formats.crc import crc32, crc32_le


def test_check_values_of_both_variants() -> None:
    assert crc32_le(b"123456789") == 0xD202D277
    assert crc32(b"123456789") == 0xCBF43926


def test_rom_variant_of_zero_bytes_is_all_ones() -> None:
    assert crc32_le(bytes(32)) == 0xFFFFFFFF


def test_nvs_page_header_vectors() -> None:
    # CRC over header bytes 4..27: seq_number, version 0xFE, 19 reserved 0xFF bytes.
    assert crc32_le(struct.pack("<IB", 0, 0xFE) + b"\xff" * 19) == 0xB9BA2D84
    assert crc32_le(struct.pack("<IB", 1, 0xFE) + b"\xff" * 19) == 0x389F48A3


def test_nvs_item_vector() -> None:
    # Namespace entry "fctry" -> 1 from spec 1.5: CRC over bytes 0..3 and 8..31.
    item = bytes.fromhex("000101fff83781916663747279000000000000000000000001ffffffffffffff")
    assert crc32_le(item[:4] + item[8:]) == struct.unpack_from("<I", item, 4)[0] == 0x918137F8
