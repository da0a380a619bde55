"""Security benchmarks: the first-boot flash encryption of the outlet's 4 MiB flash, and a boot
of an encrypted, signed outlet to app_main against the same boot with neither.

The first-boot pass is timed with its power-cut journal, against ESP-IDF's in-place pass (no
journal) and against espsecure's own encryption of the same sectors, in the same run.
Targets: the pass under 1 s; the encrypted, signed boot within 2x of the plain one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import io
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from espsecure import _flash_encryption_operation_esp32 as espsecure_encrypt

from jumpstart.formats.bootloader_image import BOOTLOADER_OFFSET
from jumpstart.formats.efuse import EfuseImage
from jumpstart.formats.partition_table import PartitionTable
from jumpstart.host.app_build import build_app_image, load_app_package
from jumpstart.host.image_tools import bootloader_build, image_build, image_sign
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV
from jumpstart.idf.device import Device, DeviceState
from jumpstart.idf.efuse import VirtualEfuse, random_mac
from jumpstart.idf.flash import SECTOR_SIZE, MemoryFlash
from jumpstart.idf.flash_encrypt import (
    FlashEncryptionMode,
    encrypt_flash_on_first_boot,
    plan_encryption,
)
from jumpstart.idf.log import EspLog, LogLevel
from jumpstart.idf.partition import PartitionMap
from jumpstart.idf.security import SecurityConfig

APPS = Path(__file__).resolve().parent.parent / "apps"
FLASH_SIZE = 4 * 1024 * 1024
OTA_0 = 0x20000
STARTED = "Starting scheduler on PRO CPU."
FILLER = 1_500_000  # grows the outlet image to nearly fill its 1600 KiB slot
WHEN = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


def _outlet_flash(app: bytes, bootloader: bytes) -> MemoryFlash:
    flash = MemoryFlash(FLASH_SIZE)
    flash.write(BOOTLOADER_OFFSET, bootloader)
    flash.write(0x8000, PartitionTable.from_csv(OUTLET_PARTITIONS_CSV).to_binary())
    flash.write(OTA_0, app)
    return flash


def _quiet_log() -> EspLog:
    return EspLog(lambda: 0, lambda _line: None, LogLevel.ERROR)


def _first_boot_pass(content: bytes, *, journal: bool) -> tuple[float, list[int]]:
    """Seconds of encrypt_flash_on_first_boot on a copy of ``content``; the sectors it took."""
    flash = MemoryFlash(FLASH_SIZE, content=content)
    efuse = VirtualEfuse(random_mac())
    parts = PartitionMap.load(flash)
    log = _quiet_log()
    loader = len(flash.read(BOOTLOADER_OFFSET, 0x1000).rstrip(b"\xff"))
    sectors = plan_encryption(parts, log, loader)
    started = time.perf_counter()
    encrypt_flash_on_first_boot(
        flash,
        parts,
        efuse,
        FlashEncryptionMode.DEVELOPMENT,
        log,
        bootloader_length=loader,
        use_journal=journal,
    )
    return time.perf_counter() - started, sectors


def _espsecure_pass(content: bytes, sectors: list[int]) -> float:
    """espsecure's ESP32 encryption of the same sectors (its Python code, in process)."""
    key = io.BytesIO(bytes(range(32)))
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per call
        for address in sectors:
            key.seek(0)
            data = io.BytesIO(content[address : address + SECTOR_SIZE])
            espsecure_encrypt(io.BytesIO(), data, address, key, 0xF, False)
    return time.perf_counter() - started


def _outlet_release(filler: int) -> bytes:
    """The outlet image, grown by ``filler`` bytes of embedded data (a big release)."""
    package = load_app_package(APPS / "outlet")
    if filler:
        data = random.Random(1).randbytes(filler)
        package = dataclasses.replace(package, embedded={**package.embedded, "filler": data})
    return image_build(package.name, "1.0.0", package.to_bytes(), when=WHEN)


def bench_first_boot_encryption(filler: int, what: str) -> None:
    app = _outlet_release(filler)
    content = _outlet_flash(app, bootloader_build()).image()
    runs = [_first_boot_pass(content, journal=True) for _ in range(3)]
    ours = min(t for t, _ in runs)
    sectors = runs[0][1]
    in_place = min(_first_boot_pass(content, journal=False)[0] for _ in range(3))
    reference = _espsecure_pass(content, sectors)
    size = len(sectors) * SECTOR_SIZE
    print(
        f"first-boot flash encryption, {what} ({size // 1024} KiB to encrypt)  "
        f"ours {ours * 1e3:7.1f} ms   ESP-IDF's in-place pass {in_place * 1e3:7.1f} ms   "
        f"ratio {ours / in_place:5.2f}   espsecure on the same sectors {reference * 1e3:7.1f} ms"
        f"   (target < 1000 ms)"
    )


async def _boot_to_app_main(device: Device, lines: list[str]) -> float:
    started = time.perf_counter()
    task = asyncio.create_task(device.run())
    while not any(STARTED in line for line in lines):
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    await device.stop()
    await task
    return elapsed


def _boot_times(
    make: Callable[[], tuple[MemoryFlash, VirtualEfuse]], security: SecurityConfig, runs: int
) -> list[float]:
    times = []
    for _ in range(runs):
        flash, efuse = make()
        lines: list[str] = []
        device = Device("bench", flash, efuse, console=lines.append, security=security)
        times.append(asyncio.run(_boot_to_app_main(device, lines)))
        assert device.state is DeviceState.OFF
    return times


def bench_secure_boot(runs: int = 15) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    app = build_app_image(APPS / "outlet")
    plain = _outlet_flash(app, bootloader_build()).image()
    secure_config = SecurityConfig(
        secure_boot=True, flash_encryption=FlashEncryptionMode.DEVELOPMENT
    )
    # One first boot (burns, encrypts, resets) makes the device every timed boot starts from.
    flash = _outlet_flash(image_sign(app, key), bootloader_build(sign_key=key))
    efuse = VirtualEfuse(random_mac())
    lines: list[str] = []
    first = Device("bench", flash, efuse, console=lines.append, security=secure_config)
    asyncio.run(_boot_to_app_main(first, lines))
    secured, fuses = flash.image(), efuse.image.to_file()

    def plain_device() -> tuple[MemoryFlash, VirtualEfuse]:
        return MemoryFlash(FLASH_SIZE, content=plain), VirtualEfuse(random_mac())

    def secure_device() -> tuple[MemoryFlash, VirtualEfuse]:
        copy = VirtualEfuse(image=EfuseImage.from_file(fuses), hidden=dict(efuse.hidden))
        return MemoryFlash(FLASH_SIZE, content=secured), copy

    base = statistics.median(_boot_times(plain_device, SecurityConfig(), runs))
    ours = statistics.median(_boot_times(secure_device, secure_config, runs))
    print(
        f"boot to app_main, encrypted + signed outlet (median of {runs})  {ours * 1e3:7.1f} ms   "
        f"plain {base * 1e3:7.1f} ms   ratio {ours / base:5.2f}   (target <= 2.00)"
    )


def main() -> None:
    bench_first_boot_encryption(0, "outlet")
    bench_first_boot_encryption(FILLER, "outlet with a 1.5 MiB release")
    bench_secure_boot()


if __name__ == "__main__":
    main()
