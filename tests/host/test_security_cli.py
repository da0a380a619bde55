"""``jumpstart security`` and ``idf flash --encrypt`` on real device processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from jumpstart.formats.partition_table import PartitionTable
from jumpstart.host.device_home import JumpstartHome
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV
from tests.espressif_tools import (
    espefuse,
    espefuse_summary,
    espsecure_flash_data,
    sbv2_key_and_digest,
)
from tests.host.test_device_cli import cli, flashed_device, monitor_until
from tests.idf.device_helpers import APPS


def refused(args: list[str], capfd: pytest.CaptureFixture[str]) -> str:
    """The one error line of a command that must exit 2."""
    capfd.readouterr()
    assert cli(*args) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("error: ")
    return err


def test_development_mode_end_to_end(
    home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    flashed_device("d", "1_hello_world", tmp_path)
    assert cli("security", "enable", "--device", "d", "--flash-encryption", "development") == 0
    again = ["security", "enable", "--device", "d", "--flash-encryption", "release"]
    assert "already enabled" in refused(again, capfd)
    lines = monitor_until("d", "[0] Hello world!")
    assert any("Resetting with flash encryption enabled..." in line for line in lines)
    assert any("Flash encryption mode is DEVELOPMENT (not secure)" in line for line in lines)
    assert "already enabled" in refused(again, capfd)  # now burned in eFuse

    capfd.readouterr()
    assert cli("security", "status", "--device", "d", "--format", "json") == 0
    report = json.loads(capfd.readouterr().out)
    assert report["flash_encryption"]["mode"] == "development"
    assert report["flash_encryption"]["plaintext_flashes_left"] == 3
    checks = {check["fix"]: check["ok"] for check in report["release_checklist"]}
    assert checks["RD_DIS_BLK1->1"]
    assert not checks["DISABLE_DL_ENCRYPT->1"]
    assert cli("security", "status", "--device", "d") == 0
    text = capfd.readouterr().out
    assert "Flash encryption:  DEVELOPMENT" in text
    assert "open  UART bootloader encryption disabled (set DISABLE_DL_ENCRYPT->1)" in text

    # Plaintext where the chip decrypts would not boot: refused with the fix.
    drivers = tmp_path / "drivers.bin"
    assert cli("idf", "build", str(APPS / "2_drivers"), "-o", str(drivers)) == 0
    assert "add --encrypt" in refused(["idf", "flash", "--device", "d", str(drivers)], capfd)
    assert cli("idf", "flash", "--device", "d", "--encrypt", str(drivers)) == 0
    lines = monitor_until("d", "Starting scheduler")
    assert any("Project name:     drivers" in line for line in lines)
    assert not any("Resetting with flash encryption" in line for line in lines)


@pytest.mark.interop
def test_espefuse_and_espsecure_read_what_the_device_did(home: Path, tmp_path: Path) -> None:
    flashed_device("d", "1_hello_world", tmp_path)
    assert cli("security", "enable", "--device", "d", "--flash-encryption", "development") == 0
    monitor_until("d", "[0] Hello world!")
    folder = JumpstartHome().device("d")
    summary = espefuse_summary(folder.efuse_path)
    assert summary["FLASH_CRYPT_CNT"]["value"] == 1
    assert summary["FLASH_CRYPT_CONFIG"]["value"] == 0xF
    assert summary["BLOCK1"]["readable"] is False  # read-protected: espefuse sees ?? too
    assert summary["DISABLE_DL_DECRYPT"]["value"] is True
    key = folder.efuse().flash_encryption_key()
    assert key is not None
    raw = folder.flash_path.read_bytes()
    table = espsecure_flash_data(tmp_path, "decrypt", key, 0x8000, raw[0x8000:0x9000])
    expected = PartitionTable.from_csv(OUTLET_PARTITIONS_CSV, flash_size=len(raw))
    assert PartitionTable.from_binary(table[:0xC00]) == expected


def test_release_mode_refuses_flashing(
    home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    flashed_device("r", "1_hello_world", tmp_path)
    assert cli("security", "enable", "--device", "r", "--flash-encryption", "release") == 0
    lines = monitor_until("r", "[0] Hello world!")
    assert any("Flash encryption mode is RELEASE" in line for line in lines)
    image = tmp_path / "1_hello_world.bin"
    for args in (
        ["idf", "flash", "--device", "r", str(image)],
        ["idf", "flash", "--device", "r", "--encrypt", str(image)],
    ):
        assert "release mode" in refused(args, capfd)
    capfd.readouterr()
    assert cli("security", "status", "--device", "r", "--format", "json") == 0
    report = json.loads(capfd.readouterr().out)
    assert report["flash_encryption"]["mode"] == "release"
    assert report["flash_encryption"]["flash_crypt_cnt"] == 0x7F


def test_bad_input(home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    flashed_device("d", "1_hello_world", tmp_path)
    image = tmp_path / "1_hello_world.bin"
    assert "not enabled" in refused(
        ["idf", "flash", "--device", "d", "--encrypt", str(image)], capfd
    )
    assert "nothing to enable" in refused(["security", "enable", "--device", "d"], capfd)
    bad_mode = ["security", "enable", "--device", "d", "--flash-encryption", "sometimes"]
    assert "development or release" in refused(bad_mode, capfd)
    assert "text or json" in refused(
        ["security", "status", "--device", "d", "--format", "x"], capfd
    )
    folder = JumpstartHome().device("d")
    for text in ("[security]\nflash_encryption = 3\n", "[other]\n", "[security\n", b"\xff\xfe"):
        if isinstance(text, bytes):
            folder.config_path.write_bytes(text)
        else:
            folder.config_path.write_text(text)
        assert "device.toml" in refused(["security", "status", "--device", "d"], capfd)


def espsecure(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "espsecure", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.interop
def test_secure_boot_end_to_end(
    home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    key, digest = sbv2_key_and_digest(tmp_path)
    (tmp_path / "other").mkdir()
    other, _ = sbv2_key_and_digest(tmp_path / "other")
    loader, app, unsigned = tmp_path / "bl.bin", tmp_path / "app.bin", tmp_path / "plain.bin"
    hello = str(APPS / "1_hello_world")
    assert cli("idf", "bootloader", "-o", str(loader), "--sign", str(key)) == 0
    assert cli("idf", "build", hello, "-o", str(app), "--sign", str(key)) == 0
    assert cli("idf", "build", hello, "-o", str(unsigned)) == 0
    drivers = str(tmp_path / "drivers.bin")
    assert cli("idf", "build", str(APPS / "2_drivers"), "-o", drivers) == 0
    for image in (loader, app):  # Espressif's tool accepts both signatures
        done = espsecure("verify-signature", "--version", "2", "--keyfile", str(key), str(image))
        assert done.returncode == 0, done.stdout + done.stderr
    assert cli("device", "create", "s") == 0
    assert cli("idf", "flash", "--device", "s", str(app), "0x1000", str(loader)) == 0
    assert cli("security", "enable", "--device", "s", "--secure-boot") == 0
    lines = monitor_until("s", "[0] Hello world!")
    assert any("Secure boot permanently enabled" in line for line in lines)
    folder = JumpstartHome().device("s")
    summary = espefuse_summary(folder.efuse_path)
    assert summary["ABS_DONE_1"]["value"] is True
    assert bytes.fromhex(str(summary["BLOCK2"]["value"]).replace(" ", "")) == digest
    # Images that would never run are refused before anything is written.
    assert "would not run" in refused(["idf", "flash", "--device", "s", str(unsigned)], capfd)
    foreign = tmp_path / "foreign.bin"
    assert cli("image-sign", "--key", str(other), str(unsigned), "-o", str(foreign)) == 0
    assert "would not run" in refused(["idf", "flash", "--device", "s", str(foreign)], capfd)
    # An app signed by Espressif's own tool with the burned key boots.
    theirs = tmp_path / "theirs.bin"
    sign = ["sign-data", "--version", "2", "--keyfile", str(key), "-o", str(theirs)]
    done = espsecure(*sign, str(tmp_path / "drivers.bin"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert cli("idf", "flash", "--device", "s", str(theirs)) == 0
    lines = monitor_until("s", "Starting scheduler")
    assert any("Project name:     drivers" in line for line in lines)
    assert "already enabled" in refused(
        ["security", "enable", "--device", "s", "--secure-boot"], capfd
    )
    capfd.readouterr()
    assert cli("security", "status", "--device", "s") == 0
    assert f"V2 enabled (ABS_DONE_1), key digest {digest.hex()}" in capfd.readouterr().out


@pytest.mark.interop
def test_a_digest_burned_by_espefuse_decides_what_runs(
    home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    key, _ = sbv2_key_and_digest(tmp_path)
    app, unsigned = tmp_path / "app.bin", tmp_path / "plain.bin"
    assert cli("idf", "build", str(APPS / "1_hello_world"), "-o", str(unsigned)) == 0
    assert cli("image-sign", "--key", str(key), str(unsigned), "-o", str(app)) == 0
    assert cli("device", "create", "p") == 0
    espefuse(JumpstartHome().device("p").efuse_path, "burn-key-digest", str(key))
    assert "would not run" in refused(["idf", "flash", "--device", "p", str(unsigned)], capfd)
    assert cli("idf", "flash", "--device", "p", str(app)) == 0
    monitor_until("p", "[0] Hello world!")


def test_signing_key_refusals(
    home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    ecdsa, junk = tmp_path / "ecdsa.pem", tmp_path / "junk.pem"
    ecdsa.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    junk.write_bytes(b"\xff\xfenot a key")
    out = str(tmp_path / "x.bin")
    hello = str(APPS / "1_hello_world")
    assert "RSA-3072" in refused(["idf", "bootloader", "-o", out, "--sign", str(ecdsa)], capfd)
    assert "RSA-3072" in refused(["idf", "build", hello, "-o", out, "--sign", str(ecdsa)], capfd)
    assert "PEM" in refused(["idf", "build", hello, "-o", out, "--sign", str(junk)], capfd)
    assert cli("device", "create", "k") == 0
    short = tmp_path / "short.bin"
    short.write_bytes(bytes(31))
    burn = ["efuse", "burn-key", "--device", "k", "flash_encryption", str(short)]
    assert "32 bytes" in refused(burn, capfd)


def test_a_device_made_before_bootloaders_gets_one_on_first_use(
    home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    flashed_device("old", "1_hello_world", tmp_path)
    folder = JumpstartHome().device("old")
    with folder.open_flash() as flash:
        flash.erase_range(0x1000, 0x7000)  # as devices were made before they had one
    lines = monitor_until("old", "[0] Hello world!")
    assert any("2nd stage bootloader" in line for line in lines)
    assert folder.flash_path.read_bytes()[0x1000] == 0xE9
