"""``jumpstart security`` and ``idf flash --encrypt`` on real device processes."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from jumpstart.formats.partition_table import PartitionTable
from jumpstart.host.device_home import JumpstartHome
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV
from tests.espressif_tools import espefuse_summary, espsecure_flash_data
from tests.host.test_device_cli import JUMPSTART, cli, flashed_device
from tests.idf.device_helpers import APPS


def monitor_until(device: str, text: str) -> list[str]:
    """Boot the device with ``idf monitor`` until a line starts with ``text``; its lines."""
    process = subprocess.Popen(
        [*JUMPSTART, "idf", "monitor", "--device", device],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if text in line:
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert text in "\n".join(lines), "\n".join(lines)
    return lines


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
