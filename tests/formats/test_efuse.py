"""ESP32 eFuses in espefuse's virtual file: what we write espefuse reads, what it burns we read."""

from __future__ import annotations

from pathlib import Path

import pytest

from jumpstart.errors import InputError
from jumpstart.formats.efuse import EFUSE_FILE_SIZE, FIELDS, EfuseImage, mac_crc8
from tests.espressif_tools import espefuse, espefuse_summary, sbv2_key_and_digest

MAC = bytes.fromhex("240ac4123456")
RAW_UINTS = {
    "WR_DIS",
    "RD_DIS",
    "FLASH_CRYPT_CNT",
    "FLASH_CRYPT_CONFIG",
    "CODING_SCHEME",
    "MAC_CRC",
    "CHIP_PACKAGE",
    "SECURE_VERSION",
    "WAFER_VERSION_MINOR",
}


@pytest.mark.interop
def test_espefuse_reads_a_new_device(tmp_path: Path) -> None:
    path = tmp_path / "efuse.bin"
    path.write_bytes(EfuseImage.new_device(MAC).to_file())
    summary = espefuse_summary(path)
    crc = mac_crc8(MAC)
    assert summary["MAC"]["value"] == f"24:0a:c4:12:34:56 (CRC 0x{crc:02x} OK)"
    assert summary["CHIP_VER_REV1"]["value"] is True
    assert summary["CHIP_VER_REV2"]["value"] is True
    assert summary["FLASH_CRYPT_CNT"]["value"] == 0


@pytest.mark.interop
def test_what_espefuse_burns_reads_back_field_by_field(tmp_path: Path) -> None:
    path = tmp_path / "efuse.bin"
    path.write_bytes(EfuseImage.new_device(MAC).to_file())
    digest_key, digest = sbv2_key_and_digest(tmp_path)
    espefuse(path, "burn-key-digest", str(digest_key))
    espefuse(path, "burn-efuse", "FLASH_CRYPT_CNT", "1", "FLASH_CRYPT_CONFIG", "0xF")
    espefuse(path, "burn-efuse", "JTAG_DISABLE", "1", "ABS_DONE_1", "1")
    image = EfuseImage.from_file(path.read_bytes())
    summary = espefuse_summary(path)
    compared = 0
    for name, field in FIELDS.items():
        # Plain bits only: espefuse shows some fields converted (ADC_VREF in mV...).
        if name not in summary or (field.kind != "bool" and name not in RAW_UINTS):
            continue
        theirs = summary[name]["value"]
        if not isinstance(theirs, bool | int):
            continue  # shown through a table of meanings ("1.8V")
        ours = image.read(name)
        assert (bool(ours) if field.kind == "bool" else ours) == theirs, name
        compared += 1
    assert compared > 25
    assert image.read_bytes("BLOCK2") == digest
    assert image.write_protected("BLOCK2")  # burn-key-digest protects it
    assert image.mac() == MAC
    assert image.mac_crc_ok()
    assert image.chip_revision() == (3, 0)


def test_bits_only_go_from_0_to_1_and_protection_holds() -> None:
    image = EfuseImage.new_device(MAC)
    image.burn("FLASH_CRYPT_CNT", 0b1)
    image.burn("FLASH_CRYPT_CNT", 0b11)  # another bit: fine
    with pytest.raises(InputError, match="clear burned bits"):
        image.burn("FLASH_CRYPT_CNT", 0b10)
    with pytest.raises(InputError, match="does not fit"):
        image.burn("FLASH_CRYPT_CNT", 1 << 7)
    image.burn("WR_DIS", 1 << FIELDS["FLASH_CRYPT_CNT"].wr_dis)  # type: ignore[operator]
    with pytest.raises(InputError, match="write-protected"):
        image.burn("FLASH_CRYPT_CNT", 0b111)
    assert image.read("FLASH_CRYPT_CNT") == 0b11
    with pytest.raises(InputError, match="no eFuse field"):
        image.read("NOPE")


@pytest.mark.parametrize("size", [0, EFUSE_FILE_SIZE - 1, EFUSE_FILE_SIZE + 1])
def test_a_short_or_long_file_is_refused(size: int) -> None:
    with pytest.raises(InputError, match="288 bytes"):
        EfuseImage.from_file(bytes(size))


def test_mac_crc_vector() -> None:
    # The ROM's esp_crc8 over the six MAC bytes, as espefuse checks it.
    assert mac_crc8(bytes.fromhex("240ac4123456")) == EfuseImage.new_device(MAC).read("MAC_CRC")
    assert mac_crc8(b"") == 0
