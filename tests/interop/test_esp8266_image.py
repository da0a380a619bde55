"""ESP8266 app images (ESP8266_RTOS_SDK v3, ``elf2image --version 3``) against esptool.

Ours are read as valid by ``esptool --chip esp8266 image-info`` (its V3 images show as
version 1: it dispatches on the magic byte, and ignores the digest, so the digest is checked
here), and an image esptool makes from a test ELF is parsed and verified by ours. The ELF is
built with the host's GCC from ``tests/vectors/esp8266/elf_app.c`` and a linker script that
places the sections where ESP8266_RTOS_SDK's does; its machine field is then set to Xtensa,
which is all esptool reads of it besides the sections.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from jumpstart.formats.app_image import AppImage, ChipId, ImageError
from jumpstart.host.image_tools import image_build, image_info
from jumpstart.targets import ESP8266
from tests.system_tools import require

pytestmark = pytest.mark.interop
VECTORS = Path(__file__).parents[1] / "vectors" / "esp8266"
WHEN = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
EM_XTENSA = 0x5E


def esptool(*args: str) -> str:
    command = [sys.executable, "-m", "esptool", "--chip", "esp8266", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_our_image_reads_as_valid_in_esptool(tmp_path: Path) -> None:
    image = image_build("outlet", "1.0.0", b"payload" * 100, when=WHEN, chip=ESP8266)
    path = tmp_path / "app.bin"
    path.write_bytes(image)
    out = esptool("image-info", str(path))
    assert "Checksum:" in out
    assert "(valid)" in out
    assert "IROM" in out  # the flash-mapped segment, at the SDK's 0x40210010
    assert hashlib.sha256(image[:-32]).digest() == image[-32:]
    parsed = AppImage.parse(image, extended_header=False)
    parsed.verify(chip_id=ChipId.ESP8266)
    assert image[16 : 16 + 4] == (0xABCD5432).to_bytes(4, "little")  # where the SDK reads it
    assert "ESP8266 Image Header" in image_info(image, ESP8266)


def test_esptools_elf2image_v3_output_verifies_in_ours(tmp_path: Path) -> None:
    require("gcc")
    obj, elf, out = tmp_path / "app.o", tmp_path / "app.elf", tmp_path / "app.bin"
    flags = ["-m32", "-ffreestanding", "-fno-pic", "-fno-asynchronous-unwind-tables"]
    flags += ["-fno-toplevel-reorder", "-malign-data=abi", "-Os"]
    subprocess.run(["gcc", *flags, "-c", str(VECTORS / "elf_app.c"), "-o", str(obj)], check=True)
    link = ["ld", "-m", "elf_i386", "-nostdlib", "-T", str(VECTORS / "elf_app.ld")]
    subprocess.run([*link, str(obj), "-o", str(elf)], check=True)
    data = bytearray(elf.read_bytes())
    data[18:20] = EM_XTENSA.to_bytes(2, "little")
    elf.write_bytes(bytes(data))
    esptool("elf2image", "--version", "3", "-o", str(out), str(elf))
    image = AppImage.parse(out.read_bytes(), extended_header=False)
    image.verify(chip_id=ChipId.ESP8266)
    assert image.digest_valid
    desc = image.app_description
    assert desc is not None
    assert (desc.project_name, desc.version) == ("elf_test", "1.0.0")
    assert image.payload.startswith(b"payload from an ELF")
    corrupt = bytearray(out.read_bytes())
    corrupt[0x40] ^= 1
    with pytest.raises(ImageError):
        AppImage.parse(bytes(corrupt), extended_header=False).verify(chip_id=ChipId.ESP8266)
