"""First-boot flash encryption on a device: eFuses, what is encrypted, modes, power cuts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jumpstart.formats.bootloader_image import BOOTLOADER_OFFSET
from jumpstart.formats.efuse import EfuseImage
from jumpstart.formats.otadata import OtaImgState, OtaSelectEntry, otadata_image
from jumpstart.formats.partition_table import PartitionTable
from jumpstart.idf.device import Device, DeviceState
from jumpstart.idf.efuse import VirtualEfuse, random_mac
from jumpstart.idf.flash import SECTOR_SIZE, MemoryFlash, PowerCut
from jumpstart.idf.flash_encrypt import (
    EncryptionJournal,
    FlashEncryptionMode,
    get_flash_encryption_mode,
)
from jumpstart.idf.partition import PartitionMap
from jumpstart.idf.security import SecurityConfig
from tests.cloud_device import wait_until
from tests.espressif_tools import espsecure_flash_data
from tests.idf.device_helpers import OTA_0, OTADATA, app_image, bootloader_image, outlet_flash

HELLO = "[0] Hello world!"
DEVELOPMENT = SecurityConfig(flash_encryption=FlashEncryptionMode.DEVELOPMENT)
RELEASE = SecurityConfig(flash_encryption=FlashEncryptionMode.RELEASE)
# A small layout for cutting the power at every flash operation of the pass.
SMALL_CSV = """\
nvs,      data, nvs,      0x9000,  0x4000,
otadata,  data, ota,      0xd000,  0x2000,
nvs_keys, data, nvs_keys, 0xf000,  0x1000,
ota_0,    app,  ota_0,    0x10000, 0x10000,
ota_1,    app,  ota_1,    0x20000, 0x10000,
"""
SMALL_SIZE = 0x40000


def small_flash() -> MemoryFlash:
    flash = MemoryFlash(SMALL_SIZE)
    flash.write(BOOTLOADER_OFFSET, bootloader_image())
    flash.write(0x8000, PartitionTable.from_csv(SMALL_CSV, flash_size=SMALL_SIZE).to_binary())
    flash.write(0x10000, app_image("1_hello_world"))
    flash.write(0x9000, b"plain nvs page")
    # ota_0 chosen already, so the bootloader writes nothing of its own before the pass.
    flash.write(0xD000, otadata_image(OtaSelectEntry.new(1, OtaImgState.VALID), None))
    return flash


class Console(list[str]):
    state: DeviceState | None = None  # the device's state when the awaited line showed

    def seen(self, text: str) -> bool:
        return any(text in line for line in self)


def device(flash: MemoryFlash, efuse: VirtualEfuse, security: SecurityConfig) -> Device:
    return Device("dev", flash, efuse, console=Console().append, security=security)


def lines_of(dev: Device) -> Console:
    console = dev.console.__self__  # type: ignore[attr-defined]
    assert isinstance(console, Console)
    return console


async def boot_until(dev: Device, text: str, timeout: float = 10) -> None:
    await wait_until(lambda: lines_of(dev).seen(text), timeout, text)


def run(dev: Device, text: str = HELLO) -> Console:
    async def main() -> None:
        task = asyncio.create_task(dev.run())
        try:
            await boot_until(dev, text)
            lines_of(dev).state = dev.state
        finally:
            await dev.stop()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())
    return lines_of(dev)


def test_development_mode_first_boot_burns_encrypts_and_resets() -> None:
    flash, efuse = outlet_flash(ota_0=app_image("1_hello_world")), VirtualEfuse(random_mac())
    image = app_image("1_hello_world")
    table = flash.read(0x8000, SECTOR_SIZE)
    lines = run(device(flash, efuse, DEVELOPMENT))
    text = "\n".join(lines)
    assert "Generating new flash encryption key..." in text
    assert "Resetting with flash encryption enabled..." in text
    assert "flash encryption is enabled (3 plaintext flashes left)" in text
    assert "Flash encryption mode is DEVELOPMENT (not secure)" in text
    assert lines.index(next(x for x in lines if "Resetting" in x)) < lines.index(
        next(x for x in lines if HELLO in x)
    )
    assert efuse.read_field_cnt("FLASH_CRYPT_CNT") == 1
    assert efuse.read_field_cnt("FLASH_CRYPT_CONFIG") == 0xF
    assert efuse.image.read_protected("BLOCK1")
    assert efuse.image.write_protected("BLOCK1")
    assert efuse.read_field_blob("BLOCK1") == bytes(32)  # software reads zeros
    for name in ("DISABLE_DL_DECRYPT", "DISABLE_DL_CACHE", "JTAG_DISABLE"):
        assert efuse.read_field_bit(name), name
    assert not efuse.read_field_bit("DISABLE_DL_ENCRYPT")  # development: reflashable
    assert get_flash_encryption_mode(efuse) is FlashEncryptionMode.DEVELOPMENT
    raw = flash.image()
    assert image[0x20:0x120] not in raw  # the app description is gone from plain view
    assert raw[0x8000 : 0x8000 + SECTOR_SIZE] != table
    assert flash.read_encrypted(0x8000, SECTOR_SIZE) == table
    assert flash.read_encrypted(OTA_0, len(image)) == image
    loader = bootloader_image()  # the ROM reads it through decryption from now on
    assert raw[BOOTLOADER_OFFSET : BOOTLOADER_OFFSET + len(loader)] != loader
    assert flash.read_encrypted(BOOTLOADER_OFFSET, len(loader)) == loader
    # Erased otadata was encrypted too (always is); nvs never is.
    second = OTADATA + SECTOR_SIZE
    assert flash.read_encrypted(second, 32) == b"\xff" * 32
    assert raw[second : second + 32] != b"\xff" * 32
    # No journal (and no plaintext copy of a sector) is left behind.
    journal = EncryptionJournal.locate(flash, PartitionMap.load(flash))
    assert journal is not None
    assert not journal.present()


@pytest.mark.interop
def test_encrypted_regions_equal_espsecure(tmp_path: Path) -> None:
    flash, efuse = small_flash(), VirtualEfuse(random_mac())
    image = app_image("1_hello_world")
    before = flash.image()
    run(device(flash, efuse, DEVELOPMENT))
    key = efuse.flash_encryption_key()
    assert key is not None
    raw = flash.image()
    span = len(image) + (-len(image) % SECTOR_SIZE)
    for address, length in ((0x8000, SECTOR_SIZE), (0x10000, span)):
        plain = before[address : address + length]
        theirs = espsecure_flash_data(tmp_path, "encrypt", key, address, plain)
        assert raw[address : address + length] == theirs, hex(address)
    # otadata got its first entry before the pass: espsecure reads what the device reads.
    theirs = espsecure_flash_data(tmp_path, "decrypt", key, 0xD000, raw[0xD000:0xF000])
    assert theirs == flash.read_encrypted(0xD000, 0x2000)
    assert theirs[0x1000:] == b"\xff" * 0x1000
    assert raw[0x9000:0x9010] == before[0x9000:0x9010]  # nvs stays as it was


def test_release_mode_fills_the_counter_and_burns_download_fuses() -> None:
    flash, efuse = small_flash(), VirtualEfuse(random_mac())
    text = "\n".join(run(device(flash, efuse, RELEASE)))
    assert "Setting CRYPT_CNT for permanent encryption" in text
    assert "Flash encryption mode is RELEASE" in text
    assert efuse.read_field_cnt("FLASH_CRYPT_CNT") == 0x7F
    assert efuse.read_field_bit("DISABLE_DL_ENCRYPT")
    assert get_flash_encryption_mode(efuse) is FlashEncryptionMode.RELEASE


def test_a_pre_burned_protected_key_is_used() -> None:
    flash, efuse = small_flash(), VirtualEfuse(random_mac())
    key = bytes(range(32))
    efuse.burn_key("BLOCK1", key[::-1])
    text = "\n".join(run(device(flash, efuse, DEVELOPMENT)))
    assert "Using pre-loaded flash encryption key in efuse" in text
    assert efuse.flash_encryption_key() == key


def test_an_unprotected_key_is_refused_and_nothing_is_encrypted() -> None:
    flash, efuse = small_flash(), VirtualEfuse(random_mac())
    efuse.burn_key("BLOCK1", bytes(range(32)), read_protect=False, write_protect=False)
    before = flash.image()
    dev = device(flash, efuse, DEVELOPMENT)
    lines = run(dev, "No app to run")
    assert lines.state is DeviceState.HALTED
    assert lines.seen("Invalid key state")
    after = flash.image()
    assert after[:0xD000] == before[:0xD000]  # the table; otadata got its first entry
    assert after[0xF000:] == before[0xF000:]
    assert efuse.read_field_cnt("FLASH_CRYPT_CNT") == 0


def test_a_key_burned_without_a_copy_halts_the_boot() -> None:
    flash, efuse = small_flash(), VirtualEfuse(random_mac())
    efuse.burn_key("BLOCK1", bytes(range(32)))
    efuse.write_field_cnt("FLASH_CRYPT_CNT", 1)
    efuse.hidden.clear()  # as after espefuse burned it: the file holds zeros
    lines = run(device(flash, efuse, SecurityConfig()), "does not know")
    assert lines.state is DeviceState.HALTED
    assert not lines.seen("2nd stage bootloader")


def _boot_with_cut(content: bytes, efuse_file: bytes, cut: int | None) -> tuple[bool, int]:
    """Boot a copy with the power cut at operation ``cut`` (None: no cut); then boot again.
    Whether the cut hit, and the operations the first boot used."""
    flash = MemoryFlash(len(content), content=content)
    efuse = VirtualEfuse(image=EfuseImage.from_file(efuse_file))
    dev = device(flash, efuse, DEVELOPMENT)
    hit = False

    async def main() -> int:
        start = flash.operations
        if cut is not None:
            flash.arm_power_cut(PowerCut(cut))
        task = asyncio.create_task(dev.run())
        try:
            if cut is None:
                await boot_until(dev, HELLO)
            else:
                await wait_until(lambda: not flash.powered or lines_of(dev).seen(HELLO), 10, "cut")
            nonlocal hit
            hit = not flash.powered
            used = flash.operations - start
            if hit:
                flash.restore_power()
                dev.power_cut()
            await boot_until(dev, HELLO)
            return used
        finally:
            await dev.stop()
            await asyncio.wait_for(task, 10)

    used = asyncio.run(main())
    assert efuse.read_field_cnt("FLASH_CRYPT_CNT") == 1
    # Every planned region decrypts to what it held before, whatever the cut interrupted.
    original = MemoryFlash(len(content), content=content)
    image = app_image("1_hello_world")
    assert flash.read_encrypted(0x8000, SECTOR_SIZE) == original.read(0x8000, SECTOR_SIZE)
    assert flash.read_encrypted(0x10000, len(image)) == image
    assert flash.read_encrypted(0xD000, 0x2000) == original.read(0xD000, 0x2000)
    assert flash.read(0x9000, 14) == b"plain nvs page"
    assert image[0x20:0x100] not in flash.image()
    return hit, used


def test_power_cut_at_every_operation_of_the_first_boot_encryption() -> None:
    content = small_flash().image()
    blank = VirtualEfuse(random_mac()).image.to_file()
    _, total = _boot_with_cut(content, blank, None)
    assert total > 20
    hits = 0
    for cut in range(1, total + 1):
        hit, _ = _boot_with_cut(content, blank, cut)
        hits += hit
    assert hits == total  # every operation of the pass was a cut point, and each recovered


def _outlet_cut(content: bytes, efuse_file: bytes, cut: int | None) -> int:
    """The outlet's first boot on a copy, cut at operation ``cut``; then boot until its app
    starts. The operations its encryption pass took (up to the reset)."""
    flash = MemoryFlash(len(content), content=content)
    efuse = VirtualEfuse(image=EfuseImage.from_file(efuse_file))
    console = Console()
    pass_ops: list[int] = []

    def line(text: str) -> None:
        console.append(text)
        if "Resetting with flash encryption enabled" in text:
            pass_ops.append(flash.operations)

    dev = Device("outlet", flash, efuse, console=line, security=DEVELOPMENT)

    async def main() -> None:
        if cut is not None:
            flash.arm_power_cut(PowerCut(cut))
        task = asyncio.create_task(dev.run())
        try:
            started = "Starting scheduler"
            await wait_until(lambda: not flash.powered or console.seen(started), 20, "cut")
            if not flash.powered:
                flash.restore_power()
                dev.power_cut()
            await wait_until(lambda: console.seen(started), 20, "boot after the cut")
        finally:
            await dev.stop()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert efuse.read_field_cnt("FLASH_CRYPT_CNT") == 1
    original = MemoryFlash(len(content), content=content)
    image = app_image("outlet")
    assert flash.read_encrypted(OTA_0, len(image)) == image
    assert flash.read_encrypted(0x8000, SECTOR_SIZE) == original.read(0x8000, SECTOR_SIZE)
    loader = bootloader_image()
    assert flash.read_encrypted(BOOTLOADER_OFFSET, len(loader)) == loader
    assert image[0x20:0x100] not in flash.image()
    return pass_ops[0] if pass_ops else 0


def test_power_cut_at_a_sample_of_the_outlets_first_boot_encryption() -> None:
    content = outlet_flash(ota_0=app_image("outlet")).image()
    blank = VirtualEfuse(random_mac()).image.to_file()
    total = _outlet_cut(content, blank, None)
    assert total > 40  # bootloader, table, otadata, nvs_key and the outlet image: 6 ops a sector
    step = total // 12
    for cut in [1, 2, *range(step, total, step), total - 1, total]:
        _outlet_cut(content, blank, cut)
