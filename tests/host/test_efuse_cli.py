"""``jumpstart efuse`` and espefuse on the same device file agree field by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jumpstart.cli import main
from jumpstart.formats.efuse import EfuseImage
from jumpstart.host.device_home import JumpstartHome
from tests.espressif_tools import espefuse, espefuse_summary, sbv2_key_and_digest

PLAIN_VALUES = {
    "MAC",
    "BLOCK1",
    "BLOCK2",
    "WR_DIS",
    "RD_DIS",
    "FLASH_CRYPT_CNT",
    "FLASH_CRYPT_CONFIG",
    "SECURE_VERSION",
    "MAC_CRC",
}
COMPARED = ("block", "word", "pos", "bit_len", "efuse_type", "raw_value", "readable", "writeable")


def _ours(device: str, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    capsys.readouterr()
    assert main(["efuse", "summary", "--device", device, "--format", "json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def _agree(ours: dict[str, dict[str, object]], theirs: dict[str, dict[str, object]]) -> None:
    # espefuse lists BLOCK3's ADC calibration fields only when BLK3_PART_RESERVE says so.
    # ...and adds values of its own: BLOCK3 whole, the derived major version and package.
    assert set(theirs) - {"BLOCK3", "WAFER_VERSION_MAJOR", "PKG_VERSION"} <= set(ours)
    for name, row in ours.items():
        if name not in theirs:
            continue
        for key in COMPARED:
            assert row[key] == theirs[name][key], (name, key)
        value = theirs[name]["value"]
        # Values espefuse shows as they are (it converts some, e.g. ADC_VREF to millivolts).
        if isinstance(value, bool) or name in PLAIN_VALUES:
            assert row["value"] == value, name


@pytest.mark.interop
def test_summary_agrees_with_espefuse_before_and_after_burning_from_either_side(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["device", "create", "d", "--mac", "24:0a:c4:0a:0b:0c"]) == 0
    path = JumpstartHome().device("d").efuse_path
    _agree(_ours("d", capsys), espefuse_summary(path))
    key, digest = sbv2_key_and_digest(tmp_path)
    assert main(["efuse", "burn-key-digest", "--device", "d", str(key)]) == 0
    assert (
        main(["efuse", "burn-efuse", "--device", "d", "FLASH_CRYPT_CNT", "1", "JTAG_DISABLE", "1"])
        == 0
    )
    assert main(["efuse", "write-protect-efuse", "--device", "d", "JTAG_DISABLE"]) == 0
    espefuse(path, "burn-efuse", "ABS_DONE_1", "1")
    ours, theirs = _ours("d", capsys), espefuse_summary(path)
    _agree(ours, theirs)
    assert ours["ABS_DONE_1"]["value"] is True  # espefuse's burn, read by us
    assert ours["FLASH_CRYPT_CNT"]["value"] == 1
    assert theirs["JTAG_DISABLE"]["writeable"] is False  # our protection, read by espefuse
    assert ours["BLOCK2"]["value"] == " ".join(f"{b:02x}" for b in digest)


def test_refusals_are_one_line_and_change_nothing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["device", "create", "d"]) == 0
    path = JumpstartHome().device("d").efuse_path
    assert main(["efuse", "burn-efuse", "--device", "d", "FLASH_CRYPT_CNT", "3"]) == 0
    assert main(["efuse", "write-protect-efuse", "--device", "d", "JTAG_DISABLE"]) == 0
    before = path.read_bytes()
    capsys.readouterr()
    for args, message in (
        (["burn-efuse", "--device", "d", "FLASH_CRYPT_CNT", "1"], "would clear burned bits"),
        (
            ["burn-efuse", "--device", "d", "ABS_DONE_1", "1", "JTAG_DISABLE", "1"],
            "write-protected",
        ),
        (["burn-efuse", "--device", "d", "NOT_A_FUSE", "1"], "no eFuse field"),
        (["burn-efuse", "--device", "d", "FLASH_CRYPT_CNT"], "NAME VALUE pairs"),
        (["read-protect-efuse", "--device", "d", "MAC"], "cannot be read-protected"),
    ):
        assert main(["efuse", *args]) == 2, args
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert message in line, line
        assert path.read_bytes() == before  # ABS_DONE_1 was not burned either
    path.write_bytes(before[:100])
    assert main(["efuse", "summary", "--device", "d"]) == 2
    assert "288 bytes" in capsys.readouterr().err


def test_read_protection_hides_the_block(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["device", "create", "d"]) == 0
    assert (
        main(
            ["efuse", "burn-efuse", "--device", "d", "BLOCK3_DUMMY"]
            if False
            else ["efuse", "burn-efuse", "--device", "d", "SECURE_VERSION", "5"]
        )
        == 0
    )
    assert main(["efuse", "read-protect-efuse", "--device", "d", "SECURE_VERSION"]) == 0
    ours = _ours("d", capsys)
    assert ours["SECURE_VERSION"]["readable"] is False
    assert ours["SECURE_VERSION"]["value"] == 0  # zeros to software, as espefuse's file


@pytest.mark.interop
@pytest.mark.parametrize("protect", [True, False], ids=["protected", "no-protect-key"])
def test_burn_key_gives_the_blocks_espefuse_gives(
    home: Path, tmp_path: Path, protect: bool
) -> None:
    assert main(["device", "create", "d"]) == 0
    folder = JumpstartHome().device("d")
    theirs_path = tmp_path / "theirs.bin"
    theirs_path.write_bytes(folder.efuse_path.read_bytes())
    key = tmp_path / "fe_key.bin"
    key.write_bytes(bytes(range(32)))
    option = [] if protect else ["--no-protect-key"]
    espefuse(theirs_path, "burn-key", "flash_encryption", str(key), *option)
    assert main(["efuse", "burn-key", "--device", "d", "flash_encryption", str(key), *option]) == 0
    ours = EfuseImage.from_file(folder.efuse_path.read_bytes())
    theirs = EfuseImage.from_file(theirs_path.read_bytes())
    for block in (0, 1, 2, 3):  # the read registers; the controller's scratch may differ
        assert ours.block_bytes(block) == theirs.block_bytes(block), block
    hidden = folder.path / "efuse-hidden-keys.json"
    if protect:
        assert ours.block_bytes(1) == bytes(32)  # zeros to software, as espefuse's file
        assert json.loads(hidden.read_text()) == {"BLOCK1": bytes(range(32))[::-1].hex()}
        assert hidden.stat().st_mode & 0o077 == 0
    else:
        assert ours.read_bytes("BLOCK1") == bytes(range(32))[::-1]
        assert not hidden.exists()


def test_burn_key_refuses_a_wrong_size(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["device", "create", "d"]) == 0
    key = tmp_path / "short.bin"
    key.write_bytes(bytes(16))
    capsys.readouterr()
    assert main(["efuse", "burn-key", "--device", "d", "flash_encryption", str(key)]) == 2
    assert "16 bytes; a key file is 32 bytes" in capsys.readouterr().err
