"""Our images against esptool (a parser and builder we did not write)."""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from jumpstart.formats.app_image import AppDescription, AppImage, ImageError
from jumpstart.host.image_tools import image_build

esptool_bin_image = pytest.importorskip("esptool.bin_image")
pytestmark = pytest.mark.interop


def _esptool_image_info(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "esptool", "image-info", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout + done.stderr


def test_our_image_is_valid_for_esptool(tmp_path: Path) -> None:
    data = image_build(
        "smart_outlet", "3.1.4", b"\x01\x02\x03" * 333, when=dt.datetime(2026, 3, 5, 7, 8, 9)
    )
    path = tmp_path / "app.bin"
    path.write_bytes(data)
    text = _esptool_image_info(path)
    assert "Checksum: " in text
    assert "(valid)" in text.split("Checksum:")[1].splitlines()[0]
    assert "(valid)" in text.split("Validation hash:")[1].splitlines()[0]
    assert "Project name: smart_outlet" in text
    assert "App version: 3.1.4" in text
    assert "Compile time: Mar  5 2026 07:08:09" in text

    loaded = esptool_bin_image.LoadFirmwareImage("esp32", data)
    assert loaded.checksum == loaded.calculate_checksum()
    assert loaded.stored_digest == loaded.calc_digest


def test_esptool_reports_our_corruption(tmp_path: Path) -> None:
    data = bytearray(AppImage.build_app(AppDescription("x", "1"), b"abcd" * 10).to_bytes())
    data[0x30] ^= 0xFF
    path = tmp_path / "bad.bin"
    path.write_bytes(bytes(data))
    text = _esptool_image_info(path)
    assert "(invalid" in text  # esptool exits 0 here; the text says it
    with pytest.raises(ImageError, match="checksum mismatch"):
        AppImage.parse(bytes(data)).verify()


def _esptool_built(segments: list[tuple[bytes, int, bytes]]) -> bytes:
    image = esptool_bin_image.ESP32FirmwareImage()
    image.entrypoint = 0x40080000
    image.flash_mode = 2
    image.flash_size_freq = 0x20
    image.segments = [esptool_bin_image.ELFSection(n, a, d, flags=0) for n, a, d in segments]
    saved = image.save(None)
    assert isinstance(saved, bytes)
    return saved


def test_esptool_built_images_parse_and_verify() -> None:
    desc = AppDescription("from_esptool", "9.9", idf_ver="v5.5.1").to_bytes()
    data = _esptool_built(
        [
            (b".flash.appdesc", 0x3F400020, desc + b"rodata" * 50),
            (b".iram0.text", 0x40080000, b"\x90" * 1000),
            (b".dram0.data", 0x3FFB0000, b"\x11" * 37),
            (b".flash.text", 0x400D0020, b"\x22" * 5000),  # needs a padding segment
        ]
    )
    image = AppImage.parse(data)
    image.verify()
    assert image.app_description is not None
    assert image.app_description.project_name == "from_esptool"
    assert len(image.segments) >= 4
    assert image.to_bytes() == data[: image.length]
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    with pytest.raises(ImageError):
        AppImage.parse(bytes(flipped)).verify()
