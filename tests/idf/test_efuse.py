"""The device's esp_efuse API: fields by name, one-time bits, protections, ESP-IDF's errors."""

from __future__ import annotations

import pytest

from jumpstart.idf.efuse import VirtualEfuse
from jumpstart.idf.esp_err import EspErr, EspError

MAC = bytes.fromhex("240ac4010203")


def _code(call: object) -> int:
    with pytest.raises(EspError) as caught:
        call()  # type: ignore[operator]
    return int(caught.value.code)


def test_fields_by_name() -> None:
    efuse = VirtualEfuse(MAC)
    assert efuse.read_field_blob("MAC") == MAC[::-1]  # lowest bit first, as stored
    assert efuse.read_field_bit("CHIP_VER_REV1")
    assert efuse.read_field_cnt("FLASH_CRYPT_CNT") == 0
    assert _code(lambda: efuse.read_field_cnt("NOPE")) == EspErr.ESP_ERR_NOT_FOUND


def test_flash_crypt_cnt_advances_bit_by_bit_until_full() -> None:
    efuse = VirtualEfuse(MAC)
    efuse.write_field_cnt("FLASH_CRYPT_CNT", 1)
    assert efuse.read_field_cnt("FLASH_CRYPT_CNT") == 0b1
    assert efuse.flash_encryption  # an odd number of bits: on
    efuse.write_field_cnt("FLASH_CRYPT_CNT", 1)
    assert efuse.read_field_cnt("FLASH_CRYPT_CNT") == 0b11
    assert not efuse.flash_encryption  # even: off (development mode toggled it back)
    efuse.write_field_cnt("FLASH_CRYPT_CNT", 5)
    assert efuse.read_field_cnt("FLASH_CRYPT_CNT") == 0x7F
    code = _code(lambda: efuse.write_field_cnt("FLASH_CRYPT_CNT", 1))
    assert code == EspErr.ESP_ERR_EFUSE_CNT_IS_FULL


def test_blob_writes_are_one_time_and_protection_holds() -> None:
    efuse = VirtualEfuse(MAC)
    key = bytes(range(1, 33))
    efuse.write_field_blob("BLOCK1", key)
    assert efuse.read_field_blob("BLOCK1") == key
    code = _code(lambda: efuse.write_field_blob("BLOCK1", key))
    assert code == EspErr.ESP_ERR_EFUSE_REPEATED_PROG
    assert _code(lambda: efuse.write_field_blob("BLOCK1", b"x")) == EspErr.ESP_ERR_INVALID_ARG
    efuse.write_field_bit("JTAG_DISABLE")
    efuse.write_field_bit("JTAG_DISABLE")  # set already: nothing to do
    assert efuse.read_field_bit("JTAG_DISABLE")
    efuse.image.burn("WR_DIS", 1 << 2)  # FLASH_CRYPT_CNT's write-protect bit
    assert _code(lambda: efuse.write_field_cnt("FLASH_CRYPT_CNT", 1)) == EspErr.ESP_ERR_EFUSE
    assert efuse.read_field_cnt("FLASH_CRYPT_CNT") == 0
